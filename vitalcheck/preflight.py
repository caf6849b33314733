"""Refusing to start: every artifact and table is checked before any worker is spawned.

A half-loaded service is worse than a dead one, and BentoML restarts a worker whose
``__init__`` raises, so a worker that cannot load would restart in a loop. The service's
``@bentoml.on_deployment`` hook (run by ``bentoml serve`` once, before it spawns workers) calls
:func:`check_before_workers`, which runs the workers' whole load, golden outputs included, in a
child process, and more: it unpickles each tabular artifact and checks its compiled form and
recorded answers against it live (a worker serves the compiled form and imports no scikit-learn).
The serving process itself never imports scikit-learn or ONNX Runtime and stays small. Any failure exits with status 1 and one line per failed artifact, before a worker exists.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import NoReturn

from vitalcheck.cards import ArtifactCheckError, StoredArtifact

logger = logging.getLogger("vitalcheck")

CHECK_TIMEOUT_S = 120.0
"""Longest the child process may take to load and check everything (about 3 s on 2 cores)."""


def full_check(locations: Mapping[str, StoredArtifact | None], reference_dir: Path) -> list[str]:
    """The workers' own load (:meth:`vitalcheck.registry.Registry.load`), with the pickles checked live.

    Each artifact's sha256 is checked against its card before it is opened, then its library
    versions and its golden outputs, and each compiled form against its pickle; both tables
    must have their schema.

    Returns:
        One message per failed artifact or table; empty when everything would load.

    """
    from vitalcheck.registry import Registry
    from vitalcheck.settings import get_settings

    try:
        Registry.load(locations, reference_dir, get_settings(), check_pickle=True)
    except ArtifactCheckError as exc:
        return exc.failures
    return []


def check_before_workers(locations: Mapping[str, StoredArtifact | None], reference_dir: Path) -> None:
    """Run :func:`full_check` in a child process; exit with status 1 if anything failed.

    Raises:
        SystemExit: status 1, after printing one line per failed artifact or table to stderr.

    """
    where = {name: None if loc is None else [str(loc.directory), loc.tag] for name, loc in locations.items()}
    command = [sys.executable, "-m", "vitalcheck.preflight", str(reference_dir)]
    # The child finds this very package wherever it was imported from (a Bento puts it on
    # sys.path itself, not on PYTHONPATH).
    here = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p)}
    try:
        child = subprocess.run(  # noqa: S603 (our own interpreter and module)
            command, input=json.dumps(where), capture_output=True, text=True, timeout=CHECK_TIMEOUT_S, env=env
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
    print("\n".join(" ".join(f.split()) for f in failures))  # one line per failure
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(_main())
