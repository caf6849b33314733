"""Score a Parquet or CSV data set with a tabular VitalCheck model on Spark.

``bentoml.batch.run_in_spark`` cannot run ``@bentoml.service`` classes in BentoML 1.4 (it
needs the legacy IO descriptors), so this module does what it would: ship the model with
the job and score every partition with the service's own pipeline.

* **Driver.** The model is taken from the driver's BentoML model store
  (``vitalcheck-<model>:latest`` or a given tag), loaded once to check it (sha256, library
  versions, golden outputs), exported with ``bentoml.models.export_model`` to one file and
  shipped with ``SparkContext.addFile``.
* **Executors.** Each Python worker imports that file, the first time it needs it, with
  ``bentoml.models.import_model`` into a store of its own (a ``BENTOML_HOME`` under the
  executor's Spark files directory), loads it with :meth:`TabularPredictor.load` (the same
  checks as at service start-up) and keeps it in a module global: one load per Python
  worker, however many partitions and batches it scores (Spark reuses Python workers).
* **Scoring.** ``DataFrame.mapInPandas`` hands each worker Arrow batches of rows in the
  data set's own format; :func:`vitalcheck.batch.scoring.score_frame` returns the service's
  answers for them, which are appended to the input columns.

Runs in local mode (``--master local[2]``) and on a cluster by configuration; see
``docs/SPARK.md``.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from vitalcheck import sources
from vitalcheck.batch.scoring import DEFAULT_BATCH_ROWS, output_columns, score_frame, strip_na_strings
from vitalcheck.catalog import TABULAR_MODELS
from vitalcheck.predictors.tabular import TabularPredictor
from vitalcheck.settings import get_settings

if TYPE_CHECKING:
    from pyspark.accumulators import Accumulator
    from pyspark.sql import DataFrame, SparkSession

logger = logging.getLogger("vitalcheck.batch")

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
"""Native thread pools pinned to one thread in every executor Python worker (see vitalcheck/threads.py)."""


@dataclass(frozen=True)
class ExecutorJob:
    """What an executor needs to score: sent with every task (small, picklable).

    Attributes:
        model: catalog name of the tabular model (``diabetes``).
        bundle: file name of the exported model, as added with ``SparkContext.addFile``.
        tag: model-store tag of the exported model.
        moderate: risk threshold 'moderate' (from the driver's settings).
        high: risk threshold 'high' (from the driver's settings).
        text_input: the rows were read as text (CSV): apply the loaders' missing-value strings.

    """

    model: str
    bundle: str
    tag: str
    moderate: float
    high: float
    text_input: bool


@dataclass(frozen=True)
class BatchSummary:
    """What a scoring run did.

    Attributes:
        model_tag: model-store tag of the model used.
        output: where the scored rows were written.
        rows: rows scored or refused.
        refused: rows that got an ``error`` instead of scores.
        model_loads: times a Python worker loaded the model (one per worker).
        partitions: partitions scored.
        seconds: wall time of the Spark job (reading, scoring and writing).

    """

    model_tag: str
    output: str
    rows: int
    refused: int
    model_loads: int
    partitions: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """The summary as a JSON-ready dict, with rows per second."""
        rate = self.rows / self.seconds if self.seconds > 0 else 0.0
        return {**self.__dict__, "seconds": round(self.seconds, 2), "rows_per_second": round(rate, 1)}


# ---- executor side ------------------------------------------------------------------------------

_PREDICTORS: dict[tuple[str, str], TabularPredictor] = {}
"""Models loaded by this Python worker, by (bundle file, tag): each is loaded once per worker."""

_WORKER_HOME: Path | None = None
"""This Python worker's own BentoML home (model store), created on first use."""


def _worker_home() -> Path:
    """Create (once) a BentoML home for this Python worker under the executor's Spark files directory.

    One per worker process, so that concurrent workers never write the same store. It is
    set as ``BENTOML_HOME`` before this process first touches a BentoML store (BentoML reads
    the variable lazily), so ``import_model`` writes there and never into a store the
    executor may have inherited from the driver's environment (local mode).
    """
    global _WORKER_HOME
    if _WORKER_HOME is None:
        from pyspark import SparkFiles

        root = SparkFiles.getRootDirectory() or tempfile.gettempdir()
        _WORKER_HOME = Path(tempfile.mkdtemp(prefix=f"vitalcheck-bentoml-{os.getpid()}-", dir=root))
        os.environ["BENTOML_HOME"] = str(_WORKER_HOME)
        os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")
    return _WORKER_HOME


def executor_predictor(job: ExecutorJob, loads: Accumulator | None = None) -> TabularPredictor:
    """Return the job's model in this Python worker, importing and loading it on first use.

    Args:
        job: the job description.
        loads: accumulator incremented once per actual load (for the run summary and tests).

    Raises:
        vitalcheck.cards.ArtifactCheckError: the shipped model fails the load checks
            (e.g. the executor has another scikit-learn version than the one it was trained with).
        RuntimeError: the model was not imported into this worker's own store.

    """
    key = (job.bundle, job.tag)
    predictor = _PREDICTORS.get(key)
    if predictor is not None:
        return predictor
    from pyspark import SparkFiles

    home = _worker_home()
    import bentoml

    try:
        model = bentoml.models.get(job.tag)
    except bentoml.exceptions.NotFound:
        model = bentoml.models.import_model(SparkFiles.get(job.bundle))
    path = Path(model.path).resolve()
    if not path.is_relative_to(home.resolve()):
        raise RuntimeError(f"model {job.tag} resolved to {path}, outside this worker's store {home}")
    if str(model.tag) != job.tag:
        raise RuntimeError(f"shipped model is {model.tag}, expected {job.tag}")
    predictor = TabularPredictor.load(TABULAR_MODELS[job.model], path, str(model.tag))
    _PREDICTORS[key] = predictor
    logger.info("loaded %s in Python worker %d", job.tag, os.getpid())
    if loads is not None:
        loads.add(1)
    return predictor


def score_partition(
    job: ExecutorJob,
    counters: tuple[Accumulator, Accumulator, Accumulator] | None,
    batches: Iterator[pd.DataFrame],
) -> Iterator[pd.DataFrame]:
    """The ``mapInPandas`` function: input columns followed by the model's output columns.

    Bound with :func:`functools.partial` to a module-level function, so that Spark pickles
    it by reference and :data:`_PREDICTORS` stays this worker's module global.

    Args:
        job: the job description.
        counters: accumulators (rows, refused rows, model loads), or None.
        batches: Arrow batches of input rows as pandas frames.

    Yields:
        One frame per batch: the batch's columns unchanged, then :func:`output_columns`.

    """
    rows, refused, loads = counters if counters is not None else (None, None, None)
    for batch in batches:
        predictor = executor_predictor(job, loads)  # loaded on the first batch, then cached
        source = strip_na_strings(batch) if job.text_input else batch
        scores = score_frame(predictor, source, moderate=job.moderate, high=job.high)
        if rows is not None and refused is not None:  # both set or both None
            rows.add(len(batch))
            refused.add(int(scores["error"].notna().sum()))
        yield pd.concat([batch.reset_index(drop=True), scores], axis=1)


# ---- driver side --------------------------------------------------------------------------------


def spark_session(
    master: str | None = None,
    *,
    driver_memory: str = "2g",
    batch_rows: int = DEFAULT_BATCH_ROWS,
    conf: Mapping[str, str] | None = None,
    app_name: str = "vitalcheck-batch",
) -> SparkSession:
    """Get or create a Spark session configured for scoring.

    Args:
        master: Spark master URL (``local[2]``, ``spark://host:7077``, ``yarn``, ``k8s://…``);
            None leaves it to ``spark-submit`` or ``spark-defaults.conf`` (plain ``python``: ``local[*]``).
        driver_memory: ``spark.driver.memory`` (effective only when this call starts the JVM).
        batch_rows: rows per Arrow batch (``spark.sql.execution.arrow.maxRecordsPerBatch``).
        conf: further Spark settings; they override the ones set here.
        app_name: application name.

    Returns:
        The session. Executor Python workers get ``OMP_NUM_THREADS=1`` (and the BLAS
        equivalents); in local mode they run this interpreter (``PYSPARK_PYTHON`` defaults
        to ``sys.executable``) unless ``PYSPARK_PYTHON`` or ``spark.pyspark.python`` says otherwise.

    """
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(app_name)
    if master:
        builder = builder.master(master)
    settings = {
        "spark.driver.memory": driver_memory,
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.execution.arrow.maxRecordsPerBatch": str(batch_rows),
        "spark.python.worker.reuse": "true",
        "spark.ui.showConsoleProgress": "false",
        "spark.executorEnv.BENTOML_DO_NOT_TRACK": "True",
        **{f"spark.executorEnv.{v}": "1" for v in THREAD_VARIABLES},
        **dict(conf or {}),
    }
    for key, value in settings.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def detect_format(path: str) -> str:
    """``csv`` or ``parquet``: by suffix, else (local paths) by the first data file's magic bytes."""
    lowered = path.rstrip("/").lower()
    if lowered.endswith((".csv", ".csv.gz")):
        return "csv"
    if lowered.endswith((".parquet", ".pq")):
        return "parquet"
    local = Path(path.removeprefix("file://"))
    if local.is_dir():
        files = sorted(p for p in local.rglob("*") if p.is_file() and not p.name.startswith(("_", ".")))
        local = files[0] if files else local
    if local.is_file():
        with open(local, "rb") as fh:
            return "parquet" if fh.read(4) == b"PAR1" else "csv"
    return "parquet"


def read_dataset(spark: SparkSession, path: str, fmt: str = "auto") -> DataFrame:
    """Read a data set in its own format: Parquet as typed, CSV with every column as text.

    CSV columns are read as strings (header row, RFC 4180 quoting; an empty field is
    null) and parsed on the executors by the same loaders as the service's file upload.
    """
    fmt = detect_format(path) if fmt == "auto" else fmt
    if fmt == "csv":
        return spark.read.options(header=True, inferSchema=False, escape='"').csv(path)
    return spark.read.parquet(path)


def output_schema(df: DataFrame, model: str):
    """Spark schema of the scored rows: the input's fields, then the model's output columns."""
    from pyspark.sql.types import DoubleType, StringType, StructField, StructType

    types = {"double": DoubleType(), "string": StringType()}
    added = [StructField(c.name, types[c.type], nullable=True) for c in output_columns(TABULAR_MODELS[model])]
    return StructType([*df.schema.fields, *added])


def check_input(df: DataFrame, model: str) -> None:
    """Fail fast on the driver when the input lacks a source column or clashes with an output column.

    Raises:
        sources.MissingColumnError: a required source column is missing.
        ValueError: an input column has the name of an output column.

    """
    empty = pd.DataFrame({name: pd.Series([], dtype=object) for name in df.columns})
    sources.features(model, empty, "input")
    taken = {c.lower() for c in df.columns} & {c.name.lower() for c in output_columns(TABULAR_MODELS[model])}
    if taken:
        raise ValueError(f"input columns {sorted(taken)} clash with output columns; rename them first")


def refuse_existing_output(output_path: str) -> None:
    """Refuse, before any work, to write over an existing local output (Spark refuses remote ones itself).

    Raises:
        FileExistsError: ``output_path`` is a local path that exists.

    """
    scheme = output_path.split("://", 1)[0] if "://" in output_path else "file"
    if scheme == "file" and Path(output_path.removeprefix("file://")).exists():
        raise FileExistsError(f"output {output_path} already exists (--overwrite replaces it)")


def ship_model(spark: SparkSession, model: str, tag: str | None, workdir: Path) -> tuple[str, str]:
    """Check the model in the driver's store, export it to one file and add it to the job.

    Args:
        spark: the session.
        model: catalog name of a tabular model.
        tag: model-store tag; None takes ``vitalcheck-<model>:latest``.
        workdir: where to write the exported file (kept until the job ends).

    Returns:
        ``(bundle file name, full tag)``.

    Raises:
        bentoml.exceptions.NotFound: the model is not in the driver's store.
        vitalcheck.cards.ArtifactCheckError: the stored model fails its load checks.

    """
    import bentoml

    spec = TABULAR_MODELS[model]
    stored = bentoml.models.get(tag or f"{spec.store_name}:latest")
    if stored.tag.name != spec.store_name:
        raise ValueError(f"{stored.tag} is not a {model} model (expected {spec.store_name})")
    TabularPredictor.load(spec, Path(stored.path), str(stored.tag))  # refuse a bad model before starting the job
    bundle = workdir / f"{stored.tag.name}-{stored.tag.version}.bentomodel"
    bentoml.models.export_model(str(stored.tag), str(bundle))
    spark.sparkContext.addFile(str(bundle))
    return bundle.name, str(stored.tag)


def score_dataset(
    spark: SparkSession,
    model: str,
    input_path: str,
    output_path: str,
    *,
    model_tag: str | None = None,
    input_format: str = "auto",
    output_format: str = "auto",
    partitions: int | None = None,
    row_id: str | None = None,
    overwrite: bool = False,
    moderate: float | None = None,
    high: float | None = None,
) -> BatchSummary:
    """Score a Parquet or CSV data set with a tabular model and write the scored rows.

    Args:
        spark: a session (see :func:`spark_session`).
        model: catalog name (``diabetes``, ``heart``, ``stroke``, ``breast_cancer``,
            ``sleep``, ``life_expectancy``, ``insurance``).
        input_path: Parquet or CSV file or directory in the data set's own format (source
            column names; the target column may be present and is ignored).
        output_path: directory to write (Spark writes part files).
        model_tag: model-store tag; default ``vitalcheck-<model>:latest``.
        input_format: ``auto``, ``csv`` or ``parquet``.
        output_format: ``auto`` (``csv`` when the path ends in .csv, else Parquet), ``csv`` or ``parquet``.
        partitions: score in this many partitions; default: the input's, raised to twice
            the default parallelism when the input has fewer (a small file is one partition).
            Repartitioning does not keep the input order: keep or add an id column.
        row_id: add a column of this name holding an id that increases in input order
            (``monotonically_increasing_id``, not consecutive), before any repartitioning.
        overwrite: replace ``output_path`` if it exists.
        moderate: risk threshold 'moderate'; default from the settings (VITALCHECK_RISK_MODERATE_THRESHOLD).
        high: risk threshold 'high'; default from the settings (VITALCHECK_RISK_HIGH_THRESHOLD).

    Returns:
        A :class:`BatchSummary`.

    Raises:
        KeyError: ``model`` is not a tabular model.
        sources.MissingColumnError: the input lacks a required source column.
        vitalcheck.cards.ArtifactCheckError: the model fails its load checks.
        FileExistsError: the (local) output exists and ``overwrite`` is false.
        pyspark.errors.AnalysisException: Spark cannot read the input or write the output
            (e.g. a remote output that exists).

    """
    from pyspark.sql import functions as F

    if model not in TABULAR_MODELS:
        raise KeyError(f"{model!r} is not a tabular model; choose one of {sorted(TABULAR_MODELS)}")
    if not overwrite:
        refuse_existing_output(output_path)
    settings = get_settings()
    moderate = settings.risk_moderate_threshold if moderate is None else moderate
    high = settings.risk_high_threshold if high is None else high
    fmt = detect_format(input_path) if input_format == "auto" else input_format
    df = read_dataset(spark, input_path, fmt)
    check_input(df, model)
    if row_id:
        df = df.withColumn(row_id, F.monotonically_increasing_id())
    current = df.rdd.getNumPartitions()
    target = partitions or max(current, 2 * spark.sparkContext.defaultParallelism)
    if target != current:
        df = df.repartition(target)

    started = time.perf_counter()
    sc = spark.sparkContext
    counters = (sc.accumulator(0), sc.accumulator(0), sc.accumulator(0))
    with tempfile.TemporaryDirectory(prefix="vitalcheck-batch-") as workdir:
        bundle, tag = ship_model(spark, model, model_tag, Path(workdir))
        job = ExecutorJob(model=model, bundle=bundle, tag=tag, moderate=moderate, high=high, text_input=fmt == "csv")
        scored = df.mapInPandas(partial(score_partition, job, counters), output_schema(df, model))
        writer = scored.write.mode("overwrite" if overwrite else "errorifexists")
        out_fmt = (
            output_format if output_format != "auto" else ("csv" if output_path.lower().endswith(".csv") else "parquet")
        )
        if out_fmt == "csv":
            writer.options(header=True, escape='"').csv(output_path)
        else:
            writer.parquet(output_path)
    rows, refused, loads = (c.value for c in counters)
    return BatchSummary(tag, output_path, rows, refused, loads, target, time.perf_counter() - started)
