"""Hospital weekly analytics: filtered queries, with a summary, over one row per service and week.

The table (``hospital_analytics.parquet``) is built from the synthetic "Hospital Beds
Management" data set (CC0). Loaded by :func:`load_hospital_analytics`, queried with
:meth:`HospitalAnalytics.query`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from vitalcheck.catalog import REFERENCE_TABLES
from vitalcheck.reference.parquet import _metadata, _read_parquet, _validate_schema

HOSPITAL_ANALYTICS_FILE = REFERENCE_TABLES["hospital_analytics"]
"""File name of the hospital analytics table inside the reference directory."""

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
