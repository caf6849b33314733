"""Request schemas of the heart model (`POST /api/v1/risk/heart`); responses use :class:`~vitalcheck.schemas.common.RiskPrediction`."""

from typing import TYPE_CHECKING

from pydantic import BaseModel

from vitalcheck.catalog import HEART
from vitalcheck.schemas import INPUT_MODELS

EXAMPLE = HEART.example
"""A real record from the shared data set, used as the OpenAPI example and in tests (the catalog's)."""


if TYPE_CHECKING:  # the type checker sees a plain model; the service gets the generated one
    HeartInput = BaseModel
else:
    HeartInput = INPUT_MODELS["heart"]
