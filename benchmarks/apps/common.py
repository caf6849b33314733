"""What both FastAPI contenders share: thread sizing, the request models, the routes they serve, and
the original design's way of calling a pickle.

Importing this module first sizes the native thread pools exactly as ``service.py`` does
(:mod:`vitalcheck.threads`: one OpenMP / OpenBLAS thread per process unless set), so that all
contenders compute under the same conditions.
"""

import shutil
import tempfile
from pathlib import Path
from typing import Any

from fastapi import UploadFile
from pydantic import BaseModel

from vitalcheck.catalog import TABULAR_MODELS, ModelSpec
from vitalcheck.schemas import INPUT_MODELS, input_model_name
from vitalcheck.schemas.common import batch_input_model
from vitalcheck.settings import get_settings
from vitalcheck.threads import size_thread_pools

size_thread_pools(get_settings().compute_threads)  # before anything loads NumPy or OpenMP

__all__ = [
    "BATCH_MODELS",
    "INPUT_MODELS",
    "MRI_ROUTE",
    "ROUTES",
    "pickle_answers",
    "spooled_to_path",
]

BATCH_MODELS: dict[str, type[BaseModel]] = {
    name: batch_input_model(
        INPUT_MODELS[name], input_model_name(name).replace("Input", "BatchInput"), get_settings().max_batch_records
    )
    for name in TABULAR_MODELS
}
"""Batch request models of the seven tabular batch routes (as ``service.py`` builds them)."""

ROUTES: dict[str, str] = {name: spec.route for name, spec in TABULAR_MODELS.items()}
"""The single-record routes both FastAPI apps serve: all seven tabular models, at VitalCheck's routes
(``/batch`` appended for batches)."""

MRI_ROUTE = "/api/v1/imaging/brain-tumor"
"""The image route (multipart field ``image``), as in VitalCheck."""


def pickle_answers(spec: ModelSpec, estimator: Any, records: list[BaseModel]) -> list[dict[str, Any]]:
    """The original design's answer to validated records: the pickle called on a DataFrame, nothing more.

    The records become a DataFrame (:func:`vitalcheck.predictors.tabular.records_to_frame`, one row
    each) and the unpickled estimator is called once on it, as the original article's routes do:
    no compiled form, no explanation, no out-of-distribution percentile.

    Args:
        spec: the model's catalog record.
        estimator: what ``joblib.load`` returned for ``spec.artifact`` (a Pipeline; for the
            interval regressor the tuple ``(central, lower, upper)``).
        records: request models validated with ``INPUT_MODELS[spec.name]``.

    Returns:
        One prediction per record: binary classifiers ``{"probability"}``; multiclass
        ``{"probabilities", "predicted_class"}`` (classes in ``spec.classes`` order); the regressor
        ``{"life_expectancy_years"}``; the interval regressor ``{"charges_usd", "lower_usd",
        "upper_usd"}`` (the bounds never inside out).

    """
    import numpy as np

    from vitalcheck.predictors.tabular import records_to_frame

    frame = records_to_frame(spec, [r.model_dump() for r in records])
    if spec.kind == "classifier":
        proba = np.asarray(estimator.predict_proba(frame), dtype=np.float64)
        if len(spec.classes) == 2:
            return [{"probability": p} for p in proba[:, 1].tolist()]
        return [
            {
                "probabilities": dict(zip(spec.classes, row, strict=True)),
                "predicted_class": spec.classes[int(np.argmax(row))],
            }
            for row in proba.tolist()
        ]
    if spec.kind == "regressor":
        return [{"life_expectancy_years": v} for v in np.asarray(estimator.predict(frame), dtype=np.float64).tolist()]
    central, lower, upper = (np.asarray(m.predict(frame), dtype=np.float64).tolist() for m in estimator)
    return [
        {"charges_usd": c, "lower_usd": min(lo, c), "upper_usd": max(hi, c)}
        for c, lo, hi in zip(central, lower, upper, strict=True)
    ]


def spooled_to_path(upload: UploadFile) -> Path:
    """Copy an upload to a named temporary file, as BentoML does for a ``Path`` input.

    The caller deletes the file. VitalCheck's :meth:`~vitalcheck.api.VitalCheckAPI.brain_tumor`
    takes a path, so both FastAPI apps hand it one made the same way.
    """
    with tempfile.NamedTemporaryFile(delete=False, suffix=Path(upload.filename or "").suffix) as out:
        shutil.copyfileobj(upload.file, out)
    return Path(out.name)
