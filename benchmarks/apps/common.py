"""What both FastAPI contenders share: thread sizing, the request models, and the routes they serve.

Importing this module first sizes the native thread pools exactly as ``service.py`` does
(:mod:`vitalcheck.threads`: one OpenMP / OpenBLAS thread per process unless set), so that all
contenders compute under the same conditions.
"""

import shutil
import tempfile
from pathlib import Path

from fastapi import UploadFile
from pydantic import BaseModel

from vitalcheck.schemas import INPUT_MODELS, diabetes, insurance, stroke
from vitalcheck.schemas.common import batch_input_model
from vitalcheck.settings import get_settings
from vitalcheck.threads import size_thread_pools

size_thread_pools(get_settings().compute_threads)  # before anything loads NumPy or OpenMP

__all__ = ["BATCH_MODELS", "INPUT_MODELS", "MRI_ROUTE", "ROUTES", "spooled_to_path"]

BATCH_MODELS: dict[str, type[BaseModel]] = {
    "diabetes": batch_input_model(diabetes.DiabetesInput, "DiabetesBatchInput", get_settings().max_batch_records),
    "stroke": batch_input_model(stroke.StrokeInput, "StrokeBatchInput", get_settings().max_batch_records),
    "insurance": batch_input_model(insurance.InsuranceInput, "InsuranceBatchInput", get_settings().max_batch_records),
}
"""Batch request models of the benchmarked batch routes."""

ROUTES: dict[str, str] = {
    "diabetes": "/api/v1/risk/diabetes",
    "stroke": "/api/v1/risk/stroke",
    "insurance": "/api/v1/insurance",
}
"""The single-record routes both FastAPI apps serve (VitalCheck's routes; ``/batch`` appended for batches)."""

MRI_ROUTE = "/api/v1/imaging/brain-tumor"
"""The image route (multipart field ``image``), as in VitalCheck."""


def spooled_to_path(upload: UploadFile) -> Path:
    """Copy an upload to a named temporary file, as BentoML does for a ``Path`` input.

    The caller deletes the file. VitalCheck's :meth:`~vitalcheck.api.VitalCheckAPI.brain_tumor`
    takes a path, so both FastAPI apps hand it one made the same way.
    """
    with tempfile.NamedTemporaryFile(delete=False, suffix=Path(upload.filename or "").suffix) as out:
        shutil.copyfileobj(upload.file, out)
    return Path(out.name)
