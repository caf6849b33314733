"""Request schemas of the stroke model (`POST /api/v1/risk/stroke`); responses use :class:`~vitalcheck.schemas.common.RiskPrediction`."""

from typing import TYPE_CHECKING

from pydantic import BaseModel

from vitalcheck.catalog import STROKE
from vitalcheck.schemas import INPUT_MODELS

EXAMPLE = STROKE.example
"""A real record from the shared data set, used as the OpenAPI example and in tests (the catalog's)."""


if TYPE_CHECKING:  # the type checker sees a plain model; the service gets the generated one
    StrokeInput = BaseModel
else:
    StrokeInput = INPUT_MODELS["stroke"]
