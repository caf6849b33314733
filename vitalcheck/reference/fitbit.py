"""Fitbit activity percentiles: where one person's day falls within the Fitbit cohort.

The table (``fitbit_percentiles.parquet``) holds, per daily metric of the Fitbit Fitness Tracker
Data (33 users, 2016-04-12..2016-05-12, CC0), the values at percentiles 1..99 across user-days.
Loaded by :func:`load_fitbit_percentiles`, queried with :meth:`FitbitPercentiles.percentile_of`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from vitalcheck.catalog import REFERENCE_TABLES
from vitalcheck.reference.parquet import _metadata, _read_parquet, _validate_schema

FITBIT_PERCENTILES_FILE = REFERENCE_TABLES["fitbit_percentiles"]
"""File name of the Fitbit percentile table inside the reference directory."""

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
