"""Loaders of the source files behind the reference tables (Fitbit export, hospital data), one per file.

Each takes a path in the source format and returns a frame with snake_case columns (unit in
the name) and parsed dates. The Fitbit files disagree on date formats, so each is parsed with
an explicit format string, and a malformed file raises a ValueError that names it.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

# Date formats, one per file (the Fitbit files disagree).
DAILY_DATE_FORMAT = "%m/%d/%Y"  # 4/12/2016
SLEEP_DATE_FORMAT = "%m/%d/%Y"  # 04/12/2016
HOSPITAL_DATE_FORMAT = "%Y-%m-%d"  # 2025-03-16

FITBIT_FILES = {
    "daily": "dailyActivity_merged.csv",
    "sleep": "sleepDay_merged.csv",
}
HOSPITAL_FILES = {
    "services": "services_weekly.csv",
    "patients": "patients.csv",
    "schedule": "staff_schedule.csv",
}

# metric -> (which file, source column)
FITBIT_METRIC_SOURCES: dict[str, tuple[str, str]] = {
    "total_steps": ("daily", "TotalSteps"),
    "total_distance_km": ("daily", "TotalDistance"),
    "very_active_minutes": ("daily", "VeryActiveMinutes"),
    "fairly_active_minutes": ("daily", "FairlyActiveMinutes"),
    "lightly_active_minutes": ("daily", "LightlyActiveMinutes"),
    "sedentary_minutes": ("daily", "SedentaryMinutes"),
    "calories_kcal": ("daily", "Calories"),
    "minutes_asleep": ("sleep", "TotalMinutesAsleep"),
    "time_in_bed_minutes": ("sleep", "TotalTimeInBed"),
}


def _read_csv(path: Path | str, columns: dict[str, object]) -> pd.DataFrame:
    """Read the named columns of a CSV with fixed dtypes; ValueError naming the file if one is missing."""
    path = Path(path)
    header = pd.read_csv(path, nrows=0).columns
    missing = [c for c in columns if c not in header]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}")
    return pd.read_csv(path, usecols=list(columns), dtype=columns)


def _parse_dates(path: Path | str, values: pd.Series, fmt: str) -> pd.Series:
    """Parse date strings with one explicit format; ValueError naming the file on any failure."""
    try:
        parsed = pd.to_datetime(values, format=fmt, errors="raise")
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{path}: column {values.name!r} does not match the date format {fmt!r}: {exc}") from exc
    if parsed.isna().any():
        raise ValueError(f"{path}: column {values.name!r} has missing dates")
    return parsed


def load_daily_activity(path: Path | str) -> pd.DataFrame:
    """Load ``dailyActivity_merged.csv`` (one row per user and day, dates like ``4/12/2016``).

    Returns:
        Columns ``user_id`` (int64), ``date`` (datetime, midnight), ``total_steps``,
        ``total_distance_km``, ``very_active_minutes``, ``fairly_active_minutes``,
        ``lightly_active_minutes``, ``sedentary_minutes``, ``calories_kcal``; source row order.

    Raises:
        ValueError: a column is missing or a date does not match ``m/d/YYYY``.

    """
    raw = _read_csv(
        path,
        {
            "Id": "int64",
            "ActivityDate": "str",
            "TotalSteps": "int64",
            "TotalDistance": "float64",
            "VeryActiveMinutes": "int64",
            "FairlyActiveMinutes": "int64",
            "LightlyActiveMinutes": "int64",
            "SedentaryMinutes": "int64",
            "Calories": "int64",
        },
    )
    out = pd.DataFrame({"user_id": raw["Id"], "date": _parse_dates(path, raw["ActivityDate"], DAILY_DATE_FORMAT)})
    for metric, (file, column) in FITBIT_METRIC_SOURCES.items():
        if file == "daily":
            out[metric] = raw[column]
    return out


def load_sleep_day(path: Path | str) -> pd.DataFrame:
    """Load ``sleepDay_merged.csv`` (one row per user and night, dates like ``04/12/2016``).

    Returns:
        Columns ``user_id`` (int64), ``date`` (datetime), ``sleep_records`` (sleeps logged
        that day), ``minutes_asleep``, ``time_in_bed_minutes``; source rows, duplicates kept.

    Raises:
        ValueError: a column is missing or a date does not match ``mm/dd/YYYY``.

    """
    raw = _read_csv(
        path,
        {
            "Id": "int64",
            "SleepDay": "str",
            "TotalSleepRecords": "int64",
            "TotalMinutesAsleep": "int64",
            "TotalTimeInBed": "int64",
        },
    )
    return pd.DataFrame(
        {
            "user_id": raw["Id"],
            "date": _parse_dates(path, raw["SleepDay"], SLEEP_DATE_FORMAT),
            "sleep_records": raw["TotalSleepRecords"],
            "minutes_asleep": raw["TotalMinutesAsleep"],
            "time_in_bed_minutes": raw["TotalTimeInBed"],
        }
    )


def load_services_weekly(path: Path | str) -> pd.DataFrame:
    """Load ``services_weekly.csv`` (one row per service and week; columns kept as in the source).

    Raises:
        ValueError: a column is missing.

    """
    return _read_csv(
        path,
        {
            "week": "int64",
            "month": "int64",
            "service": "str",
            "available_beds": "int64",
            "patients_request": "int64",
            "patients_admitted": "int64",
            "patients_refused": "int64",
            "patient_satisfaction": "int64",
            "staff_morale": "int64",
            "event": "str",
        },
    )


def load_patients(path: Path | str) -> pd.DataFrame:
    """Load ``patients.csv`` (one row per patient, dates like ``2025-03-16``).

    Returns:
        Columns ``patient_id``, ``age`` (years), ``arrival_date``, ``departure_date``
        (datetimes), ``service``, ``satisfaction`` (0..100).

    Raises:
        ValueError: a column is missing or a date does not match ``YYYY-mm-dd``.

    """
    raw = _read_csv(
        path,
        {
            "patient_id": "str",
            "age": "int64",
            "arrival_date": "str",
            "departure_date": "str",
            "service": "str",
            "satisfaction": "int64",
        },
    )
    raw["arrival_date"] = _parse_dates(path, raw["arrival_date"], HOSPITAL_DATE_FORMAT)
    raw["departure_date"] = _parse_dates(path, raw["departure_date"], HOSPITAL_DATE_FORMAT)
    return raw


def load_staff_schedule(path: Path | str) -> pd.DataFrame:
    """Load ``staff_schedule.csv`` (one row per staff member and week; ``present`` is 0 or 1).

    Raises:
        ValueError: a column is missing.

    """
    return _read_csv(path, {"week": "int64", "staff_id": "str", "role": "str", "service": "str", "present": "int64"})
