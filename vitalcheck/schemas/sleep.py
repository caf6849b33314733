"""Request schemas of the sleep model (`POST /api/v1/sleep`); responses use :class:`~vitalcheck.schemas.common.ClassPrediction`."""

from typing import TYPE_CHECKING

from pydantic import BaseModel

from vitalcheck.catalog import SLEEP
from vitalcheck.schemas.common import tabular_input_model

EXAMPLE = {
    "sex": "Male",
    "age_years": 27,
    "occupation": "Software Engineer",
    "sleep_duration_h": 6.1,
    "sleep_quality_1_10": 6,
    "physical_activity_min_per_day": 42,
    "stress_level_1_10": 6,
    "bmi_category": "Overweight",
    "systolic_bp_mm_hg": 126,
    "diastolic_bp_mm_hg": 83,
    "resting_heart_rate_bpm": 77,
    "daily_steps": 4200,
}
"""A real record from the shared data set (SLEEP.dataset), used as the OpenAPI example and in tests."""

if TYPE_CHECKING:  # the type checker sees a plain model; the service gets the generated one
    SleepInput = BaseModel
else:
    SleepInput = tabular_input_model(SLEEP, EXAMPLE, "SleepInput")
