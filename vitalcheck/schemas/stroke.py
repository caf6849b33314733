"""Request schemas of the stroke model (`POST /api/v1/risk/stroke`); responses use :class:`~vitalcheck.schemas.common.RiskPrediction`."""

from typing import TYPE_CHECKING

from pydantic import BaseModel

from vitalcheck.catalog import STROKE
from vitalcheck.schemas.common import tabular_input_model

EXAMPLE = {
    "sex": "Female",
    "age_years": 82.0,
    "hypertension": False,
    "heart_disease": False,
    "ever_married": True,
    "work_type": "Self-employed",
    "residence_type": "Urban",
    "avg_glucose_mg_dl": 243.59,
    "bmi_kg_m2": 24.3,
    "smoking_status": "never smoked",
}
"""A real record from the shared data set (STROKE.dataset), used as the OpenAPI example and in tests."""

if TYPE_CHECKING:  # the type checker sees a plain model; the service gets the generated one
    StrokeInput = BaseModel
else:
    StrokeInput = tabular_input_model(STROKE, EXAMPLE, "StrokeInput")
