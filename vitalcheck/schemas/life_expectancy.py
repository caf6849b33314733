"""Request schemas of the life_expectancy model (`POST /api/v1/life-expectancy`); responses use :class:`LifeExpectancyPrediction`."""

from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from vitalcheck.catalog import LIFE_EXPECTANCY
from vitalcheck.schemas.common import Contributor, tabular_input_model

EXAMPLE = {
    "year": 2015,
    "development_status": "Developing",
    "adult_mortality_per_1000": 74.0,
    "infant_deaths_per_1000": 0.0,
    "alcohol_litres_per_capita": 4.6,
    "health_expenditure_pct_gdp_per_capita": 364.9752287,
    "hepatitis_b_coverage_pct": 99.0,
    "measles_cases_per_1000": 0.0,
    "mean_bmi_kg_m2": 58.0,
    "under_five_deaths_per_1000": 0.0,
    "polio_coverage_pct": 99.0,
    "total_health_expenditure_pct": 6.0,
    "diphtheria_coverage_pct": 99.0,
    "hiv_aids_deaths_per_1000": 0.1,
    "gdp_per_capita_usd": 3954.22783,
    "population": 28873.0,
    "thinness_10_19_pct": 1.2,
    "thinness_5_9_pct": 1.3,
    "income_composition_index": 0.762,
    "schooling_years": 14.2,
}
"""A real record from the shared data set (LIFE_EXPECTANCY.dataset), used as the OpenAPI example and in tests."""

if TYPE_CHECKING:  # the type checker sees a plain model; the service gets the generated one
    LifeExpectancyInput = BaseModel
else:
    LifeExpectancyInput = tabular_input_model(LIFE_EXPECTANCY, EXAMPLE, "LifeExpectancyInput")


class LifeExpectancyPrediction(BaseModel):
    """Predicted life expectancy at birth of a country-year."""

    life_expectancy_years: float = Field(description="Predicted life expectancy at birth, in years.")
    contributors: list[Contributor] = Field(description="Top-5 contributors, in years; largest |contribution| first.")
