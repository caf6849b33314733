"""The request handling behind every endpoint, independent of BentoML so that it is testable.

:class:`VitalCheckAPI` receives the loaded :class:`~vitalcheck.registry.Registry` and the
settings by injection; ``service.py`` builds one per worker and each ``@bentoml.api``
method delegates to it in one line. Refusals are raised as members of the error family
(:mod:`vitalcheck.errors`): :class:`~vitalcheck.errors.InvalidInput` (400) naming the field and
the rule, :class:`~vitalcheck.errors.PayloadTooLarge` (413) for an upload over
VITALCHECK_MAX_UPLOAD_BYTES. Both are pydantic validation errors. The domain errors of
reading a file or an image (:class:`~vitalcheck.errors.ImageRejected`, the source errors) are
translated here; any other ``ValidationError`` raised while answering is a server bug, answered
500 by :func:`vitalcheck.compat.install_error_boundary`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, TypeAdapter, ValidationError

from vitalcheck import sources, uploads
from vitalcheck.catalog import MODELS, REFERENCE_TABLES
from vitalcheck.errors import ImageRejected, InvalidInput, PayloadTooLarge
from vitalcheck.registry import Registry
from vitalcheck.schemas.common import BatchEnvelope, ClassPrediction, Envelope, validate_in_chunks
from vitalcheck.schemas.fitbit import FitbitInput, FitbitPrediction, MetricPercentile
from vitalcheck.schemas.hospital import HospitalAnalytics, HospitalQuery
from vitalcheck.schemas.models import ModelList, ServedModel
from vitalcheck.settings import Settings


class VitalCheckAPI:
    """All endpoint logic over one loaded registry.

    Args:
        registry: the loaded models and tables.
        settings: thresholds and limits.
        input_models: catalog name → the request model of that tabular task (used to
            validate uploaded files with the same rules as JSON records).

    """

    def __init__(self, registry: Registry, settings: Settings, input_models: dict[str, type[BaseModel]]) -> None:
        self.registry = registry
        self.settings = settings
        self._row_adapters = {
            name: TypeAdapter(list[model])  # type: ignore[valid-type]  # request models are built at run time
            for name, model in input_models.items()
        }

    # ---- tabular ----------------------------------------------------------------------------
    def _answer(self, name: str, records: Sequence[BaseModel], prefix: str = "") -> tuple[list[Any], list[list[str]]]:
        return self.registry.tabular[name].answer(
            records,
            moderate=self.settings.risk_moderate_threshold,
            high=self.settings.risk_high_threshold,
            prefix=prefix,
        )

    def single(self, name: str, record: BaseModel) -> Envelope:
        """Score one record of tabular model ``name``; warnings name out-of-range and imputed inputs."""
        (envelope,) = self.single_many(name, [record])
        return envelope

    def single_many(self, name: str, records: Sequence[BaseModel]) -> list[Envelope]:
        """Answer several single-record requests of model ``name`` with one compiled pass.

        Returns:
            One envelope per record, in order, each exactly what :meth:`single` answers for that
            record alone (its own warnings, unprefixed). Used by the service's micro-batcher.

        """
        info = self.registry.tabular[name].info
        predictions, warnings = self._answer(name, records)
        return [Envelope(model=info, prediction=p, warnings=w) for p, w in zip(predictions, warnings, strict=True)]

    def batch(self, name: str, records: Sequence[BaseModel]) -> BatchEnvelope:
        """Score many records of tabular model ``name`` with one compiled pass."""
        predictions, warnings = self._answer(name, records, prefix="records")
        flat = [w for per_record in warnings for w in per_record]
        return BatchEnvelope(model=self.registry.tabular[name].info, predictions=predictions, warnings=flat)

    def file(self, name: str, path: Path) -> BatchEnvelope:
        """Score an uploaded CSV or Parquet file in the data set's own format (target column optional).

        Raises:
            PayloadTooLarge: the file is over VITALCHECK_MAX_UPLOAD_BYTES (413).
            InvalidInput: the file is unreadable, compressed, lacks a required column, has
                more rows than allowed, or a row breaks a field's rule (``loc`` = file, row, field).

        """
        self._check_size("file", path)
        spec = self.registry.tabular[name].spec
        columns = sources.source_columns_of(spec)
        is_parquet = uploads.check_shape(path, columns, self.settings)
        # CSV: every record streamed once, bounded per record, before pandas parses anything.
        csv_rows = None if is_parquet else uploads.scan_csv(path, self.settings.max_batch_records)
        limits = sources.UploadLimits(
            max_rows=self.settings.max_batch_records, max_decoded_bytes=uploads.decoded_cap(self.settings)
        )
        try:
            raw = sources.read_source(path, limits, columns)
        except sources.SourceTooLarge as exc:
            rule, message = uploads.source_refusal(exc.rule, limits)
            raise InvalidInput.at("file", rule, message) from None
        except Exception:
            raise InvalidInput.at("file", "file_unreadable", "not a readable CSV or Parquet file") from None
        # A CSV with rows but none of the model's columns reads as no columns and no rows: the
        # scan's count tells it from an empty file, and features() then names the missing column.
        if len(raw) == 0 and (len(raw.columns) or not csv_rows):
            raise InvalidInput.at("file", "file_empty", "the file has no rows")
        if len(raw) > self.settings.max_batch_records:
            raise InvalidInput.at("file", "too_many_rows", f"more than {self.settings.max_batch_records} rows")
        try:
            features = sources.features_of(spec, raw)
        except sources.MissingColumnError as exc:
            raise InvalidInput.at("file", "missing_column", f"required column {exc.column!r} is missing") from None
        except sources.ColumnFormatError as exc:
            message = f"column {exc.column!r} holds a value that is not a valid {exc.kind}"
            raise InvalidInput.at("file", "malformed_column", message) from None
        except (ValueError, TypeError):
            raise InvalidInput.at(
                "file", "malformed_file", "a column could not be parsed in its documented format"
            ) from None
        rows = features.astype(object).where(features.notna(), None).to_dict("records")
        try:
            records = validate_in_chunks(rows, self._row_adapters[name].validate_python)
        except ValidationError as exc:
            raise _relabel(exc, "file") from None
        return self.batch(name, records)

    # ---- imaging, reference tables, models ---------------------------------------------------
    def brain_tumor(self, path: Path) -> Envelope:
        """Classify one uploaded brain MRI slice (JPEG or PNG), after the validity screen.

        The screen (:func:`vitalcheck.imaging.screen_image`) compares cheap statistics of the
        image with those of the training slices: an image clearly unlike any MRI slice is
        refused; one outside their usual range is answered with a warning.

        Raises:
            PayloadTooLarge: the upload is over VITALCHECK_MAX_UPLOAD_BYTES (413).
            InvalidInput: the upload is not a decodable JPEG/PNG or has too many pixels
                (``image_rejected``), or is clearly not an MRI slice (``not_an_mri_slice``:
                tiny, near-constant, strongly coloured, noise-like, mostly bright, too few levels).

        """
        self._check_size("image", path)
        predictor = self.registry.brain_tumor
        try:
            probabilities, screen_warnings = predictor.classify_upload(
                path.read_bytes(), max_bytes=self.settings.max_upload_bytes, max_pixels=self.settings.max_image_pixels
            )
        except ImageRejected as exc:
            raise InvalidInput.at("image", exc.kind, exc.rule) from None
        classes = MODELS["brain_tumor"].classes
        prediction = ClassPrediction(
            probabilities={c: float(p) for c, p in zip(classes, probabilities, strict=True)},
            predicted_class=classes[int(np.argmax(probabilities))],
        )
        return Envelope(model=predictor.info, prediction=prediction, warnings=screen_warnings)

    def fitbit(self, day: FitbitInput) -> Envelope:
        """Percentile of each submitted daily metric within the Fitbit cohort."""
        table = self.registry.fitbit
        facts = {m.name: m for m in table.metrics}
        prediction = FitbitPrediction(
            percentiles=[
                MetricPercentile(
                    metric=metric,
                    unit=facts[metric].unit,
                    percentile=table.percentile_of(metric, value),
                    cohort_user_days=facts[metric].n_user_days,
                    cohort_users=facts[metric].n_users,
                )
                for metric, value in day.model_dump(exclude_none=True).items()
            ]
        )
        return Envelope(model=self.registry.tables["fitbit_percentiles"], prediction=prediction)

    def hospital(self, query: HospitalQuery) -> Envelope:
        """Weekly rows matching the service and week range, with their summary."""
        rows, summary = self.registry.hospital.query(query.service, query.week_from, query.week_to)
        prediction = HospitalAnalytics(rows=_json_records(rows), summary=summary)
        return Envelope(model=self.registry.tables["hospital_analytics"], prediction=prediction)

    def models(self) -> ModelList:
        """Every served model with its card's facts, and both reference tables."""
        served = []
        for name in MODELS:
            predictor = self.registry.tabular.get(name) or self.registry.brain_tumor
            card = predictor.card
            served.append(
                ServedModel(
                    model=predictor.info,
                    task=card.task,
                    estimator=card.estimator,
                    dataset=card.dataset.model_dump(),
                    split=card.split,
                    metrics=card.metrics,
                    baseline_metrics=card.baseline_metrics,
                    framework_versions=card.framework_versions,
                    intended_use=card.intended_use,
                    constraints=card.extra.get("constraints", []),
                    constraint_cost=card.extra.get("constraint_cost"),
                    calibration=card.extra.get("calibration"),
                    recalibration=card.extra.get("recalibration"),
                    out_of_distribution=card.extra.get("out_of_distribution"),
                    explanation=card.extra.get("explanation"),
                )
            )
        tables = {
            name: {"file": REFERENCE_TABLES[name], "rows": len(table.frame), "metadata": table.metadata}
            for name, table in (
                ("fitbit_percentiles", self.registry.fitbit),
                ("hospital_analytics", self.registry.hospital),
            )
        }
        return ModelList(models=served, reference_tables=tables)

    def _check_size(self, field: str, path: Path) -> None:
        """Refuse an uploaded file over VITALCHECK_MAX_UPLOAD_BYTES: 413, type ``upload_too_large``."""
        if path.stat().st_size > self.settings.max_upload_bytes:
            message = f"upload exceeds {self.settings.max_upload_bytes} bytes"
            raise PayloadTooLarge.at(field, "upload_too_large", message)


def _relabel(exc: ValidationError, field: str) -> InvalidInput:
    """Row validation errors as one :class:`InvalidInput` under ``field``, at (row index, column), without values."""
    return InvalidInput.of(
        {"type": e["type"], "loc": (field, *e["loc"]), "msg": e["msg"]}
        for e in exc.errors(include_input=False, include_context=False, include_url=False)
    )


def _json_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [
        {k: (v.item() if isinstance(v, np.generic) else v) for k, v in row.items()}
        for row in frame.astype(object).where(frame.notna(), None).to_dict("records")
    ]
