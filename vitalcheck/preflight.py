"""Refusing to start: every artifact and table is checked before any worker is spawned.

A half-loaded service is worse than a dead one, and BentoML restarts a worker whose
``__init__`` raises, so a worker that cannot load would restart in a loop. The service's
``@bentoml.on_deployment`` hook (run by ``bentoml serve`` once, before it spawns workers) calls
:func:`check_before_workers`, which runs the workers' whole load, golden outputs included, in a
child process: the serving process itself never imports scikit-learn or ONNX Runtime and stays
small. Any failure exits with status 1 and one line per failed artifact, before a worker exists.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import NoReturn

from vitalcheck.cards import ArtifactCheckError, StoredArtifact, verify_artifact
from vitalcheck.catalog import MODELS, REFERENCE_TABLES

logger = logging.getLogger("vitalcheck")

CHECK_TIMEOUT_S = 120.0
"""Longest the child process may take to load and check everything (about 3 s on 2 cores)."""


def light_preflight(locations: Mapping[str, StoredArtifact | None], reference_dir: Path) -> list[str]:
    """Check every artifact and both reference tables without loading any model.

    Checks: each of the eight models is in the model store; its card validates and the
    artifact's sha256 equals the card's (so a tampered pickle is never opened); a
    scikit-learn artifact was built with the installed scikit-learn version (read from
    package metadata); both Parquet tables load and pass their schema checks
    (:mod:`vitalcheck.reference`, which needs pandas and pyarrow only).

    Args:
        locations: catalog name → where its artifact and card lie (None: not in the store).
        reference_dir: folder of the two Parquet tables.

    Returns:
        One message per failed artifact or table, naming its file; empty when all pass.

    """
    from vitalcheck.reference import load_fitbit_percentiles, load_hospital_analytics

    failures: list[str] = []
    try:
        installed = version("scikit-learn")
    except PackageNotFoundError:
        installed = None
    for name, spec in MODELS.items():
        where = locations.get(name)
        if where is None:
            failures.append(
                f"{spec.artifact}: model {name} is not in the BentoML model store; run `python import_models.py`"
            )
            continue
        artifact = where.directory / spec.artifact
        try:
            card = verify_artifact(artifact, where.directory / spec.card_file)
        except ArtifactCheckError as exc:
            failures.append(f"{spec.artifact}: {exc}")
            continue
        trained_with = card.framework_versions.get("scikit-learn")
        if card.framework == "scikit-learn" and trained_with != installed:
            failures.append(
                f"{spec.artifact}: artifact {artifact} was built with scikit-learn {trained_with}, but {installed} is "
                "installed: retrain it or install the matching version"
            )
    for file, load in (
        (REFERENCE_TABLES["fitbit_percentiles"], load_fitbit_percentiles),
        (REFERENCE_TABLES["hospital_analytics"], load_hospital_analytics),
    ):
        try:
            load(reference_dir / file)
        except (ValueError, OSError) as exc:
            failures.append(f"{file}: {exc}")
    return failures


def full_check(locations: Mapping[str, StoredArtifact | None], reference_dir: Path) -> list[str]:
    """:func:`light_preflight`, then (if it passes) the workers' own load with every golden check.

    Returns:
        One message per failed artifact or table; empty when everything would load.

    """
    failures = light_preflight(locations, reference_dir)
    if failures:
        return failures
    from vitalcheck.registry import Registry
    from vitalcheck.settings import get_settings

    try:
        Registry.load(locations, reference_dir, get_settings())
    except ArtifactCheckError as exc:
        return [str(exc)]
    return []


def check_before_workers(locations: Mapping[str, StoredArtifact | None], reference_dir: Path) -> None:
    """Run :func:`full_check` in a child process; exit with status 1 if anything failed.

    Raises:
        SystemExit: status 1, after printing one line per failed artifact or table to stderr.

    """
    where = {name: None if loc is None else [str(loc.directory), loc.tag] for name, loc in locations.items()}
    command = [sys.executable, "-m", "vitalcheck.preflight", str(reference_dir)]
    try:
        child = subprocess.run(  # noqa: S603 (our own interpreter and module)
            command, input=json.dumps(where), capture_output=True, text=True, timeout=CHECK_TIMEOUT_S
        )
        failures = child.stdout.splitlines() if child.returncode else []
        if child.returncode and not failures:
            failures = [f"the artifact check stopped with status {child.returncode}:\n{child.stderr[-2000:]}"]
    except subprocess.TimeoutExpired:
        failures = [f"the artifact check did not finish within {CHECK_TIMEOUT_S:g} s"]
    if failures:
        print(
            "\n  - ".join(["VitalCheck refuses to start: these artifacts failed their checks:", *failures]),
            file=sys.stderr,
        )
        raise SystemExit(1)


def refuse_to_start(exc: Exception) -> NoReturn:
    """A worker's refusal (its artifacts changed after the check before workers): log it and exit 3.

    Raises:
        SystemExit: always, status 3.

    """
    logger.critical("VitalCheck refuses to start: %s", exc)
    raise SystemExit(3)


def _main() -> int:
    where = json.loads(sys.stdin.read())
    locations = {name: None if w is None else StoredArtifact(Path(w[0]), w[1]) for name, w in where.items()}
    failures = full_check(locations, Path(sys.argv[1]))
    print("\n".join(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(_main())
