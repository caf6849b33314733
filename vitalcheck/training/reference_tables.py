"""Build the serving reference tables from the shared Fitbit and hospital data sets.

:func:`build` reads ``<data_dir>/fitbit`` and ``<data_dir>/hospital`` and writes, into the
reference directory (overwriting):

``fitbit_percentiles.parquet``
    Wide layout, one row per metric (:data:`vitalcheck.reference.FITBIT_SCHEMA`): metric,
    unit, cohort size (user-days and users), and the metric's value at percentiles
    p1..p99 (``numpy.percentile``, ``method="linear"``) over user-days pooled across users.

    Cohort rules (also stored in the Parquet schema metadata, ``vitalcheck.exclusions``):

    * Activity metrics (dailyActivity_merged.csv): **non-wear days are left out**, defined
      as days with ``TotalSteps == 0``. A worn tracker records some steps; of the 77 such
      days, 72 log exactly 1440 sedentary minutes (the tracker's default for a day without
      data) and the other 5 log under 24 h of anything. Near-zero days (a few steps) are
      kept: the tracker did record. **The export's last day, 2016-05-12, is left out as
      a partial day**: the export stops during that day (the hourly file ends at
      15:00 at the latest), and its median steps are under half those of other days.
    * Sleep metrics (sleepDay_merged.csv): one record per user and night; exact duplicate
      rows (3 in the source) are dropped. A sleep record only exists when the tracker was
      worn, so no non-wear rule applies; 2016-05-12 is kept (a night's record is dated by
      the morning it ends, before the export stopped).

``hospital_analytics.parquet``
    One row per service and week (:data:`vitalcheck.reference.HOSPITAL_SCHEMA`):
    services × weeks rows. ``occupancy_rate = patients_admitted / available_beds`` (the
    source has no daily bed census, so this is admissions per available bed that week);
    ``refusal_rate = patients_refused / patients_request``. Staff present: rows of
    staff_schedule.csv with ``present == 1``, counted by role. Patients: arrival date
    mapped to the ISO 8601 week of 2025 (weeks 1..52; 2025-12-29..31, which ISO puts in
    week 1 of 2026, count in week 52). The source's weeks cannot be tied to dates from
    the data (its ``month`` column gives every month 4 weeks and December 8, and weekly
    patient counts do not follow any calendar mapping), so this mapping is a convention.

    Data quirks: in every third week (3, 6, ..., 51) staff_schedule.csv marks every staff
    member absent, so those weeks have 0 staff present in all roles; the staff ids of
    staff_schedule.csv do not match those of staff.csv (role and service are taken from the
    schedule itself, staff.csv is not used).

Both outputs are deterministic: rows are sorted, the metadata holds no timestamps, and the
SHA-256 of each source file is recorded for provenance.

The source files are read by :mod:`vitalcheck.training.reference_sources`.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from vitalcheck.cards import sha256_file
from vitalcheck.reference import (
    FITBIT_METRIC_UNITS,
    FITBIT_PERCENTILES_FILE,
    FITBIT_SCHEMA,
    HOSPITAL_ANALYTICS_FILE,
    HOSPITAL_SCHEMA,
    PERCENTILE_COLUMNS,
    PERCENTILES,
    SCHEMA_VERSION,
)
from vitalcheck.training.reference_sources import (
    FITBIT_FILES,
    FITBIT_METRIC_SOURCES,
    HOSPITAL_FILES,
    load_daily_activity,
    load_patients,
    load_services_weekly,
    load_sleep_day,
    load_staff_schedule,
)

FITBIT_SOURCE = (
    "Fitbit Fitness Tracker Data (Kaggle, Möbius), from a 2016 Amazon Mechanical Turk survey "
    "(Furberg et al., Zenodo); 33 consenting users"
)
FITBIT_LICENCE = "CC0"
FITBIT_DATE_RANGE = (dt.date(2016, 4, 12), dt.date(2016, 5, 12))
"""First and last day of the Fitbit export (inclusive)."""
FITBIT_PARTIAL_DAY = dt.date(2016, 5, 12)
"""Last day of the export, cut off during the day: left out of the activity cohort."""

HOSPITAL_SOURCE = 'Kaggle "Hospital Beds Management" (synthetic); person names removed'
HOSPITAL_LICENCE = "CC0"
HOSPITAL_YEAR = 2025
HOSPITAL_ROLES = ("doctor", "nurse", "nursing_assistant")


ACTIVITY_EXCLUSIONS = (
    "activity metrics (dailyActivity_merged.csv): non-wear days left out, defined as TotalSteps == 0 "
    "(most also log 1440 sedentary minutes); the export's last day 2016-05-12 left out as a partial day "
    "(the export stops during it)"
)
SLEEP_EXCLUSIONS = (
    "sleep metrics (sleepDay_merged.csv): exact duplicate rows dropped; every other night kept "
    "(a sleep record implies the tracker was worn)"
)


# ---------------------------------------------------------------------------------------
# Fitbit percentiles
# ---------------------------------------------------------------------------------------


def activity_cohort(daily: pd.DataFrame) -> pd.DataFrame:
    """Select the user-days of :func:`load_daily_activity` that enter the activity percentiles.

    Leaves out non-wear days (``total_steps == 0``) and the partial last export day
    (:data:`FITBIT_PARTIAL_DAY`).
    """
    keep = (daily["total_steps"] > 0) & (daily["date"].dt.date != FITBIT_PARTIAL_DAY)
    return daily.loc[keep].reset_index(drop=True)


def sleep_cohort(sleep: pd.DataFrame) -> pd.DataFrame:
    """Select the user-nights of :func:`load_sleep_day` that enter the sleep percentiles (exact duplicates dropped)."""
    return sleep.drop_duplicates().reset_index(drop=True)


def build_fitbit_percentiles(fitbit_dir: Path | str) -> pa.Table:
    """Compute the Fitbit percentile table (see the module docstring) from the source folder.

    Raises:
        ValueError: a source file is malformed, has duplicate user-days, or dates outside
            :data:`FITBIT_DATE_RANGE`.

    """
    fitbit_dir = Path(fitbit_dir)
    daily = load_daily_activity(fitbit_dir / FITBIT_FILES["daily"])
    sleep = load_sleep_day(fitbit_dir / FITBIT_FILES["sleep"])
    lo, hi = (pd.Timestamp(d) for d in FITBIT_DATE_RANGE)
    for name, frame in (("daily", daily), ("sleep", sleep)):
        if not frame["date"].between(lo, hi).all():
            raise ValueError(
                f"{fitbit_dir / FITBIT_FILES[name]}: dates outside {FITBIT_DATE_RANGE[0]}..{FITBIT_DATE_RANGE[1]}"
            )
    cohorts = {"daily": activity_cohort(daily), "sleep": sleep_cohort(sleep)}
    for name, frame in cohorts.items():
        if frame.duplicated(["user_id", "date"]).any():
            raise ValueError(f"{fitbit_dir / FITBIT_FILES[name]}: more than one row for a user and day")

    rows = []
    for metric, unit in FITBIT_METRIC_UNITS.items():
        file, _ = FITBIT_METRIC_SOURCES[metric]
        cohort = cohorts[file]
        values = cohort[metric].to_numpy(np.float64)
        grid = np.percentile(values, PERCENTILES, method="linear")
        row: dict[str, object] = {
            "metric": metric,
            "unit": unit,
            "n_user_days": len(values),
            "n_users": int(cohort["user_id"].nunique()),
        }
        row.update(zip(PERCENTILE_COLUMNS, (float(v) for v in grid), strict=True))
        rows.append(row)
    frame = pd.DataFrame(rows, columns=FITBIT_SCHEMA.names)

    def span(df: pd.DataFrame) -> str:
        return f"{df['date'].min().date().isoformat()}/{df['date'].max().date().isoformat()}"

    metadata = {
        "vitalcheck.table": "fitbit_percentiles",
        "vitalcheck.schema_version": SCHEMA_VERSION,
        "vitalcheck.layout": (
            "wide: one row per metric; columns metric, unit, n_user_days, n_users, p1..p99 "
            "(value of the metric, in unit per day, at that percentile of the cohort's user-days)"
        ),
        "vitalcheck.source": FITBIT_SOURCE,
        "vitalcheck.source_files": ", ".join(FITBIT_FILES[k] for k in ("daily", "sleep")),
        "vitalcheck.licence": FITBIT_LICENCE,
        "vitalcheck.date_range": f"{FITBIT_DATE_RANGE[0].isoformat()}/{FITBIT_DATE_RANGE[1].isoformat()}",
        "vitalcheck.cohort_date_range": json.dumps(
            {"activity": span(cohorts["daily"]), "sleep": span(cohorts["sleep"])}, sort_keys=True
        ),
        "vitalcheck.exclusions": f"{ACTIVITY_EXCLUSIONS}; {SLEEP_EXCLUSIONS}",
        "vitalcheck.excluded_rows": json.dumps(
            {
                "activity_non_wear_days": int((daily["total_steps"] == 0).sum()),
                "activity_partial_days": int(
                    ((daily["total_steps"] > 0) & (daily["date"].dt.date == FITBIT_PARTIAL_DAY)).sum()
                ),
                "sleep_duplicate_rows": int(len(sleep) - len(cohorts["sleep"])),
            },
            sort_keys=True,
        ),
        "vitalcheck.percentile_method": (
            "numpy.percentile(method='linear') over user-days pooled across users "
            "(each user weighs in proportion to their days in the cohort)"
        ),
        "vitalcheck.source_sha256": json.dumps(
            {FITBIT_FILES[k]: sha256_file(fitbit_dir / FITBIT_FILES[k]) for k in ("daily", "sleep")}, sort_keys=True
        ),
    }
    return _to_table(frame, FITBIT_SCHEMA, metadata)


# ---------------------------------------------------------------------------------------
# Hospital analytics
# ---------------------------------------------------------------------------------------


def arrival_week(dates: pd.Series) -> pd.Series:
    """Map dates of 2025 to the services_weekly ``week`` numbering (1..52).

    The ISO 8601 week of 2025 (Monday to Sunday; week 1 starts 2024-12-30). Dates in ISO
    week 1 of 2026 (2025-12-29..31) count in week 52, the table's last week.

    Raises:
        ValueError: a date lies outside ISO weeks 2025-W01..2026-W01.

    """
    iso = dates.dt.isocalendar()
    year = iso["year"].astype(np.int64)
    week = iso["week"].astype(np.int64)
    in_year = year == HOSPITAL_YEAR
    spill = (year == HOSPITAL_YEAR + 1) & (week == 1)
    if not (in_year | spill).all():
        bad = dates[~(in_year | spill)].dt.date.astype(str).unique().tolist()[:5]
        raise ValueError(f"dates outside the weeks of {HOSPITAL_YEAR}: {bad}")
    return week.where(in_year, 52).rename("week")


def build_hospital_analytics(hospital_dir: Path | str) -> pa.Table:
    """Compute the hospital analytics table (see the module docstring) from the source folder.

    Raises:
        ValueError: a source file is malformed; services_weekly does not hold exactly one
            row per service and week for every week of the range; an unknown service or
            role; a departure before an arrival.

    """
    hospital_dir = Path(hospital_dir)
    paths = {k: hospital_dir / v for k, v in HOSPITAL_FILES.items()}
    weekly = load_services_weekly(paths["services"])
    patients = load_patients(paths["patients"])
    schedule = load_staff_schedule(paths["schedule"])

    services = sorted(weekly["service"].unique())
    weeks = range(int(weekly["week"].min()), int(weekly["week"].max()) + 1)
    grid = pd.MultiIndex.from_product([weeks, services], names=["week", "service"])
    if weekly.duplicated(["week", "service"]).any() or len(weekly) != len(grid):
        raise ValueError(
            f"{paths['services']}: expected exactly one row per service and week ({len(grid)} rows), got {len(weekly)}"
        )
    for name, frame in (("patients", patients), ("schedule", schedule)):
        unknown = sorted(set(frame["service"]) - set(services))
        if unknown:
            raise ValueError(f"{paths[name]}: services not in {HOSPITAL_FILES['services']}: {unknown}")
    unknown_roles = sorted(set(schedule["role"]) - set(HOSPITAL_ROLES))
    if unknown_roles:
        raise ValueError(f"{paths['schedule']}: unknown staff role(s) {unknown_roles}")

    out = weekly.set_index(["week", "service"]).reindex(grid)
    out["refusal_rate"] = (out["patients_refused"] / out["patients_request"].where(out["patients_request"] > 0)).astype(
        float
    )
    out["occupancy_rate"] = (out["patients_admitted"] / out["available_beds"].where(out["available_beds"] > 0)).astype(
        float
    )

    present = schedule.loc[schedule["present"] == 1]
    staff = present.groupby(["week", "service", "role"]).size().unstack("role").reindex(columns=list(HOSPITAL_ROLES))
    staff = staff.reindex(grid).fillna(0).astype(np.int64)
    for role in HOSPITAL_ROLES:
        out[f"staff_present_{role}"] = staff[role]

    los_days = (patients["departure_date"] - patients["arrival_date"]).dt.days
    if (los_days < 0).any():
        raise ValueError(
            f"{paths['patients']}: departure_date before arrival_date for {int((los_days < 0).sum())} patient(s)"
        )
    arrivals = pd.DataFrame(
        {
            "week": arrival_week(patients["arrival_date"]),
            "service": patients["service"],
            "los": los_days.astype(np.float64),
        }
    )
    by_week = arrivals.groupby(["week", "service"])["los"].agg(["size", "mean"]).reindex(grid)
    out["patients_arrived"] = by_week["size"].fillna(0).astype(np.int64)
    out["mean_length_of_stay_days"] = by_week["mean"].astype(np.float64)

    frame = out.reset_index()[HOSPITAL_SCHEMA.names]
    metadata = {
        "vitalcheck.table": "hospital_analytics",
        "vitalcheck.schema_version": SCHEMA_VERSION,
        "vitalcheck.layout": "one row per service and week (services x weeks rows), sorted by week then service",
        "vitalcheck.source": HOSPITAL_SOURCE,
        "vitalcheck.source_files": ", ".join(HOSPITAL_FILES.values()),
        "vitalcheck.licence": HOSPITAL_LICENCE,
        "vitalcheck.date_range": f"{HOSPITAL_YEAR}, weeks {weeks.start}..{weeks.stop - 1}",
        "vitalcheck.definitions": json.dumps(
            {
                "refusal_rate": "patients_refused / patients_request (fraction 0..1; null when no requests)",
                "occupancy_rate": (
                    "patients_admitted / available_beds (fraction 0..1): admissions per available bed that week; "
                    "the source has no daily census"
                ),
                "patient_satisfaction": "weekly score 0..100 from services_weekly.csv",
                "staff_morale": "weekly score 0..100 from services_weekly.csv",
                "staff_present_<role>": "staff_schedule.csv rows of that service, week and role with present == 1",
                "patients_arrived": "patients.csv rows of that service whose arrival_date falls in the week",
                "mean_length_of_stay_days": "mean of departure_date - arrival_date in days over patients_arrived (null when 0)",
            },
            sort_keys=True,
        ),
        "vitalcheck.week_mapping": (
            "patients' arrival_date -> ISO 8601 week of 2025 (Monday-Sunday, week 1 starts 2024-12-30); "
            "2025-12-29..31 (ISO 2026-W01) count in week 52. A convention: the source's weeks cannot be tied to "
            "dates (its month column gives each month 4 weeks, December 8)"
        ),
        "vitalcheck.source_sha256": json.dumps(
            {f: sha256_file(hospital_dir / f) for f in HOSPITAL_FILES.values()}, sort_keys=True
        ),
    }
    return _to_table(frame, HOSPITAL_SCHEMA, metadata)


# ---------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------


def _to_table(frame: pd.DataFrame, schema: pa.Schema, metadata: dict[str, str]) -> pa.Table:
    """Convert to Arrow with the exact schema and only our metadata (no pandas/version entries)."""
    table = pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
    return table.replace_schema_metadata({k: v for k, v in metadata.items()})


def _write_atomic(table: pa.Table, path: Path) -> None:
    """Write Parquet to a temporary file beside ``path``, then rename it over ``path``."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        pq.write_table(table, tmp, compression="snappy")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def build(data_dir: Path, reference_dir: Path) -> None:
    """Build both reference tables from the shared data and write them, overwriting.

    Args:
        data_dir: the shared data directory (holding ``fitbit/`` and ``hospital/``).
        reference_dir: where to write ``fitbit_percentiles.parquet`` and
            ``hospital_analytics.parquet`` (created if missing).

    Raises:
        FileNotFoundError: a source file is missing.
        ValueError: a source file is malformed (the message names it).

    """
    data_dir, reference_dir = Path(data_dir), Path(reference_dir)
    fitbit = build_fitbit_percentiles(data_dir / "fitbit")
    hospital = build_hospital_analytics(data_dir / "hospital")
    reference_dir.mkdir(parents=True, exist_ok=True)
    _write_atomic(fitbit, reference_dir / FITBIT_PERCENTILES_FILE)
    _write_atomic(hospital, reference_dir / HOSPITAL_ANALYTICS_FILE)
