"""Schemas of the hospital weekly analytics (`POST /api/v1/hospital/analytics`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from vitalcheck.schemas.common import StrictInput, documented_keys_only, json_types

EXAMPLE: dict[str, Any] = {"service": "emergency", "week_from": 1, "week_to": 4}
"""An example query, used as the OpenAPI example and in tests."""


class HospitalQuery(BaseModel):
    """Filter the weekly table of the Hospital Beds Management data (synthetic, CC0)."""

    model_config = ConfigDict(**StrictInput, json_schema_extra={"example": EXAMPLE})

    service: Literal["emergency", "surgery", "general_medicine", "ICU"] | None = Field(
        None, description="Hospital service; null for all services."
    )
    week_from: int = Field(1, ge=1, le=52, description="First week (1 to 52), inclusive.")
    week_to: int = Field(52, ge=1, le=52, description="Last week (1 to 52), inclusive; not before week_from.")

    _json_types = json_types({"week_from": "integer", "week_to": "integer"})
    _documented_keys = documented_keys_only()

    @model_validator(mode="after")
    def _ordered(self) -> HospitalQuery:
        if self.week_from > self.week_to:
            raise ValueError("week_from must not be after week_to")
        return self


class HospitalWeek(BaseModel):
    """One service in one week (hospital_analytics.parquet; counts per service and week)."""

    week: int = Field(description="Week number, 1 to 52.")
    month: int = Field(description="Month, 1 to 12, as given by the source.")
    service: str = Field(description="Hospital service.")
    available_beds: int = Field(description="Beds available.")
    patients_request: int = Field(description="Patients requesting admission.")
    patients_admitted: int = Field(description="Patients admitted.")
    patients_refused: int = Field(description="Patients refused.")
    refusal_rate: float | None = Field(description="patients_refused / patients_request (fraction 0-1).")
    occupancy_rate: float | None = Field(description="patients_admitted / available_beds (fraction 0-1).")
    patient_satisfaction: int = Field(description="Mean patient satisfaction score, 0-100.")
    staff_morale: int = Field(description="Staff morale score, 0-100.")
    event: str = Field(description="Event of the week: none, flu, donation or strike.")
    staff_present_doctor: int = Field(description="Doctors present.")
    staff_present_nurse: int = Field(description="Nurses present.")
    staff_present_nursing_assistant: int = Field(description="Nursing assistants present.")
    patients_arrived: int = Field(description="Patients (patients.csv) who arrived that week (ISO week of 2025).")
    mean_length_of_stay_days: float | None = Field(description="Mean length of stay of those patients, days.")


class HospitalSummary(BaseModel):
    """Totals and means over the matching weekly rows."""

    service: str | None = Field(description="The service filter (null: all).")
    week_from: int = Field(description="First week included.")
    week_to: int = Field(description="Last week included.")
    n_weeks: int = Field(description="Distinct weeks matched.")
    n_rows: int = Field(description="Rows matched (services × weeks).")
    total_patients_request: int = Field(description="Sum of requests.")
    total_patients_admitted: int = Field(description="Sum of admissions.")
    total_patients_refused: int = Field(description="Sum of refusals.")
    total_patients_arrived: int = Field(description="Sum of patients arrived.")
    overall_refusal_rate: float | None = Field(description="Total refused / total requests (fraction 0-1).")
    mean_occupancy_rate: float | None = Field(description="Mean of occupancy_rate over the rows.")
    mean_patient_satisfaction: float | None = Field(description="Mean of patient_satisfaction over the rows.")
    mean_staff_morale: float | None = Field(description="Mean of staff_morale over the rows.")
    event_counts: dict[str, int] = Field(description="Rows per event.")


class HospitalAnalytics(BaseModel):
    """Matching weekly rows and their summary."""

    rows: list[HospitalWeek] = Field(description="One row per service and week, ordered by week then service.")
    summary: HospitalSummary = Field(description="Totals and means over the matching rows.")
