"""Request schemas of the sleep model (`POST /api/v1/sleep`); responses use :class:`~vitalcheck.schemas.common.ClassPrediction`."""

from typing import TYPE_CHECKING

from pydantic import BaseModel

from vitalcheck.catalog import SLEEP
from vitalcheck.schemas import INPUT_MODELS

EXAMPLE = SLEEP.example
"""A real record from the shared data set, used as the OpenAPI example and in tests (the catalog's)."""


if TYPE_CHECKING:  # the type checker sees a plain model; the service gets the generated one
    SleepInput = BaseModel
else:
    SleepInput = INPUT_MODELS["sleep"]
