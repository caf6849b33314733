"""Request schemas of the insurance model (`POST /api/v1/insurance`); responses use :class:`InsurancePrediction`."""

from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from vitalcheck.catalog import INSURANCE
from vitalcheck.schemas import INPUT_MODELS
from vitalcheck.schemas.common import OOD_PERCENTILE_DESCRIPTION, Contributor, Explanation

EXAMPLE = INSURANCE.example
"""A real record from the shared data set, used as the OpenAPI example and in tests (the catalog's)."""


if TYPE_CHECKING:  # the type checker sees a plain model; the service gets the generated one
    InsuranceInput = BaseModel
else:
    InsuranceInput = INPUT_MODELS["insurance"]


class InsurancePrediction(BaseModel):
    """Predicted annual medical charges with a calibrated 90 % prediction interval."""

    charges_usd: float = Field(description="Central estimate of annual charges, USD/year.")
    lower_usd: float = Field(description="Lower end of the 90 % interval (conformalised 5 % quantile), USD/year.")
    upper_usd: float = Field(description="Upper end of the 90 % interval (conformalised 95 % quantile), USD/year.")
    interval_level: float = Field(0.9, description="Nominal coverage of [lower_usd, upper_usd] (0.9).")
    contributors: list[Contributor] = Field(description="Top-5 contributors to charges_usd, in USD/year.")
    explanation: Explanation = Field(description="Every field's exact contribution to charges_usd, in USD/year.")
    ood_percentile: float = Field(ge=0, le=100, description=OOD_PERCENTILE_DESCRIPTION)
