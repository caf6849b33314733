"""Request schemas of the breast_cancer model (`POST /api/v1/risk/breast-cancer`); responses use :class:`~vitalcheck.schemas.common.RiskPrediction`."""

from typing import TYPE_CHECKING

from pydantic import BaseModel

from vitalcheck.catalog import BREAST_CANCER
from vitalcheck.schemas import INPUT_MODELS

EXAMPLE = BREAST_CANCER.example
"""A real record from the shared data set, used as the OpenAPI example and in tests (the catalog's)."""


if TYPE_CHECKING:  # the type checker sees a plain model; the service gets the generated one
    BreastCancerInput = BaseModel
else:
    BreastCancerInput = INPUT_MODELS["breast_cancer"]
