"""The registry: everything VitalCheck serves, loaded and checked once per process.

:meth:`Registry.load` is all-or-nothing: every artifact is checked against its model
card's sha256 before it is unpickled or opened, every model must reproduce its golden
outputs (a tabular model: its compiled form, against the pickle's recorded answers too),
and both reference tables must have their schema. Any failure raises one
:class:`~vitalcheck.cards.ArtifactCheckError` naming every artifact that failed, so a
half-loaded service never serves.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from vitalcheck.cards import ArtifactCheckError, StoredArtifact, sha256_file
from vitalcheck.catalog import BRAIN_TUMOR, REFERENCE_TABLES, TABULAR_MODELS
from vitalcheck.predictors.mri import ImagePredictor
from vitalcheck.predictors.tabular import TabularPredictor
from vitalcheck.reference import (
    FitbitPercentiles,
    HospitalAnalytics,
    load_fitbit_percentiles,
    load_hospital_analytics,
)
from vitalcheck.schemas.common import ModelInfo
from vitalcheck.settings import Settings

__all__ = ["Registry", "StoredArtifact"]


@dataclass(frozen=True)
class Registry:
    """The loaded state handed to every API method.

    Attributes:
        tabular: the seven scikit-learn predictors, by catalog name.
        brain_tumor: the ONNX image classifier.
        fitbit: the Fitbit percentile table.
        hospital: the hospital weekly table.
        tables: identity of each reference table (name, file, sha256), as returned in responses.

    """

    tabular: Mapping[str, TabularPredictor]
    brain_tumor: ImagePredictor
    fitbit: FitbitPercentiles
    hospital: HospitalAnalytics
    tables: Mapping[str, ModelInfo]

    @classmethod
    def load(
        cls,
        locations: Mapping[str, StoredArtifact | None],
        reference_dir: Path,
        settings: Settings,
        *,
        check_pickle: bool = False,
    ) -> Registry:
        """Load and check all eight models and both tables.

        Args:
            locations: catalog name → where its artifact lies (None: not in the model store).
            reference_dir: folder of the two Parquet tables.
            settings: ONNX thread counts and image limits.
            check_pickle: also unpickle each tabular artifact and check its compiled form against
                it live (:meth:`TabularPredictor.load`); the check before workers does, a worker does not.

        Raises:
            ArtifactCheckError: one or more artifacts are missing, tampered, built with other
                library versions, fail their golden check, or a table lacks its schema; the
                message names each one.

        """
        failures: list[str] = []

        def attempt(what: str, load):
            try:
                return load()
            except (ArtifactCheckError, ValueError, OSError) as exc:
                failures.append(f"{what}: {exc}")
                return None

        def located(name: str) -> StoredArtifact:
            where = locations.get(name)
            if where is None:
                raise ArtifactCheckError(
                    f"model {name} is not in the BentoML model store; run `python import_models.py`"
                )
            return where

        tabular = {}
        for name, spec in TABULAR_MODELS.items():
            tabular[name] = attempt(
                spec.artifact,
                lambda s=spec: TabularPredictor.load(s, **_kw(located(s.name)), check_pickle=check_pickle),
            )
        brain_tumor = attempt(
            BRAIN_TUMOR.artifact,
            lambda: ImagePredictor.load(
                **_kw(located(BRAIN_TUMOR.name)),
                intra_op_threads=settings.onnx_intra_op_threads,
                inter_op_threads=settings.onnx_inter_op_threads,
            ),
        )
        fitbit_file = reference_dir / REFERENCE_TABLES["fitbit_percentiles"]
        hospital_file = reference_dir / REFERENCE_TABLES["hospital_analytics"]
        fitbit = attempt(fitbit_file.name, lambda: load_fitbit_percentiles(fitbit_file))
        hospital = attempt(hospital_file.name, lambda: load_hospital_analytics(hospital_file))
        if failures:
            raise ArtifactCheckError("\n  - ".join(["these artifacts failed their checks:", *failures]), failures)
        tables = {}
        for name, file in REFERENCE_TABLES.items():
            digest = sha256_file(reference_dir / file)
            tables[name] = ModelInfo(name=name, tag=f"reference/{file}", version=digest[:12], sha256=digest)
        return cls(tabular=tabular, brain_tumor=brain_tumor, fitbit=fitbit, hospital=hospital, tables=tables)


def _kw(where: StoredArtifact) -> dict:
    return {"directory": where.directory, "tag": where.tag}
