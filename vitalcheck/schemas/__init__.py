"""Request and response schemas, one module per task; :data:`INPUT_MODELS` indexes the tabular ones."""

from pydantic import BaseModel

from vitalcheck.schemas import breast_cancer, diabetes, heart, insurance, life_expectancy, sleep, stroke

INPUT_MODELS: dict[str, type[BaseModel]] = {
    "diabetes": diabetes.DiabetesInput,
    "heart": heart.HeartInput,
    "stroke": stroke.StrokeInput,
    "breast_cancer": breast_cancer.BreastCancerInput,
    "sleep": sleep.SleepInput,
    "life_expectancy": life_expectancy.LifeExpectancyInput,
    "insurance": insurance.InsuranceInput,
}
"""The request model of each tabular task, by catalog name (used by the service, batch scoring and benchmarks)."""
