"""Tests of vitalcheck.training.reference_sources and reference_tables: source loaders and the two built tables.

Expected values are recomputed here straight from the CSV files with plain pandas/numpy,
independently of the module's own loaders. Data-dependent tests are skipped when the shared
data directory is absent.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from vitalcheck.reference import (
    FITBIT_METRIC_UNITS,
    FITBIT_PERCENTILES_FILE,
    FITBIT_SCHEMA,
    HOSPITAL_ANALYTICS_FILE,
    HOSPITAL_SCHEMA,
    PERCENTILE_COLUMNS,
    PERCENTILES,
    load_fitbit_percentiles,
    load_hospital_analytics,
)
from vitalcheck.settings import get_settings
from vitalcheck.training import reference_sources as sources
from vitalcheck.training import reference_tables as rt

DATA_DIR = get_settings().data_dir
FITBIT_DIR = DATA_DIR / "fitbit"
HOSPITAL_DIR = DATA_DIR / "hospital"
REFERENCE_DIR = get_settings().reference_dir
FIRST_DAY, LAST_DAY = pd.Timestamp("2016-04-12"), pd.Timestamp("2016-05-12")

has_data = all((FITBIT_DIR / f).is_file() for f in sources.FITBIT_FILES.values()) and all(
    (HOSPITAL_DIR / f).is_file() for f in sources.HOSPITAL_FILES.values()
)
needs_data = pytest.mark.skipif(not has_data, reason=f"shared Fitbit/hospital data not found under {DATA_DIR}")

ACTIVITY_SOURCE = {
    "total_steps": "TotalSteps",
    "total_distance_km": "TotalDistance",
    "very_active_minutes": "VeryActiveMinutes",
    "fairly_active_minutes": "FairlyActiveMinutes",
    "lightly_active_minutes": "LightlyActiveMinutes",
    "sedentary_minutes": "SedentaryMinutes",
    "calories_kcal": "Calories",
}
SLEEP_SOURCE = {"minutes_asleep": "TotalMinutesAsleep", "time_in_bed_minutes": "TotalTimeInBed"}


def m_d_y(ts: pd.Timestamp, sep: str) -> str:
    return f"{ts.month}{sep}{ts.day}{sep}{ts.year}"


# ---------------------------------------------------------------------------------------
# Loaders: each Fitbit file's own date format
# ---------------------------------------------------------------------------------------

LOADER_CASES = [
    # loader, file, source date column, parsed column, how the source writes a parsed date
    (sources.load_daily_activity, "dailyActivity_merged.csv", "ActivityDate", "date", lambda t: m_d_y(t, "/")),
    (sources.load_sleep_day, "sleepDay_merged.csv", "SleepDay", "date", lambda t: t.strftime("%m/%d/%Y")),
]


@needs_data
@pytest.mark.parametrize(
    ("loader", "file", "source_col", "col", "render"), LOADER_CASES, ids=[c[1] for c in LOADER_CASES]
)
def test_fitbit_loader_parses_dates(loader, file, source_col, col, render):
    raw = pd.read_csv(FITBIT_DIR / file, dtype=str)
    frame = loader(FITBIT_DIR / file)
    assert len(frame) == len(raw)
    assert pd.api.types.is_datetime64_any_dtype(frame[col])
    assert not frame[col].isna().any()
    days = frame[col].dt.normalize()
    assert days.min() >= FIRST_DAY and days.max() <= LAST_DAY
    # Month and day not swapped, times read right: rendering each parsed date in the file's
    # own style gives back the source text.
    assert [render(t) for t in frame[col]] == raw[source_col].tolist()
    assert (frame["user_id"].astype(str) == raw["Id"]).all()


@needs_data
def test_daily_loader_columns_match_source():
    raw = pd.read_csv(FITBIT_DIR / "dailyActivity_merged.csv")
    frame = sources.load_daily_activity(FITBIT_DIR / "dailyActivity_merged.csv")
    for metric, source in ACTIVITY_SOURCE.items():
        np.testing.assert_array_equal(frame[metric].to_numpy(), raw[source].to_numpy(), err_msg=metric)


@needs_data
def test_hospital_loaders_parse():
    patients = sources.load_patients(HOSPITAL_DIR / "patients.csv")
    raw = pd.read_csv(HOSPITAL_DIR / "patients.csv", dtype=str)
    assert not patients[["arrival_date", "departure_date"]].isna().any().any()
    assert (patients["arrival_date"].dt.strftime("%Y-%m-%d") == raw["arrival_date"]).all()
    assert (patients["departure_date"] >= patients["arrival_date"]).all()
    assert len(sources.load_services_weekly(HOSPITAL_DIR / "services_weekly.csv")) == len(
        pd.read_csv(HOSPITAL_DIR / "services_weekly.csv")
    )
    assert set(sources.load_staff_schedule(HOSPITAL_DIR / "staff_schedule.csv")["present"]) <= {0, 1}


def test_loader_rejects_wrong_date_format(tmp_path):
    path = tmp_path / "sleepDay_merged.csv"
    path.write_text("Id,SleepDay,TotalSleepRecords,TotalMinutesAsleep,TotalTimeInBed\n1,2016-04-12,1,300,320\n")
    with pytest.raises(ValueError, match=r"sleepDay_merged\.csv.*SleepDay.*%m/%d/%Y"):
        sources.load_sleep_day(path)


def test_loader_rejects_missing_column(tmp_path):
    path = tmp_path / "sleepDay_merged.csv"
    path.write_text("Id,SleepDay,TotalSleepRecords,TotalMinutesAsleep\n1,4/12/2016,1,300\n")
    with pytest.raises(ValueError, match=r"sleepDay_merged\.csv.*missing column.*'TotalTimeInBed'"):
        sources.load_sleep_day(path)


def test_arrival_week_is_iso_week_of_2025():
    dates = pd.Series(
        pd.to_datetime(
            ["2025-01-01", "2025-01-05", "2025-01-06", "2025-06-15", "2025-12-28", "2025-12-29", "2025-12-31"]
        )
    )
    expected = [
        dt.date.fromisoformat(d).isocalendar().week
        for d in ("2025-01-01", "2025-01-05", "2025-01-06", "2025-06-15", "2025-12-28")
    ]
    assert rt.arrival_week(dates).tolist() == [*expected, 52, 52]
    with pytest.raises(ValueError, match="outside the weeks of 2025"):
        rt.arrival_week(pd.Series(pd.to_datetime(["2024-12-29"])))


# ---------------------------------------------------------------------------------------
# Built tables
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    if not has_data:
        pytest.skip(f"shared Fitbit/hospital data not found under {DATA_DIR}")
    out = tmp_path_factory.mktemp("reference")
    rt.build(DATA_DIR, out)
    return out


@pytest.fixture(scope="module")
def fitbit_table(built):
    return pq.read_table(built / FITBIT_PERCENTILES_FILE)


@pytest.fixture(scope="module")
def hospital_table(built):
    return pq.read_table(built / HOSPITAL_ANALYTICS_FILE)


def test_fitbit_schema(fitbit_table):
    assert fitbit_table.schema.equals(FITBIT_SCHEMA, check_metadata=False)
    assert fitbit_table.num_rows == len(FITBIT_METRIC_UNITS)
    assert fitbit_table.column("metric").to_pylist() == list(FITBIT_METRIC_UNITS)
    assert fitbit_table.column("unit").to_pylist() == list(FITBIT_METRIC_UNITS.values())
    meta = {k.decode(): v.decode() for k, v in fitbit_table.schema.metadata.items()}
    for key in ("source", "licence", "date_range", "exclusions", "layout", "source_sha256"):
        assert meta.get(f"vitalcheck.{key}"), key
    assert meta["vitalcheck.licence"] == "CC0"
    assert meta["vitalcheck.date_range"] == "2016-04-12/2016-05-12"
    assert "TotalSteps == 0" in meta["vitalcheck.exclusions"]


def test_fitbit_percentiles_match_source(fitbit_table):
    frame = fitbit_table.to_pandas().set_index("metric")
    daily = pd.read_csv(FITBIT_DIR / "dailyActivity_merged.csv")
    # Non-wear days (no step recorded) and the partial last export day are left out.
    activity = daily[(daily["TotalSteps"] > 0) & (daily["ActivityDate"] != "5/12/2016")]
    assert len(activity) < len(daily)
    sleep = pd.read_csv(FITBIT_DIR / "sleepDay_merged.csv").drop_duplicates()
    for metric, (cohort, source) in {
        **{m: (activity, c) for m, c in ACTIVITY_SOURCE.items()},
        **{m: (sleep, c) for m, c in SLEEP_SOURCE.items()},
    }.items():
        row = frame.loc[metric]
        assert row["n_user_days"] == len(cohort), metric
        assert row["n_users"] == cohort["Id"].nunique(), metric
        expected = np.percentile(cohort[source].to_numpy(float), PERCENTILES)
        np.testing.assert_allclose(row[list(PERCENTILE_COLUMNS)].to_numpy(float), expected, err_msg=metric)


def test_hospital_schema_and_rows(hospital_table):
    assert hospital_table.schema.equals(HOSPITAL_SCHEMA, check_metadata=False)
    csv = pd.read_csv(HOSPITAL_DIR / "services_weekly.csv")
    assert hospital_table.num_rows == csv["service"].nunique() * csv["week"].nunique()
    frame = hospital_table.to_pandas()
    assert not frame.duplicated(["service", "week"]).any()
    meta = {k.decode(): v.decode() for k, v in hospital_table.schema.metadata.items()}
    for key in ("source", "licence", "date_range", "definitions", "week_mapping", "source_sha256"):
        assert meta.get(f"vitalcheck.{key}"), key


def test_hospital_values_match_source(hospital_table):
    frame = hospital_table.to_pandas()
    csv = pd.read_csv(HOSPITAL_DIR / "services_weekly.csv")
    merged = frame.merge(csv, on=["week", "service"], suffixes=("", "_csv"), validate="one_to_one")
    assert len(merged) == len(csv)
    for col in (
        "month",
        "available_beds",
        "patients_request",
        "patients_admitted",
        "patients_refused",
        "patient_satisfaction",
        "staff_morale",
        "event",
    ):
        assert (merged[col] == merged[f"{col}_csv"]).all(), col
    np.testing.assert_allclose(merged["refusal_rate"], csv_ratio(merged, "patients_refused", "patients_request"))
    np.testing.assert_allclose(merged["occupancy_rate"], csv_ratio(merged, "patients_admitted", "available_beds"))


def csv_ratio(df, num, den):
    return df[f"{num}_csv"].to_numpy(float) / df[f"{den}_csv"].to_numpy(float)


def test_hospital_staff_present_match_schedule(hospital_table):
    frame = hospital_table.to_pandas().set_index(["week", "service"])
    sched = pd.read_csv(HOSPITAL_DIR / "staff_schedule.csv")
    for role in ("doctor", "nurse", "nursing_assistant"):
        present = sched[(sched["present"] == 1) & (sched["role"] == role)].groupby(["week", "service"]).size()
        got = frame[f"staff_present_{role}"]
        assert got.sum() == present.sum(), role
        assert (got.reindex(present.index) == present).all(), role
        assert (got.drop(present.index) == 0).all(), role


def test_hospital_patients_and_length_of_stay(hospital_table):
    frame = hospital_table.to_pandas()
    patients = pd.read_csv(HOSPITAL_DIR / "patients.csv")
    los = (pd.to_datetime(patients["departure_date"]) - pd.to_datetime(patients["arrival_date"])).dt.days
    assert frame["patients_arrived"].sum() == len(patients)
    assert frame["mean_length_of_stay_days"].isna().tolist() == (frame["patients_arrived"] == 0).tolist()
    for service, group in frame.groupby("service"):
        mask = patients["service"] == service
        assert group["patients_arrived"].sum() == mask.sum(), service
        arrived = group[group["patients_arrived"] > 0]
        weighted = (arrived["patients_arrived"] * arrived["mean_length_of_stay_days"]).sum() / arrived[
            "patients_arrived"
        ].sum()
        assert weighted == pytest.approx(los[mask].mean()), service
    # One week checked by hand: patients arriving Monday..Sunday 2025-03-10..16 (ISO week 11).
    arr = pd.to_datetime(patients["arrival_date"])
    week11 = patients[(arr >= "2025-03-10") & (arr <= "2025-03-16")]
    rows = frame[frame["week"] == 11].set_index("service")
    counts = week11["service"].value_counts()
    assert rows["patients_arrived"].to_dict() == {s: int(counts.get(s, 0)) for s in rows.index}


def test_built_tables_load_in_serving(built):
    assert load_fitbit_percentiles(built / FITBIT_PERCENTILES_FILE).metric_names == tuple(FITBIT_METRIC_UNITS)
    assert len(load_hospital_analytics(built / HOSPITAL_ANALYTICS_FILE).frame) > 0


@pytest.mark.parametrize("name", [FITBIT_PERCENTILES_FILE, HOSPITAL_ANALYTICS_FILE])
def test_build_reproduces_committed_files(built, name):
    committed = REFERENCE_DIR / name
    assert committed.is_file(), f"{committed} is missing: run vitalcheck.training.reference_tables.build"
    new, old = pq.read_table(built / name), pq.read_table(committed)
    assert new.schema.equals(old.schema, check_metadata=True)
    assert new.equals(old), f"{committed} is stale: rebuild it"


def test_build_is_deterministic(built, tmp_path):
    rt.build(DATA_DIR, tmp_path)
    for name in (FITBIT_PERCENTILES_FILE, HOSPITAL_ANALYTICS_FILE):
        assert (tmp_path / name).read_bytes() == (built / name).read_bytes(), name
