"""Request schemas of the diabetes model (`POST /api/v1/risk/diabetes`); responses use :class:`~vitalcheck.schemas.common.RiskPrediction`."""

from typing import TYPE_CHECKING

from pydantic import BaseModel

from vitalcheck.catalog import DIABETES
from vitalcheck.schemas.common import tabular_input_model

EXAMPLE = {
    "pregnancies": 8,
    "glucose_mg_dl": 183.0,
    "diastolic_bp_mm_hg": 64.0,
    "skin_thickness_mm": None,
    "insulin_uu_ml": None,
    "bmi_kg_m2": 23.3,
    "diabetes_pedigree": 0.672,
    "age_years": 32,
}
"""A real record from the shared data set (DIABETES.dataset), used as the OpenAPI example and in tests."""

if TYPE_CHECKING:  # the type checker sees a plain model; the service gets the generated one
    DiabetesInput = BaseModel
else:
    DiabetesInput = tabular_input_model(DIABETES, EXAMPLE, "DiabetesInput")
