"""Serving-side reference tables: Fitbit cohort percentiles and weekly hospital analytics.

Two small Parquet tables, built offline by :mod:`vitalcheck.training.reference_tables` from
the shared data sets and committed in the reference directory
(:attr:`vitalcheck.settings.Settings.reference_dir`):

* ``fitbit_percentiles.parquet``: per daily metric of the Fitbit Fitness Tracker Data
  (33 users, 2016-04-12..2016-05-12, CC0), the values at percentiles 1..99 across
  user-days. Loaded by :func:`load_fitbit_percentiles`, queried with
  :meth:`FitbitPercentiles.percentile_of`.
* ``hospital_analytics.parquet``: one row per hospital service and week of the synthetic
  "Hospital Beds Management" data set (CC0). Loaded by :func:`load_hospital_analytics`,
  queried with :meth:`HospitalAnalytics.query`.

This module is serving-safe: it imports only numpy, pandas and pyarrow (plus the
dependency-free :mod:`vitalcheck.catalog`). The loaders validate each table and raise
:class:`ValueError` naming the file and the problem, so that the service refuses to start
on a broken table rather than answering wrongly.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from vitalcheck.catalog import REFERENCE_TABLES

FITBIT_PERCENTILES_FILE = REFERENCE_TABLES["fitbit_percentiles"]
"""File name of the Fitbit percentile table inside the reference directory."""
HOSPITAL_ANALYTICS_FILE = REFERENCE_TABLES["hospital_analytics"]
"""File name of the hospital analytics table inside the reference directory."""

SCHEMA_VERSION = "1"
"""Value of the ``vitalcheck.schema_version`` Parquet metadata key both tables carry."""

PERCENTILES: tuple[int, ...] = tuple(range(1, 100))
"""The percentile grid stored per metric: 1, 2, ..., 99."""
PERCENTILE_COLUMNS: tuple[str, ...] = tuple(f"p{p}" for p in PERCENTILES)
"""Column names of the percentile grid: ``p1`` .. ``p99``."""

FITBIT_METRIC_UNITS: dict[str, str] = {
    "total_steps": "steps",
    "total_distance_km": "km",
    "very_active_minutes": "min",
    "fairly_active_minutes": "min",
    "lightly_active_minutes": "min",
    "sedentary_minutes": "min",
    "calories_kcal": "kcal",
    "minutes_asleep": "min",
    "time_in_bed_minutes": "min",
}
"""The metrics of the Fitbit percentile table (row order) and their units (per day)."""

FITBIT_SCHEMA = pa.schema(
    [
        pa.field("metric", pa.string(), nullable=False),
        pa.field("unit", pa.string(), nullable=False),
        pa.field("n_user_days", pa.int64(), nullable=False),
        pa.field("n_users", pa.int64(), nullable=False),
        *(pa.field(c, pa.float64(), nullable=False) for c in PERCENTILE_COLUMNS),
    ]
)
"""Arrow schema of ``fitbit_percentiles.parquet`` (wide layout: one row per metric).

Columns: ``metric`` (snake_case name, unit in the name where it has one), ``unit``,
``n_user_days`` (user-days, or user-nights for the sleep metrics, in the cohort),
``n_users`` (distinct users contributing), ``p1`` .. ``p99`` (value of the metric, in
``unit``, at that percentile of the cohort).
"""

HOSPITAL_SCHEMA = pa.schema(
    [
        pa.field("week", pa.int64(), nullable=False),
        pa.field("month", pa.int64(), nullable=False),
        pa.field("service", pa.string(), nullable=False),
        pa.field("available_beds", pa.int64(), nullable=False),
        pa.field("patients_request", pa.int64(), nullable=False),
        pa.field("patients_admitted", pa.int64(), nullable=False),
        pa.field("patients_refused", pa.int64(), nullable=False),
        pa.field("refusal_rate", pa.float64(), nullable=True),
        pa.field("occupancy_rate", pa.float64(), nullable=True),
        pa.field("patient_satisfaction", pa.int64(), nullable=False),
        pa.field("staff_morale", pa.int64(), nullable=False),
        pa.field("event", pa.string(), nullable=False),
        pa.field("staff_present_doctor", pa.int64(), nullable=False),
        pa.field("staff_present_nurse", pa.int64(), nullable=False),
        pa.field("staff_present_nursing_assistant", pa.int64(), nullable=False),
        pa.field("patients_arrived", pa.int64(), nullable=False),
        pa.field("mean_length_of_stay_days", pa.float64(), nullable=True),
    ]
)
"""Arrow schema of ``hospital_analytics.parquet`` (one row per service and week).

Columns (counts are per service and week):

* ``week`` (1..52), ``month`` (1..12, as given by the source), ``service``.
* ``available_beds``, ``patients_request``, ``patients_admitted``, ``patients_refused``
  (counts, as given by ``services_weekly.csv``).
* ``refusal_rate``: ``patients_refused / patients_request`` (fraction 0..1; null when no
  requests).
* ``occupancy_rate``: ``patients_admitted / available_beds`` (fraction 0..1; admissions
  per available bed that week, the source has no daily census; null when no beds).
* ``patient_satisfaction``, ``staff_morale``: weekly scores 0..100 from the source.
* ``event``: ``none``, ``flu``, ``donation`` or ``strike`` (the source's spelling).
* ``staff_present_doctor`` / ``_nurse`` / ``_nursing_assistant``: staff of that role
  rostered to the service with ``present == 1`` in ``staff_schedule.csv`` (0 in every role
  in weeks 3, 6, ..., 51, where the source marks everyone absent).
* ``patients_arrived``: patients in ``patients.csv`` of that service whose arrival date
  falls in the week (ISO 8601 week of 2025; 2025-12-29..31, ISO week 1 of 2026, count in
  week 52).
* ``mean_length_of_stay_days``: mean of ``departure_date - arrival_date`` (days) over
  those patients; null when none arrived.
"""

_HOSPITAL_COUNT_COLUMNS = ("patients_request", "patients_admitted", "patients_refused")


@dataclass(frozen=True)
class MetricInfo:
    """One metric of the Fitbit percentile table.

    Attributes:
        name: snake_case metric name (``total_steps``).
        unit: unit of the metric's values (``steps``, ``km``, ``min``, ``kcal``), per day.
        n_user_days: number of user-days (user-nights for sleep metrics) in the cohort.
        n_users: number of distinct users in the cohort.

    """

    name: str
    unit: str
    n_user_days: int
    n_users: int


# ---------------------------------------------------------------------------------------
# Loading and validation helpers
# ---------------------------------------------------------------------------------------


def _read_parquet(path: Path | str, what: str) -> pa.Table:
    """Read a Parquet file, turning a missing or unreadable file into a clear error."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: {what} table not found (build it with vitalcheck.training.reference_tables)")
    try:
        return pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise ValueError(f"{path}: cannot read the {what} table as Parquet: {exc}") from exc


def _type_ok(actual: pa.DataType, expected: pa.DataType) -> bool:
    """Whether a stored Arrow type is acceptable for the expected one."""
    if pa.types.is_string(expected):
        return pa.types.is_string(actual) or pa.types.is_large_string(actual)
    if pa.types.is_integer(expected):
        return pa.types.is_integer(actual)
    if pa.types.is_floating(expected):
        return pa.types.is_floating(actual) or pa.types.is_integer(actual)
    return actual.equals(expected)


def _validate_schema(path: Path | str, table: pa.Table, expected: pa.Schema, what: str) -> None:
    """Check required columns, their types, nulls and that the table has rows."""
    missing = [name for name in expected.names if name not in table.schema.names]
    if missing:
        raise ValueError(f"{path}: {what} table is missing column(s) {missing}")
    wrong = [
        f"{field.name} ({table.schema.field(field.name).type}, expected {field.type})"
        for field in expected
        if not _type_ok(table.schema.field(field.name).type, field.type)
    ]
    if wrong:
        raise ValueError(f"{path}: {what} table has column(s) of the wrong type: {', '.join(wrong)}")
    if table.num_rows == 0:
        raise ValueError(f"{path}: {what} table is empty (0 rows)")
    nulls = [f.name for f in expected if not f.nullable and table.column(f.name).null_count > 0]
    if nulls:
        raise ValueError(f"{path}: {what} table has null values in column(s) {nulls}")


def _metadata(table: pa.Table) -> dict[str, str]:
    """Return the table's Parquet schema metadata decoded to ``str`` (Arrow's pandas entry left out)."""
    raw = table.schema.metadata or {}
    return {k.decode(): v.decode() for k, v in raw.items() if k != b"pandas"}


# ---------------------------------------------------------------------------------------
# Fitbit percentiles
# ---------------------------------------------------------------------------------------


class FitbitPercentiles:
    """Percentile grids of daily Fitbit metrics, and percentile-rank lookups.

    Data source: Fitbit Fitness Tracker Data (Kaggle, Möbius; Furberg et al., Zenodo),
    33 users, 2016-04-12..2016-05-12, CC0. The cohort rules (non-wear and partial days
    left out) are in :attr:`metadata` under ``vitalcheck.exclusions``.

    Attributes:
        path: the Parquet file the table was read from.
        frame: the table, one row per metric (see :data:`FITBIT_SCHEMA`), row order kept.
        metadata: the Parquet schema metadata (provenance, layout, exclusions), ``str`` → ``str``.

    """

    def __init__(self, frame: pd.DataFrame, *, path: Path | str = "<memory>", metadata: dict[str, str] | None = None):
        """Wrap a validated table; use :func:`load_fitbit_percentiles` to read one from disk."""
        self.path = Path(path)
        self.frame = frame.reset_index(drop=True)
        self.metadata = dict(metadata or {})
        self._percentiles = np.asarray(PERCENTILES, dtype=np.float64)
        self._percentiles.flags.writeable = False
        self._grids: dict[str, np.ndarray] = {}
        for metric, row in zip(
            self.frame["metric"], self.frame[list(PERCENTILE_COLUMNS)].to_numpy(np.float64), strict=True
        ):
            grid = np.ascontiguousarray(row)
            grid.flags.writeable = False
            self._grids[str(metric)] = grid
        self._metrics = tuple(
            MetricInfo(str(r.metric), str(r.unit), int(r.n_user_days), int(r.n_users))
            for r in self.frame[["metric", "unit", "n_user_days", "n_users"]].itertuples(index=False)
        )

    @property
    def metrics(self) -> tuple[MetricInfo, ...]:
        """The table's metrics in row order: name, unit and cohort size (user-days, users)."""
        return self._metrics

    @property
    def metric_names(self) -> tuple[str, ...]:
        """Names of the table's metrics, in row order."""
        return tuple(m.name for m in self._metrics)

    def grid(self, metric: str) -> tuple[np.ndarray, np.ndarray]:
        """Return the percentile grid of one metric.

        Args:
            metric: a name from :attr:`metric_names`.

        Returns:
            ``(percentiles, values)``: two read-only float64 arrays of shape ``(99,)``,
            percentiles 1..99 and the metric's values there (in the metric's unit,
            non-decreasing).

        Raises:
            ValueError: ``metric`` is not in the table.

        """
        return self._percentiles, self._grid_of(metric)

    def _grid_of(self, metric: str) -> np.ndarray:
        try:
            return self._grids[metric]
        except (KeyError, TypeError):
            raise ValueError(f"unknown Fitbit metric {metric!r}; known metrics: {list(self._grids)}") from None

    def percentile_of(self, metric: str, value: float) -> float:
        """Percentile rank (0..100) of one value within the cohort of a metric.

        The rank is read off the stored grid (p1..p99) by linear interpolation between
        neighbouring grid points. A value equal to several grid points (ties, e.g. the
        many days with 0 very-active minutes) gets the middle of their percentiles.
        Below p1 or above p99 the end segment is extrapolated linearly; the result is
        clipped to [0, 100]. The rank is non-decreasing in ``value``, and about 50 at
        the cohort median.

        Args:
            metric: a name from :attr:`metric_names`, e.g. ``total_steps``.
            value: the value in the metric's unit (see :attr:`metrics`), e.g. steps per day.

        Returns:
            The percentile rank, a float in [0, 100].

        Raises:
            ValueError: unknown ``metric``, or ``value`` is not a finite number.

        """
        try:
            x = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"value for {metric!r} must be a number, got {value!r}") from None
        if not math.isfinite(x):
            raise ValueError(f"value for {metric!r} must be finite, got {value!r}")
        return float(self.percentiles_of(metric, np.array([x]))[0])

    def percentiles_of(self, metric: str, values: Iterable[float] | np.ndarray) -> np.ndarray:
        """Vectorised :meth:`percentile_of`: percentile ranks of many values of one metric.

        Args:
            metric: a name from :attr:`metric_names`.
            values: numbers in the metric's unit, any shape (array-like).

        Returns:
            float64 array of the same shape, ranks in [0, 100]; NaN where the input is NaN,
            ``-inf`` maps to 0 and ``+inf`` to 100.

        Raises:
            ValueError: unknown ``metric``, or ``values`` are not numeric.

        """
        grid = self._grid_of(metric)
        try:
            x = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"values for {metric!r} must be numeric") from None
        return _percentile_rank(grid, self._percentiles, x)


def _percentile_rank(grid: np.ndarray, pcts: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Piecewise-linear percentile rank of ``x`` on a non-decreasing ``grid`` at ``pcts``."""
    n = grid.size
    shape = x.shape
    x = x.ravel()
    out = np.full(x.shape, np.nan)
    ok = ~np.isnan(x)
    xs = x[ok]
    lo = np.searchsorted(grid, xs, side="left")  # grid points strictly below x
    hi = np.searchsorted(grid, xs, side="right")  # grid points at or below x
    res = np.empty(xs.shape)

    tie = hi > lo  # x equals one or more grid points: middle of their percentiles
    res[tie] = (pcts[lo[tie]] + pcts[hi[tie] - 1]) / 2.0

    inner = ~tie & (lo > 0) & (lo < n)  # grid[i-1] < x < grid[i]
    i = lo[inner]
    x0, x1, y0, y1 = grid[i - 1], grid[i], pcts[i - 1], pcts[i]
    res[inner] = y0 + (xs[inner] - x0) * (y1 - y0) / (x1 - x0)

    distinct = np.flatnonzero(np.diff(grid) > 0)
    below = ~tie & (lo == 0)
    above = ~tie & (lo == n)
    if distinct.size == 0:  # constant grid: everything below is 0, above is 100
        res[below] = 0.0
        res[above] = 100.0
    else:
        j = distinct[0]  # first segment with distinct ends: grid[j] < grid[j + 1]
        slope_lo = (pcts[j + 1] - pcts[j]) / (grid[j + 1] - grid[j])
        res[below] = pcts[0] - (grid[0] - xs[below]) * slope_lo
        k = distinct[-1]  # last segment with distinct ends
        slope_hi = (pcts[k + 1] - pcts[k]) / (grid[k + 1] - grid[k])
        res[above] = pcts[-1] + (xs[above] - grid[-1]) * slope_hi
    with np.errstate(invalid="ignore"):
        out[ok] = np.clip(res, 0.0, 100.0)
    return out.reshape(shape)


def load_fitbit_percentiles(
    path: Path | str, *, required_metrics: Iterable[str] = tuple(FITBIT_METRIC_UNITS)
) -> FitbitPercentiles:
    """Load and validate ``fitbit_percentiles.parquet``.

    Args:
        path: the Parquet file (normally ``get_settings().reference_dir / FITBIT_PERCENTILES_FILE``).
        required_metrics: metrics that must be present (default: all of
            :data:`FITBIT_METRIC_UNITS`); pass ``()`` to accept any metric set.

    Returns:
        The loaded table with its grids precomputed as read-only numpy arrays.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is not readable Parquet, or the table is empty, lacks a column
            of :data:`FITBIT_SCHEMA` or a required metric, has a column of the wrong type,
            nulls, duplicate metrics, a non-positive cohort size, or a percentile grid
            that is not finite and non-decreasing. The message names the file.

    """
    what = "Fitbit percentiles"
    table = _read_parquet(path, what)
    _validate_schema(path, table, FITBIT_SCHEMA, what)
    frame = table.select(FITBIT_SCHEMA.names).to_pandas()
    frame[["n_user_days", "n_users"]] = frame[["n_user_days", "n_users"]].astype(np.int64)
    frame[list(PERCENTILE_COLUMNS)] = frame[list(PERCENTILE_COLUMNS)].astype(np.float64)

    dup = frame["metric"][frame["metric"].duplicated()].tolist()
    if dup:
        raise ValueError(f"{path}: {what} table has duplicate metric(s) {dup}")
    absent = [m for m in required_metrics if m not in set(frame["metric"])]
    if absent:
        raise ValueError(f"{path}: {what} table lacks required metric(s) {absent}")
    bad_n = frame.loc[(frame["n_user_days"] <= 0) | (frame["n_users"] <= 0), "metric"].tolist()
    if bad_n:
        raise ValueError(f"{path}: {what} table has a non-positive cohort size for metric(s) {bad_n}")
    grids = frame[list(PERCENTILE_COLUMNS)].to_numpy(np.float64)
    bad_grid = frame.loc[~np.isfinite(grids).all(axis=1) | (np.diff(grids, axis=1) < 0).any(axis=1), "metric"].tolist()
    if bad_grid:
        raise ValueError(f"{path}: {what} table has a non-finite or decreasing p1..p99 grid for metric(s) {bad_grid}")
    return FitbitPercentiles(frame, path=path, metadata=_metadata(table))


# ---------------------------------------------------------------------------------------
# Hospital analytics
# ---------------------------------------------------------------------------------------


class HospitalAnalytics:
    """Weekly per-service hospital analytics, and filtered queries with a summary.

    Data source: Kaggle "Hospital Beds Management" (synthetic, CC0): services_weekly.csv,
    staff_schedule.csv and patients.csv, weeks 1..52 of 2025. Column definitions are in
    :data:`HOSPITAL_SCHEMA` and the table's :attr:`metadata`.

    Attributes:
        path: the Parquet file the table was read from.
        frame: the table sorted by ``week`` then ``service`` (see :data:`HOSPITAL_SCHEMA`).
        metadata: the Parquet schema metadata (provenance, definitions), ``str`` → ``str``.

    """

    def __init__(self, frame: pd.DataFrame, *, path: Path | str = "<memory>", metadata: dict[str, str] | None = None):
        """Wrap a validated table; use :func:`load_hospital_analytics` to read one from disk."""
        self.path = Path(path)
        self.frame = frame.sort_values(["week", "service"], kind="stable").reset_index(drop=True)
        self.metadata = dict(metadata or {})
        self._weeks = self.frame["week"].to_numpy(np.int64)
        self._service_values = self.frame["service"].to_numpy(dtype=object)
        self._services = tuple(sorted(set(self._service_values)))
        self._week_range = (int(self._weeks.min()), int(self._weeks.max()))
        self._events = tuple(sorted(set(self.frame["event"].astype(str))))

    @property
    def services(self) -> tuple[str, ...]:
        """The services in the table, sorted (exact spelling, e.g. ``ICU``, ``emergency``)."""
        return self._services

    @property
    def week_range(self) -> tuple[int, int]:
        """First and last week in the table (inclusive), e.g. ``(1, 52)``."""
        return self._week_range

    @property
    def events(self) -> tuple[str, ...]:
        """The event values in the table, sorted (e.g. ``donation``, ``flu``, ``none``, ``strike``)."""
        return self._events

    def query(
        self, service: str | None = None, week_from: int | None = None, week_to: int | None = None
    ) -> tuple[pd.DataFrame, dict[str, Any]]:
        """Rows of one service (or all) over an inclusive week range, and their summary.

        Args:
            service: a name from :attr:`services`, or ``None`` for all services.
            week_from: first week (inclusive), within :attr:`week_range`; ``None`` = first week.
            week_to: last week (inclusive), within :attr:`week_range`; ``None`` = last week.

        Returns:
            ``(rows, summary)``. ``rows``: a copy of the matching rows, columns of
            :data:`HOSPITAL_SCHEMA`, sorted by week then service, index 0..n-1.
            ``summary``: a JSON-ready dict with keys

            * ``service`` (the argument, ``None`` for all), ``week_from``, ``week_to``;
            * ``n_weeks`` (distinct weeks), ``n_rows`` (service-weeks);
            * ``total_patients_request``, ``total_patients_admitted``,
              ``total_patients_refused``, ``total_patients_arrived`` (ints);
            * ``overall_refusal_rate``: total refused / total requests (fraction 0..1);
            * ``mean_occupancy_rate``: mean of the rows' ``occupancy_rate`` (fraction 0..1);
            * ``mean_patient_satisfaction``, ``mean_staff_morale``: means of the rows'
              weekly scores (0..100);
            * ``event_counts``: rows per event, every event of the table present (0 if none).

            Undefined means (no rows, no requests) are ``None``.

        Raises:
            ValueError: unknown ``service``; a week that is not an integer or lies outside
                :attr:`week_range`; ``week_from > week_to``.

        """
        first, last = self._week_range
        wf = first if week_from is None else _as_week(week_from, "week_from")
        wt = last if week_to is None else _as_week(week_to, "week_to")
        if wf > wt:
            raise ValueError(f"week_from ({wf}) must not be greater than week_to ({wt})")
        if wf < first or wt > last:
            raise ValueError(f"weeks {wf}..{wt} are outside the table's week range {first}..{last}")
        mask = (self._weeks >= wf) & (self._weeks <= wt)
        if service is not None:
            if not isinstance(service, str) or service not in self._services:
                raise ValueError(f"unknown service {service!r}; known services: {list(self._services)}")
            mask &= self._service_values == service
        rows = self.frame.loc[mask].reset_index(drop=True)
        summary: dict[str, Any] = {"service": service, "week_from": wf, "week_to": wt}
        summary.update(self._summarise(rows))
        return rows, summary

    def _summarise(self, rows: pd.DataFrame) -> dict[str, Any]:
        totals = {f"total_{c}": int(rows[c].sum()) for c in (*_HOSPITAL_COUNT_COLUMNS, "patients_arrived")}
        requests = totals["total_patients_request"]
        counts = rows["event"].astype(str).value_counts()
        return {
            "n_weeks": int(rows["week"].nunique()),
            "n_rows": len(rows),
            **totals,
            "overall_refusal_rate": totals["total_patients_refused"] / requests if requests > 0 else None,
            "mean_occupancy_rate": _mean_or_none(rows["occupancy_rate"]),
            "mean_patient_satisfaction": _mean_or_none(rows["patient_satisfaction"]),
            "mean_staff_morale": _mean_or_none(rows["staff_morale"]),
            "event_counts": {e: int(counts.get(e, 0)) for e in self._events},
        }


def _as_week(value: Any, name: str) -> int:
    """Return ``value`` as an int week number; ValueError if it is not an integer."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} must be an integer week number, got {value!r}")
    return int(value)


def _mean_or_none(column: pd.Series) -> float | None:
    mean = column.astype(np.float64).mean()
    return None if pd.isna(mean) else float(mean)


def load_hospital_analytics(path: Path | str) -> HospitalAnalytics:
    """Load and validate ``hospital_analytics.parquet``.

    Args:
        path: the Parquet file (normally ``get_settings().reference_dir / HOSPITAL_ANALYTICS_FILE``).

    Returns:
        The loaded table, sorted by week then service, with lookup arrays precomputed.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is not readable Parquet, or the table is empty, lacks a column
            of :data:`HOSPITAL_SCHEMA`, has a column of the wrong type, nulls in a required
            column, or more than one row for a service and week. The message names the file.

    """
    what = "hospital analytics"
    table = _read_parquet(path, what)
    _validate_schema(path, table, HOSPITAL_SCHEMA, what)
    frame = table.select(HOSPITAL_SCHEMA.names).to_pandas()
    for field in HOSPITAL_SCHEMA:
        if pa.types.is_integer(field.type):
            frame[field.name] = frame[field.name].astype(np.int64)
        elif pa.types.is_floating(field.type):
            frame[field.name] = frame[field.name].astype(np.float64)
    dup = frame.loc[frame.duplicated(["service", "week"]), ["service", "week"]]
    if len(dup):
        raise ValueError(
            f"{path}: {what} table has more than one row for (service, week) {dup.to_records(index=False).tolist()[:5]}"
        )
    return HospitalAnalytics(frame, path=path, metadata=_metadata(table))
