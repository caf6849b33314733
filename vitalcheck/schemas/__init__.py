"""Request and response schemas; :data:`INPUT_MODELS` holds the request model of every tabular task.

Each request model is built from its catalog record (:func:`~vitalcheck.schemas.common.tabular_input_model`):
a new task needs no schema code unless its prediction has a type of its own.
"""

from pydantic import BaseModel

from vitalcheck.catalog import TABULAR_MODELS
from vitalcheck.schemas.common import tabular_input_model


def input_model_name(name: str) -> str:
    """The request model's class name (shown in OpenAPI): ``breast_cancer`` → ``BreastCancerInput``."""
    return "".join(part.capitalize() for part in name.split("_")) + "Input"


INPUT_MODELS: dict[str, type[BaseModel]] = {
    name: tabular_input_model(spec, spec.example, input_model_name(name)) for name, spec in TABULAR_MODELS.items()
}
"""The request model of each tabular task, by catalog name (used by the service, batch scoring and benchmarks)."""
