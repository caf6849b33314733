"""Schemas of the Fitbit activity percentiles (`POST /api/v1/fitbit/percentiles`)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from vitalcheck.schemas.common import StrictInput, documented_keys_only, json_types

EXAMPLE: dict[str, Any] = {
    "total_steps": 8500,
    "very_active_minutes": 25,
    "sedentary_minutes": 720,
    "minutes_asleep": 420,
}
"""A plausible day, used as the OpenAPI example and in tests."""


class FitbitInput(BaseModel):
    """One person's daily metrics; give at least one.

    Each is placed within the Fitbit cohort (33 users, 2016-04-12 to 2016-05-12, Fitbit
    Fitness Tracker Data, CC0).
    """

    model_config = ConfigDict(**StrictInput, json_schema_extra={"example": EXAMPLE})

    total_steps: float | None = Field(None, ge=0, le=100_000, description="Steps in the day (0 to 100000).")
    total_distance_km: float | None = Field(None, ge=0, le=150, description="Distance in the day, km (0 to 150).")
    very_active_minutes: float | None = Field(None, ge=0, le=1440, description="Very active minutes (0 to 1440).")
    fairly_active_minutes: float | None = Field(None, ge=0, le=1440, description="Fairly active minutes (0 to 1440).")
    lightly_active_minutes: float | None = Field(None, ge=0, le=1440, description="Lightly active minutes (0 to 1440).")
    sedentary_minutes: float | None = Field(None, ge=0, le=1440, description="Sedentary minutes (0 to 1440).")
    calories_kcal: float | None = Field(None, ge=0, le=20_000, description="Energy expenditure, kcal (0 to 20000).")
    minutes_asleep: float | None = Field(None, ge=0, le=1440, description="Minutes asleep in the night (0 to 1440).")
    time_in_bed_minutes: float | None = Field(None, ge=0, le=1440, description="Minutes in bed (0 to 1440).")

    _json_types = json_types(
        dict.fromkeys(
            (
                "total_steps",
                "total_distance_km",
                "very_active_minutes",
                "fairly_active_minutes",
                "lightly_active_minutes",
                "sedentary_minutes",
                "calories_kcal",
                "minutes_asleep",
                "time_in_bed_minutes",
            ),
            "number",
        )
    )

    _documented_keys = documented_keys_only()

    @model_validator(mode="after")
    def _at_least_one(self) -> FitbitInput:
        if all(v is None for v in self.model_dump().values()):
            raise ValueError("give at least one metric")
        return self


class MetricPercentile(BaseModel):
    """Where one metric lies within the cohort."""

    metric: str = Field(description="Metric name, as in the request.")
    unit: str = Field(description="Unit of the metric.")
    percentile: float = Field(ge=0, le=100, description="Percentile rank within the cohort's user-days, 0 to 100.")
    cohort_user_days: int = Field(description="Number of user-days (or nights) in the cohort for this metric.")
    cohort_users: int = Field(description="Number of distinct users in the cohort for this metric.")


class FitbitPrediction(BaseModel):
    """Percentile of each submitted metric."""

    percentiles: list[MetricPercentile] = Field(description="One entry per submitted metric, in request order.")
