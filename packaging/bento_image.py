"""Helpers for packaging/build_image.sh: facts about a built Bento, printed for the shell.

Usage (with the project's virtualenv, BENTOML_HOME as for ``bentoml build``)::

    python packaging/bento_image.py path vitalcheck:latest          # the Bento's directory
    python packaging/bento_image.py lock-check vitalcheck:latest    # its lock against this interpreter
    python packaging/bento_image.py fingerprint vitalcheck:latest   # content hash, for image reuse

``lock-check`` compares every package pinned in the Bento's ``env/python/requirements.txt``
(the lock that ``bentoml build`` resolves and the image installs) with the version installed
in this interpreter: a difference in a package that decides model outputs or the start-up
check (:data:`CRITICAL`) fails (exit 1); other differences are listed as notes.

``fingerprint`` hashes what decides the image's behaviour: the Bento's source, its ``env/``
(lock, Dockerfile, entrypoint) and each packed model's artifact and card, by model name.
Store versions are left out (``bento.yaml``, ``model.yaml``): every ``bentoml build`` and every
fresh model store (the test suite makes one per session) gives new ones. Equal fingerprints
mean an image that serves the same answers, so the build script reuses it; its responses then
report the model-store tags of the store it was built from.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from importlib import metadata
from pathlib import Path

import bentoml
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

CRITICAL = (
    "bentoml",
    "scikit-learn",
    "numpy",
    "scipy",
    "joblib",
    "threadpoolctl",
    "pandas",
    "pyarrow",
    "onnxruntime",
    "pillow",
    "pydantic",
    "pydantic-core",
    "pydantic-settings",
    "python-multipart",
)
"""Packages whose version must equal the development environment's (the models were trained
and their golden outputs recorded with these; the service refuses another scikit-learn)."""


def bento_path(tag: str) -> Path:
    """Directory of a Bento in the store of the current BENTOML_HOME."""
    return Path(bentoml.get(tag).path)


def locked_versions(bento_dir: Path) -> dict[str, str]:
    """Package → exact version, from the Bento's lock (``name==version`` lines)."""
    versions = {}
    for line in (bento_dir / "env" / "python" / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            continue
        pins = [spec.version for spec in requirement.specifier if spec.operator in ("==", "===")]
        if pins:
            versions[canonicalize_name(requirement.name)] = pins[0]
    return versions


def lock_check(bento_dir: Path) -> int:
    """Print the lock's differences from this interpreter's packages; 1 if a critical one differs."""
    locked = locked_versions(bento_dir)
    failures = []
    for name in CRITICAL:
        want = locked.get(name)
        try:
            have = metadata.version(name)
        except metadata.PackageNotFoundError:
            have = None
        if want is None or want != have:
            failures.append(f"{name}: Bento lock {want or 'absent'}, development environment {have or 'absent'}")
    notes = []
    for name, want in sorted(locked.items()):
        if name in CRITICAL:
            continue
        try:
            have = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue  # only in the image (a serving-only dependency): nothing to compare
        if have != want:
            notes.append(f"{name} {want} (development environment: {have})")
    print(f"lock: {len(locked)} packages pinned; critical ones equal the development environment's: {not failures}")
    for note in notes:
        print(f"  note: {note}")
    for failure in failures:
        print(f"  MISMATCH {failure}", file=sys.stderr)
    return 1 if failures else 0


def fingerprint(tag: str) -> str:
    """sha256 over the Bento's src/ and env/ and its models' files (paths and contents)."""
    bento = bentoml.get(tag)
    root = Path(bento.path)
    digest = hashlib.sha256()

    def add_tree(label: str, directory: Path) -> None:
        # model.yaml only repeats the card plus the store version and creation time: skipped.
        for file in sorted(p for p in directory.rglob("*") if p.is_file() and p.name != "model.yaml"):
            digest.update(f"{label}/{file.relative_to(directory).as_posix()}\0".encode())
            digest.update(hashlib.sha256(file.read_bytes()).digest())

    add_tree("src", root / "src")
    add_tree("env", root / "env")
    for model in sorted(bento.info.all_models, key=lambda m: m.tag.name):
        add_tree(f"models/{model.tag.name}", Path(bentoml.models.get(model.tag).path))
    return digest.hexdigest()


def main(argv: list[str] | None = None) -> int:
    """Run one sub-command; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("path", "lock-check", "fingerprint"))
    parser.add_argument("tag", help="Bento tag, e.g. vitalcheck:latest")
    args = parser.parse_args(argv)
    if args.command == "path":
        print(bento_path(args.tag))
    elif args.command == "lock-check":
        return lock_check(bento_path(args.tag))
    else:
        print(fingerprint(args.tag))
    return 0


if __name__ == "__main__":
    sys.exit(main())
