"""Request schemas of the life_expectancy model (`POST /api/v1/life-expectancy`); responses use :class:`LifeExpectancyPrediction`."""

from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from vitalcheck.catalog import LIFE_EXPECTANCY
from vitalcheck.schemas import INPUT_MODELS
from vitalcheck.schemas.common import OOD_PERCENTILE_DESCRIPTION, Contributor, Explanation

EXAMPLE = LIFE_EXPECTANCY.example
"""A real record from the shared data set, used as the OpenAPI example and in tests (the catalog's)."""


if TYPE_CHECKING:  # the type checker sees a plain model; the service gets the generated one
    LifeExpectancyInput = BaseModel
else:
    LifeExpectancyInput = INPUT_MODELS["life_expectancy"]


class LifeExpectancyPrediction(BaseModel):
    """Predicted life expectancy at birth of a country-year."""

    life_expectancy_years: float = Field(description="Predicted life expectancy at birth, in years.")
    contributors: list[Contributor] = Field(description="Top-5 contributors, in years; largest |contribution| first.")
    explanation: Explanation = Field(description="Every field's exact contribution, in years.")
    ood_percentile: float = Field(ge=0, le=100, description=OOD_PERCENTILE_DESCRIPTION)
