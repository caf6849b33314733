"""Refusing to start: the serving process's check before workers start, and a worker's refusal.

:func:`light_preflight` runs in ``bentoml serve``'s serving process before any worker starts and
imports neither scikit-learn nor ONNX Runtime (the two slowest imports of the stack), so that
process stays small and start-up pays for those imports once, in the workers. What it cannot
check without unpickling (each model's golden outputs) each worker checks in
:meth:`vitalcheck.registry.Registry.load`; a failure there goes through :func:`refuse_to_start`,
which stops the whole server rather than letting BentoML restart the worker in a loop.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from vitalcheck.cards import ArtifactCheckError, StoredArtifact, verify_artifact
from vitalcheck.catalog import MODELS, REFERENCE_TABLES

logger = logging.getLogger("vitalcheck")

REFUSAL_FILE_VARIABLE = "VITALCHECK_REFUSAL_FILE"
"""Environment variable naming the file where a worker leaves its reason for refusing to start."""


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


def check_before_workers(locations: Mapping[str, StoredArtifact | None], reference_dir: Path) -> None:
    """Run :func:`light_preflight` in the serving process; exit with status 1 if anything failed.

    On success, creates the refusal file that the workers spawned next inherit (through
    ``VITALCHECK_REFUSAL_FILE``), and arranges for this process to exit with status 3 if a
    worker leaves a reason in it (see :func:`refuse_to_start`).

    Raises:
        SystemExit: status 1, after printing one line per failed artifact or table to stderr.

    """
    failures = light_preflight(locations, reference_dir)
    if failures:
        print(
            "\n  - ".join(["VitalCheck refuses to start: these artifacts failed their checks:", *failures]),
            file=sys.stderr,
        )
        raise SystemExit(1)
    refusal_file = Path(tempfile.mkdtemp(prefix="vitalcheck-")) / "refusal"
    os.environ[REFUSAL_FILE_VARIABLE] = str(refusal_file)
    atexit.register(_exit_if_a_worker_refused, refusal_file)


def refuse_to_start(exc: Exception):
    """Stop the whole server, not just this worker, with a message naming the failed artifacts.

    BentoML restarts a worker whose ``__init__`` raises, so a worker that cannot load its
    artifacts would restart in a loop. Instead it logs the reason, leaves it in the serving
    process's refusal file (which makes ``bentoml serve`` exit with status 3), asks the
    serving process (its parent) to shut down, and exits with status 3.

    Raises:
        SystemExit: always, status 3.

    """
    logger.critical("VitalCheck refuses to start: %s", exc)
    if refusal_file := os.environ.get(REFUSAL_FILE_VARIABLE):
        with open(refusal_file, "a") as fh:
            fh.write(f"{exc}\n")
    if os.environ.get("BENTOML_WORKER_ID") or _parent_is_bentoml():
        os.kill(os.getppid(), signal.SIGTERM)
    raise SystemExit(3)


def _exit_if_a_worker_refused(refusal_file: Path) -> None:
    """At the serving process's exit: if a worker refused to start, say why and exit with status 3."""
    reason = refusal_file.read_text().strip() if refusal_file.is_file() else ""
    shutil.rmtree(refusal_file.parent, ignore_errors=True)
    if reason:
        print(f"VitalCheck refuses to start: {reason}", file=sys.stderr, flush=True)
        os._exit(3)  # BentoML's CLI would otherwise exit 0 after a SIGTERM-initiated shutdown


def _parent_is_bentoml() -> bool:
    try:
        import psutil

        return any("bentoml" in part for part in psutil.Process(os.getppid()).cmdline())
    except Exception:
        return False
