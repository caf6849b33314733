"""Batch scoring of data sets with VitalCheck's tabular models, in-process or on Spark.

* :mod:`vitalcheck.batch.scoring`: the service's pipeline over a pandas frame in the data
  set's own format (no Spark needed);
* :mod:`vitalcheck.batch.spark`: the same over a Parquet or CSV data set on Spark, the
  model shipped with the job and loaded once per executor Python worker (needs the
  ``spark`` extra: ``pip install -e '.[spark]'``);
* ``python -m vitalcheck.batch``: the command line (see ``docs/SPARK.md``).
"""

from vitalcheck.settings import get_settings
from vitalcheck.threads import size_thread_pools

size_thread_pools(get_settings().compute_threads)  # first: before NumPy/OpenMP load

# isort: split
from vitalcheck.batch.scoring import DEFAULT_BATCH_ROWS, output_columns, score_frame, score_pandas  # noqa: E402

__all__ = ["DEFAULT_BATCH_ROWS", "output_columns", "score_frame", "score_pandas"]
