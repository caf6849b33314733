"""Helpers for packaging/build_image.sh: facts about a built Bento, printed for the shell.

Usage (with the project's virtualenv, BENTOML_HOME as for ``bentoml build``)::

    python packaging/bento_image.py path vitalcheck:latest          # the Bento's directory
    python packaging/bento_image.py lock                            # (re)write packaging/requirements.lock
    python packaging/bento_image.py lock-check vitalcheck:latest    # that lock against this interpreter
    python packaging/bento_image.py fingerprint vitalcheck:latest   # content hash, for image reuse
    python packaging/bento_image.py stage vitalcheck:latest DIR     # the image's build context
    python packaging/bento_image.py sbom RAW.json DPKG_STATUS OUT.json  # finish and check the SBOM

``packaging/requirements.lock`` is what the image installs (``uv pip sync --require-hashes``):
every package the service needs, exact version and sha256 of each of its files on PyPI,
resolved by ``lock`` from the ``python.packages`` pins of ``bentofile.yaml`` (serving packages
only, never the training, test or Spark extras), with this interpreter's versions as
constraints so the image runs what the tests ran. It changes only when ``lock`` is run again.

``lock-check`` compares that lock with the versions installed in this interpreter: a
difference in a package that decides model outputs or the start-up check (:data:`CRITICAL`), or
a ``bentofile.yaml`` pin that the lock does not hold, fails (exit 1); other differences, and
those from the Bento's own lock (``env/python/requirements.txt``, re-resolved by every
``bentoml build`` and not used by the image), are listed as notes.

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
import json
import os
import py_compile
import shutil
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

import bentoml
import yaml
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

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "packaging" / "requirements.lock"
BENTOFILE = ROOT / "bentofile.yaml"
LOCK_COMMAND = "python packaging/bento_image.py lock"
# What the lock is resolved for: the image's CPython 3.11 on x86-64 glibc Linux, wheels only.
LOCK_TARGET = ("--python-version", "3.11", "--python-platform", "x86_64-manylinux_2_28", "--only-binary", ":all:")


def bento_path(tag: str) -> Path:
    """Directory of a Bento in the store of the current BENTOML_HOME."""
    return Path(bentoml.get(tag).path)


def parse_pins(text: str) -> dict[str, str]:
    """Package → exact version, from ``name==version`` lines (hash continuation lines skipped)."""
    versions = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip().rstrip("\\").strip()
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


def locked_versions(bento_dir: Path) -> dict[str, str]:
    """Package → exact version, from the Bento's own lock (``env/python/requirements.txt``)."""
    return parse_pins((bento_dir / "env" / "python" / "requirements.txt").read_text())


def image_lock() -> dict[str, str]:
    """Package → exact version, from packaging/requirements.lock (what the image installs)."""
    return parse_pins(LOCK.read_text())


def bentofile_pins() -> list[str]:
    """The ``python.packages`` of bentofile.yaml: the service's direct dependencies, pinned."""
    return list(yaml.safe_load(BENTOFILE.read_text())["python"]["packages"])


def write_lock() -> int:
    """Resolve bentofile.yaml's pins into packaging/requirements.lock, with every file's sha256."""
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if uv is None:
        print("uv is needed (it is in .venv: pip install uv)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="vitalcheck-lock-") as scratch:
        requirements = Path(scratch, "requirements.in")
        requirements.write_text("\n".join(bentofile_pins()) + "\n")
        # This interpreter's versions as constraints: the image gets what the tests ran with.
        frozen = [
            f"{dist.metadata['Name']}=={dist.version}"
            for dist in metadata.distributions()
            if dist.metadata["Name"] and canonicalize_name(dist.metadata["Name"]) != "vitalcheck"
        ]
        constraints = Path(scratch, "constraints.txt")
        constraints.write_text("\n".join(sorted(set(frozen))) + "\n")
        command = [uv, "pip", "compile", "--no-config", "--quiet", "--generate-hashes", "--no-annotate"]
        command += [*LOCK_TARGET, "--custom-compile-command", LOCK_COMMAND]
        command += ["--constraint", str(constraints), "--output-file", str(LOCK), str(requirements)]
        result = subprocess.run(command, check=False, env={**os.environ, "UV_NO_PROGRESS": "1"})
    if result.returncode == 0:
        print(f"{LOCK.relative_to(ROOT)}: {len(image_lock())} packages, with hashes")
    return result.returncode


def lock_check(bento_dir: Path) -> int:
    """Print the image lock's differences from this interpreter's packages; 1 if a critical one differs."""
    if not LOCK.is_file():
        print(f"{LOCK.relative_to(ROOT)} is missing: run `{LOCK_COMMAND}`", file=sys.stderr)
        return 1
    locked = image_lock()
    failures = []
    for pin in bentofile_pins():
        requirement = Requirement(pin)
        want = next(iter(requirement.specifier)).version
        have = locked.get(canonicalize_name(requirement.name))
        if have != want:
            failures.append(f"bentofile.yaml pins {pin}, the image lock has {have or 'nothing'}: run `{LOCK_COMMAND}`")
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
    bento_lock = locked_versions(bento_dir)
    for name in sorted(set(bento_lock) | set(locked)):
        if bento_lock.get(name) != locked.get(name):
            notes.append(
                f"{name}: image lock {locked.get(name, 'absent')}, Bento's own lock {bento_lock.get(name, 'absent')} (unused)"
            )
    print(
        f"lock: {len(locked)} packages pinned with hashes ({LOCK.relative_to(ROOT)}); "
        f"critical ones equal the development environment's: {not failures}"
    )
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


def _normalize_modes(directory: Path) -> None:
    """Directories 0755 and files 0644 (executables 0755): readable by any UID, writable by none.

    The image runs under an arbitrary UID with group 0 (OpenShift) and a read-only root: the
    files belong to root:0 (COPY) and need only be readable; the model store's 0700 folders
    would lock out every UID but their owner's.
    """
    for path in [directory, *directory.rglob("*")]:
        if path.is_symlink():
            continue
        if path.is_dir() or os.access(path, os.X_OK):
            path.chmod(0o755)
        else:
            path.chmod(0o644)


def stage(tag: str, context: Path) -> None:
    """Write the image's build context: ``bento/`` (code, lock, entrypoint) and ``models/``.

    Two folders, two image layers: a code change leaves the models' layer as it was, and the
    other way round. The models are copied the way ``bentoml containerize`` copies them (the
    Bento's own model store layout, ``models/<name>/<version>/``). The source is byte-compiled
    here (checked-hash ``.pyc``: valid whatever the files' times, re-checked against the source
    at import), since a read-only image cannot write ``__pycache__`` at start-up.
    """
    from _bentoml_sdk.models import BentoModel

    bento = bentoml.get(tag)
    if context.exists():
        shutil.rmtree(context)
    code, models = context / "bento", context / "models"
    shutil.copytree(bento.path, code, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "models"))
    for source in sorted((code / "src").rglob("*.py")):
        py_compile.compile(
            str(source),
            cfile=None,
            dfile=str(Path("/home/bentoml/bento") / source.relative_to(code)),
            doraise=True,
            invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH,
        )
    (code / "env" / "docker" / "entrypoint.sh").chmod(0o755)
    models.mkdir()
    for model in bento.info.all_models:
        BentoModel.from_info(model).resolve(models)
    for directory in (code, models):
        _normalize_modes(directory)
        for path in [directory, *directory.rglob("*")]:
            os.utime(path, (0, 0), follow_symlinks=False)  # the layers' content alone decides reuse
    print(f"staged {tag}: {code} ({_size(code)}), {models} ({_size(models)})")


def _size(directory: Path) -> str:
    return f"{sum(p.stat().st_size for p in directory.rglob('*') if p.is_file()) / 1e6:.1f} MB"


def _dpkg_components(status: str) -> list[dict]:
    """The Debian packages of a dpkg status file, as CycloneDX components (purl pkg:deb)."""
    components = []
    for stanza in status.split("\n\n"):
        fields = {}
        for line in stanza.splitlines():
            if line[:1] not in (" ", "\t") and ":" in line:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        if not fields.get("Package") or "installed" not in fields.get("Status", "").split():
            continue
        name, version, arch = fields["Package"], fields["Version"], fields.get("Architecture", "all")
        purl = f"pkg:deb/debian/{name}@{version}?arch={arch}&distro=debian-12"
        components.append({"type": "library", "bom-ref": purl, "name": name, "version": version, "purl": purl})
    return components


def sbom(raw: Path, dpkg_status: Path, out: Path) -> int:
    """Finish the image's SBOM and check it against the lock.

    ``raw`` is ``cyclonedx-py environment`` run inside the image against ``/app/.venv`` (its
    Python packages, from their installed metadata); the Debian packages of the base image's
    dpkg status are added, and VitalCheck as the described component. Exit 1 unless the SBOM
    lists exactly the locked Python packages at their locked versions.
    """
    from vitalcheck import __version__

    document = json.loads(raw.read_text())
    python_packages = {canonicalize_name(c["name"]): c["version"] for c in document.get("components", [])}
    document.setdefault("metadata", {})["component"] = {
        "type": "container",
        "bom-ref": "vitalcheck-image",
        "name": "vitalcheck",
        "version": __version__,
        "description": "VitalCheck OCI image: Debian bookworm base, /app/.venv, the Bento under /home/bentoml/bento",
    }
    debian = _dpkg_components(dpkg_status.read_text())
    document["components"] = [*document.get("components", []), *debian]
    out.write_text(json.dumps(document, indent=2) + "\n")
    locked = image_lock()
    missing = {n: v for n, v in locked.items() if python_packages.get(n) != v}
    extra = sorted(set(python_packages) - set(locked))
    print(
        f"sbom: {out} ({document.get('specVersion')}), {len(python_packages)} Python packages, {len(debian)} Debian packages"
    )
    if missing or extra:
        print(
            f"  SBOM differs from {LOCK.name}: missing or other version {missing}; not locked {extra}", file=sys.stderr
        )
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run one sub-command; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("path", "lock", "lock-check", "fingerprint", "stage", "sbom"))
    parser.add_argument("args", nargs="*", help="a Bento tag (e.g. vitalcheck:latest), then the sub-command's paths")
    args = parser.parse_args(argv)
    if args.command == "lock":
        return write_lock()
    if args.command == "sbom":
        return sbom(*(Path(a) for a in args.args))
    tag = args.args[0]
    if args.command == "path":
        print(bento_path(tag))
    elif args.command == "lock-check":
        return lock_check(bento_path(tag))
    elif args.command == "stage":
        stage(tag, Path(args.args[1]))
    else:
        print(fingerprint(tag))
    return 0


if __name__ == "__main__":
    sys.exit(main())
