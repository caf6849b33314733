"""The start-up check of ``bentoml serve``'s serving process: everything that does not need the models loaded.

:func:`light_preflight` runs before any worker starts and imports neither scikit-learn nor
ONNX Runtime (the two slowest imports of the stack), so the serving process stays small and
start-up pays for those imports once, in the worker. What it cannot check without unpickling
(each model's golden outputs) the worker checks in :meth:`vitalcheck.registry.Registry.load`.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from vitalcheck.cards import ArtifactCheckError, StoredArtifact, verify_artifact
from vitalcheck.catalog import MODELS, REFERENCE_TABLES


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
