"""Tests of vitalcheck.reference: loading, validation and queries of the two reference tables.

Most tests use small synthetic tables written to tmp_path; the tests at the end check the
committed tables against the shared CSV files and are skipped when those are absent.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pyarrow as pa
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
    FitbitPercentiles,
    HospitalAnalytics,
    load_fitbit_percentiles,
    load_hospital_analytics,
)
from vitalcheck.settings import get_settings

STEPS_GRID = np.linspace(1000.0, 20000.0, 99)  # strictly increasing
TIED_GRID = np.concatenate([np.zeros(40), np.arange(1.0, 60.0)])  # p1..p40 == 0, then 1..59
CONSTANT_GRID = np.full(99, 7.0)


# ---------------------------------------------------------------------------------------
# Synthetic tables
# ---------------------------------------------------------------------------------------


def fitbit_frame(grids: dict[str, np.ndarray]) -> pd.DataFrame:
    rows = []
    for i, (metric, grid) in enumerate(grids.items()):
        row = {"metric": metric, "unit": "u", "n_user_days": 100 + i, "n_users": 10 + i}
        row.update(zip(PERCENTILE_COLUMNS, map(float, grid), strict=True))
        rows.append(row)
    return pd.DataFrame(rows, columns=FITBIT_SCHEMA.names)


def write(frame: pd.DataFrame, path, schema: pa.Schema | None = None):
    table = pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
    pq.write_table(table, path)
    return path


@pytest.fixture
def fitbit_path(tmp_path):
    grids = {"steps": STEPS_GRID, "tied": TIED_GRID, "constant": CONSTANT_GRID}
    return write(fitbit_frame(grids), tmp_path / "fitbit.parquet", FITBIT_SCHEMA)


@pytest.fixture
def fitbit(fitbit_path) -> FitbitPercentiles:
    return load_fitbit_percentiles(fitbit_path, required_metrics=())


def hospital_frame(services=("ICU", "emergency", "surgery"), weeks=range(1, 7), seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    events = ["none", "flu", "strike", "donation"]
    for week in weeks:
        for service in services:
            beds = int(rng.integers(5, 50))
            request = int(rng.integers(1, 120))
            admitted = min(beds, request)
            arrived = int(rng.integers(0, 5))
            rows.append(
                {
                    "week": week,
                    "month": (week - 1) // 4 + 1,
                    "service": service,
                    "available_beds": beds,
                    "patients_request": request,
                    "patients_admitted": admitted,
                    "patients_refused": request - admitted,
                    "refusal_rate": (request - admitted) / request,
                    "occupancy_rate": admitted / beds,
                    "patient_satisfaction": int(rng.integers(60, 100)),
                    "staff_morale": int(rng.integers(30, 100)),
                    "event": events[int(rng.integers(0, 4))],
                    "staff_present_doctor": int(rng.integers(0, 8)),
                    "staff_present_nurse": int(rng.integers(0, 20)),
                    "staff_present_nursing_assistant": int(rng.integers(0, 9)),
                    "patients_arrived": arrived,
                    "mean_length_of_stay_days": float(rng.uniform(1, 14)) if arrived else None,
                }
            )
    return pd.DataFrame(rows, columns=HOSPITAL_SCHEMA.names)


@pytest.fixture
def hospital_df() -> pd.DataFrame:
    return hospital_frame()


@pytest.fixture
def hospital(tmp_path, hospital_df) -> HospitalAnalytics:
    # Shuffled on disk: the loader sorts by week then service.
    shuffled = hospital_df.sample(frac=1.0, random_state=1)
    return load_hospital_analytics(write(shuffled, tmp_path / "hospital.parquet", HOSPITAL_SCHEMA))


# ---------------------------------------------------------------------------------------
# FitbitPercentiles
# ---------------------------------------------------------------------------------------


def test_metrics_report_names_units_and_cohort_size(fitbit):
    assert fitbit.metric_names == ("steps", "tied", "constant")
    first = fitbit.metrics[0]
    assert (first.name, first.unit, first.n_user_days, first.n_users) == ("steps", "u", 100, 10)


@pytest.mark.parametrize("p", [1, 10, 50, 73, 99])
def test_grid_points_map_to_their_percentile(fitbit, p):
    assert fitbit.percentile_of("steps", STEPS_GRID[p - 1]) == pytest.approx(p)


def test_p50_value_gives_50(fitbit):
    assert fitbit.percentile_of("steps", STEPS_GRID[49]) == pytest.approx(50.0)


def test_linear_interpolation_between_grid_points(fitbit):
    mid = (STEPS_GRID[9] + STEPS_GRID[10]) / 2  # between p10 and p11
    assert fitbit.percentile_of("steps", mid) == pytest.approx(10.5)


def test_monotonic_and_bounded(fitbit):
    for metric, grid in (("steps", STEPS_GRID), ("tied", TIED_GRID), ("constant", CONSTANT_GRID)):
        xs = np.sort(np.concatenate([np.linspace(grid[0] - 5000, grid[-1] + 5000, 2001), grid, grid + 1e-9]))
        ranks = fitbit.percentiles_of(metric, xs)
        assert np.all(np.diff(ranks) >= 0), metric
        assert ranks.min() >= 0.0 and ranks.max() <= 100.0, metric


def test_clipping_at_0_and_100(fitbit):
    assert fitbit.percentile_of("steps", -1e9) == 0.0
    assert fitbit.percentile_of("steps", 1e9) == 100.0
    # Just outside the grid the end segment is extrapolated, not jumped.
    step = STEPS_GRID[1] - STEPS_GRID[0]
    assert 0.0 < fitbit.percentile_of("steps", STEPS_GRID[0] - step / 2) < 1.0
    assert 99.0 < fitbit.percentile_of("steps", STEPS_GRID[-1] + step / 2) < 100.0
    np.testing.assert_array_equal(fitbit.percentiles_of("steps", [-np.inf, np.inf]), [0.0, 100.0])


def test_ties_get_the_middle_of_their_percentiles(fitbit):
    # p1..p40 are all 0: a value of 0 sits in the middle of 1..40.
    assert fitbit.percentile_of("tied", 0.0) == pytest.approx((1 + 40) / 2)
    assert 40.0 < fitbit.percentile_of("tied", 0.5) < 41.0
    assert fitbit.percentile_of("constant", 7.0) == pytest.approx(50.0)
    assert fitbit.percentile_of("constant", 6.9) == 0.0
    assert fitbit.percentile_of("constant", 7.1) == 100.0


def test_vectorised_matches_scalar_and_keeps_shape(fitbit):
    xs = np.array([[500.0, 1000.0, 5432.1], [10000.0, 19999.0, 25000.0]])
    ranks = fitbit.percentiles_of("steps", xs)
    assert ranks.shape == xs.shape
    expected = [[fitbit.percentile_of("steps", float(x)) for x in row] for row in xs]
    np.testing.assert_allclose(ranks, expected)
    assert math.isnan(fitbit.percentiles_of("steps", [np.nan])[0])


def test_unknown_metric_raises(fitbit):
    with pytest.raises(ValueError, match=r"unknown Fitbit metric 'nope'.*steps"):
        fitbit.percentile_of("nope", 1.0)
    with pytest.raises(ValueError, match="unknown Fitbit metric"):
        fitbit.percentiles_of("nope", [1.0])


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), "abc", None])
def test_bad_value_raises(fitbit, bad):
    with pytest.raises(ValueError, match="steps"):
        fitbit.percentile_of("steps", bad)


# ---------------------------------------------------------------------------------------
# Loading the Fitbit table: validation
# ---------------------------------------------------------------------------------------


def test_missing_file_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.parquet"):
        load_fitbit_percentiles(tmp_path / "missing.parquet")


def test_not_parquet_raises_value_error(tmp_path):
    path = tmp_path / "junk.parquet"
    path.write_text("not parquet")
    with pytest.raises(ValueError, match="junk.parquet"):
        load_fitbit_percentiles(path)


@pytest.mark.parametrize("column", ["metric", "unit", "n_user_days", "n_users", "p1", "p50", "p99"])
def test_missing_column_raises_naming_file_and_column(tmp_path, column):
    frame = fitbit_frame({"steps": STEPS_GRID}).drop(columns=[column])
    path = write(frame, tmp_path / "fitbit.parquet")
    with pytest.raises(ValueError, match=rf"fitbit\.parquet.*missing column.*'{column}'"):
        load_fitbit_percentiles(path, required_metrics=())


def test_empty_fitbit_table_raises(tmp_path):
    path = write(fitbit_frame({"steps": STEPS_GRID}).iloc[0:0], tmp_path / "fitbit.parquet", FITBIT_SCHEMA)
    with pytest.raises(ValueError, match=r"fitbit\.parquet.*empty"):
        load_fitbit_percentiles(path, required_metrics=())


def test_required_metrics_checked(fitbit_path):
    with pytest.raises(ValueError, match="lacks required metric"):
        load_fitbit_percentiles(fitbit_path)  # default: all FITBIT_METRIC_UNITS
    full = load_fitbit_percentiles(fitbit_path, required_metrics=("steps",))
    assert "steps" in full.metric_names


def test_default_required_metrics_accepts_full_table(tmp_path):
    path = write(fitbit_frame(dict.fromkeys(FITBIT_METRIC_UNITS, STEPS_GRID)), tmp_path / "f.parquet", FITBIT_SCHEMA)
    assert load_fitbit_percentiles(path).metric_names == tuple(FITBIT_METRIC_UNITS)


def test_decreasing_grid_raises(tmp_path):
    path = write(fitbit_frame({"steps": STEPS_GRID[::-1]}), tmp_path / "f.parquet", FITBIT_SCHEMA)
    with pytest.raises(ValueError, match="decreasing"):
        load_fitbit_percentiles(path, required_metrics=())


def test_duplicate_metric_raises(tmp_path):
    frame = fitbit_frame({"steps": STEPS_GRID})
    path = write(pd.concat([frame, frame]), tmp_path / "f.parquet", FITBIT_SCHEMA)
    with pytest.raises(ValueError, match="duplicate metric"):
        load_fitbit_percentiles(path, required_metrics=())


def test_wrong_column_type_raises(tmp_path):
    frame = fitbit_frame({"steps": STEPS_GRID})
    frame["p50"] = "x"
    path = write(frame, tmp_path / "f.parquet")
    with pytest.raises(ValueError, match=r"wrong type.*p50"):
        load_fitbit_percentiles(path, required_metrics=())


# ---------------------------------------------------------------------------------------
# HospitalAnalytics
# ---------------------------------------------------------------------------------------


def expected_summary(df: pd.DataFrame) -> dict:
    return {
        "n_weeks": df["week"].nunique(),
        "n_rows": len(df),
        "total_patients_request": int(df["patients_request"].sum()),
        "total_patients_admitted": int(df["patients_admitted"].sum()),
        "total_patients_refused": int(df["patients_refused"].sum()),
        "total_patients_arrived": int(df["patients_arrived"].sum()),
        "overall_refusal_rate": df["patients_refused"].sum() / df["patients_request"].sum(),
        "mean_occupancy_rate": df["occupancy_rate"].mean(),
        "mean_patient_satisfaction": df["patient_satisfaction"].mean(),
        "mean_staff_morale": df["staff_morale"].mean(),
    }


def assert_summary(summary: dict, df: pd.DataFrame, events) -> None:
    for key, value in expected_summary(df).items():
        assert summary[key] == pytest.approx(value), key
    counts = df["event"].value_counts()
    assert summary["event_counts"] == {e: int(counts.get(e, 0)) for e in events}
    assert sum(summary["event_counts"].values()) == len(df)


def test_services_and_week_range(hospital, hospital_df):
    assert hospital.services == tuple(sorted(hospital_df["service"].unique()))
    assert hospital.week_range == (hospital_df["week"].min(), hospital_df["week"].max())
    assert list(hospital.frame.columns) == HOSPITAL_SCHEMA.names


@pytest.mark.parametrize(
    ("service", "week_from", "week_to"), [(None, 2, 4), ("ICU", 1, 6), ("surgery", 3, 3), (None, 1, 6)]
)
def test_query_filters_and_summarises(hospital, hospital_df, service, week_from, week_to):
    rows, summary = hospital.query(service, week_from, week_to)
    expected = hospital_df[hospital_df["week"].between(week_from, week_to)]
    if service is not None:
        expected = expected[expected["service"] == service]
    expected = expected.sort_values(["week", "service"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(rows, expected, check_dtype=False)
    assert (summary["service"], summary["week_from"], summary["week_to"]) == (service, week_from, week_to)
    assert_summary(summary, expected, hospital.events)


def test_query_defaults_to_everything(hospital, hospital_df):
    rows, summary = hospital.query()
    assert len(rows) == len(hospital_df)
    assert summary["n_weeks"] == hospital_df["week"].nunique()


def test_query_rows_are_a_copy(hospital):
    rows, _ = hospital.query("ICU", 1, 2)
    rows["patients_request"] = -1
    assert (hospital.frame["patients_request"] >= 0).all()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("ICU", 4, 2), r"week_from \(4\) must not be greater than week_to \(2\)"),
        (("cardiology", 1, 2), r"unknown service 'cardiology'.*ICU"),
        (("icu", 1, 2), "unknown service"),
        ((None, 0, 2), "outside the table's week range 1..6"),
        ((None, 1, 7), "outside the table's week range"),
        ((None, 1.5, 2), "week_from must be an integer"),
        ((None, 1, "2"), "week_to must be an integer"),
        ((None, True, 2), "week_from must be an integer"),
    ],
)
def test_query_bad_inputs_raise(hospital, args, message):
    with pytest.raises(ValueError, match=message):
        hospital.query(*args)


def test_query_accepts_numpy_integers(hospital):
    rows, _ = hospital.query(None, np.int64(2), np.int32(3))
    assert set(rows["week"]) == {2, 3}


@pytest.mark.parametrize(
    "column", ["week", "service", "patients_refused", "occupancy_rate", "event", "mean_length_of_stay_days"]
)
def test_hospital_missing_column_raises(tmp_path, hospital_df, column):
    path = write(hospital_df.drop(columns=[column]), tmp_path / "hosp.parquet")
    with pytest.raises(ValueError, match=rf"hosp\.parquet.*missing column.*'{column}'"):
        load_hospital_analytics(path)


def test_hospital_empty_table_raises(tmp_path, hospital_df):
    path = write(hospital_df.iloc[0:0], tmp_path / "hosp.parquet", HOSPITAL_SCHEMA)
    with pytest.raises(ValueError, match=r"hosp\.parquet.*empty"):
        load_hospital_analytics(path)


def test_hospital_duplicate_service_week_raises(tmp_path, hospital_df):
    path = write(pd.concat([hospital_df, hospital_df.iloc[[0]]]), tmp_path / "hosp.parquet", HOSPITAL_SCHEMA)
    with pytest.raises(ValueError, match="more than one row"):
        load_hospital_analytics(path)


# ---------------------------------------------------------------------------------------
# The committed tables against the shared CSV files
# ---------------------------------------------------------------------------------------

REFERENCE_DIR = get_settings().reference_dir
HOSPITAL_DIR = get_settings().data_dir / "hospital"
needs_hospital_data = pytest.mark.skipif(
    not (HOSPITAL_DIR / "services_weekly.csv").is_file(), reason=f"hospital data not found in {HOSPITAL_DIR}"
)


@pytest.fixture(scope="module")
def committed_hospital() -> HospitalAnalytics:
    return load_hospital_analytics(REFERENCE_DIR / HOSPITAL_ANALYTICS_FILE)


@pytest.fixture(scope="module")
def committed_fitbit() -> FitbitPercentiles:
    return load_fitbit_percentiles(REFERENCE_DIR / FITBIT_PERCENTILES_FILE)


@needs_hospital_data
@pytest.mark.parametrize(
    ("service", "week_from", "week_to"), [(None, 1, 52), ("ICU", 10, 20), ("emergency", 5, 5), (None, 40, 52)]
)
def test_committed_hospital_query_matches_csv(committed_hospital, service, week_from, week_to):
    csv = pd.read_csv(HOSPITAL_DIR / "services_weekly.csv")
    sel = csv[(csv["week"] >= week_from) & (csv["week"] <= week_to)]
    if service is not None:
        sel = sel[sel["service"] == service]
    rows, summary = committed_hospital.query(service, week_from, week_to)
    assert len(rows) == len(sel)
    merged = rows.merge(sel, on=["week", "service"], suffixes=("", "_csv"), validate="one_to_one")
    assert len(merged) == len(sel)
    for col in (
        "available_beds",
        "patients_request",
        "patients_admitted",
        "patients_refused",
        "patient_satisfaction",
        "staff_morale",
        "event",
    ):
        assert (merged[col] == merged[f"{col}_csv"]).all(), col
    assert summary["n_weeks"] == sel["week"].nunique()
    assert summary["total_patients_request"] == sel["patients_request"].sum()
    assert summary["total_patients_admitted"] == sel["patients_admitted"].sum()
    assert summary["total_patients_refused"] == sel["patients_refused"].sum()
    assert summary["overall_refusal_rate"] == pytest.approx(
        sel["patients_refused"].sum() / sel["patients_request"].sum()
    )
    assert summary["mean_occupancy_rate"] == pytest.approx((sel["patients_admitted"] / sel["available_beds"]).mean())
    assert summary["mean_patient_satisfaction"] == pytest.approx(sel["patient_satisfaction"].mean())
    assert summary["mean_staff_morale"] == pytest.approx(sel["staff_morale"].mean())
    counts = sel["event"].value_counts()
    assert summary["event_counts"] == {e: int(counts.get(e, 0)) for e in sorted(csv["event"].unique())}


@needs_hospital_data
def test_committed_hospital_covers_all_services_and_weeks(committed_hospital):
    csv = pd.read_csv(HOSPITAL_DIR / "services_weekly.csv")
    assert committed_hospital.services == tuple(sorted(csv["service"].unique()))
    assert committed_hospital.week_range == (csv["week"].min(), csv["week"].max())


def test_committed_fitbit_p50_gives_about_50(committed_fitbit):
    for metric in committed_fitbit.metric_names:
        grid = committed_fitbit.frame.set_index("metric").loc[metric, list(PERCENTILE_COLUMNS)].to_numpy(np.float64)
        v50 = grid[PERCENTILES.index(50)]
        tied = [p for p, v in zip(PERCENTILES, grid, strict=True) if v == v50]
        rank = committed_fitbit.percentile_of(metric, v50)
        assert rank == pytest.approx((tied[0] + tied[-1]) / 2), metric
        assert abs(rank - 50) <= (tied[-1] - tied[0]) / 2 + 1e-9, metric
        ranks = committed_fitbit.percentiles_of(metric, np.linspace(grid[0] - 1, grid[-1] + 1, 500))
        assert np.all(np.diff(ranks) >= 0), metric
