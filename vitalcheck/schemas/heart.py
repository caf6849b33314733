"""Request schemas of the heart model (`POST /api/v1/risk/heart`); responses use :class:`~vitalcheck.schemas.common.RiskPrediction`."""

from typing import TYPE_CHECKING

from pydantic import BaseModel

from vitalcheck.catalog import HEART
from vitalcheck.schemas.common import tabular_input_model

EXAMPLE = {
    "age_years": 63,
    "sex": "Male",
    "chest_pain_type": "typical angina",
    "resting_bp_mm_hg": 145.0,
    "cholesterol_mg_dl": 233.0,
    "fasting_blood_sugar_over_120": True,
    "resting_ecg": "lv hypertrophy",
    "max_heart_rate_bpm": 150.0,
    "exercise_angina": False,
    "st_depression_mm": 2.3,
    "st_slope": "downsloping",
    "major_vessels": 0,
    "thalassemia": "fixed defect",
}
"""A real record from the shared data set (HEART.dataset), used as the OpenAPI example and in tests."""

if TYPE_CHECKING:  # the type checker sees a plain model; the service gets the generated one
    HeartInput = BaseModel
else:
    HeartInput = tabular_input_model(HEART, EXAMPLE, "HeartInput")
