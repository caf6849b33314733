"""Serving-side reference tables: Fitbit cohort percentiles and weekly hospital analytics.

Two small, unrelated Parquet tables, built offline by :mod:`vitalcheck.training.reference_tables`
from the shared data sets and committed in the reference directory
(:attr:`vitalcheck.settings.Settings.reference_dir`): :mod:`~vitalcheck.reference.fitbit` and
:mod:`~vitalcheck.reference.hospital`, each with its schema, loader and queries, over the shared
reading and validation of :mod:`~vitalcheck.reference.parquet`. Serving-safe: numpy, pandas and
pyarrow only (plus the dependency-free :mod:`vitalcheck.catalog`). The loaders validate each
table and raise :class:`ValueError` naming the file and the problem, so that the service refuses
to start on a broken table rather than answering wrongly. Import from this package.
"""

from vitalcheck.reference.fitbit import (
    FITBIT_METRIC_UNITS,
    FITBIT_PERCENTILES_FILE,
    FITBIT_SCHEMA,
    PERCENTILE_COLUMNS,
    PERCENTILES,
    FitbitPercentiles,
    MetricInfo,
    load_fitbit_percentiles,
)
from vitalcheck.reference.hospital import (
    HOSPITAL_ANALYTICS_FILE,
    HOSPITAL_SCHEMA,
    HospitalAnalytics,
    load_hospital_analytics,
)
from vitalcheck.reference.parquet import SCHEMA_VERSION

__all__ = [
    "FITBIT_METRIC_UNITS",
    "FITBIT_PERCENTILES_FILE",
    "FITBIT_SCHEMA",
    "HOSPITAL_ANALYTICS_FILE",
    "HOSPITAL_SCHEMA",
    "PERCENTILES",
    "PERCENTILE_COLUMNS",
    "SCHEMA_VERSION",
    "FitbitPercentiles",
    "HospitalAnalytics",
    "MetricInfo",
    "load_fitbit_percentiles",
    "load_hospital_analytics",
]
