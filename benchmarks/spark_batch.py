"""Batch scoring throughput: Spark local mode against in-process scoring on one core.

``python -m benchmarks.spark_batch [--rows 1000000] [--model diabetes] [--master local[2]]``
(or ``make spark-bench``):

1. a private model store (``BENTOML_HOME`` in a temporary folder) filled by ``import_models.py``;
2. ``--rows`` rows resampled (with replacement, fixed seed) from the model's shared file, with a
   ``row_id`` column, written as one Parquet file in the data set's own format;
3. in-process: this process, one thread (``OMP_NUM_THREADS=1``), reads the Parquet file, scores
   it with :func:`vitalcheck.batch.score_pandas` (batches of 10,000 rows, as a Spark task) and
   writes the scored rows as Parquet;
4. Spark: :func:`vitalcheck.batch.spark.score_dataset` on ``--master`` (default ``local[2]``):
   read, ship the model, score, write. Session start-up is timed apart;
5. both outputs are compared row for row (probabilities within 1e-9, same risk levels);
6. the figures go to stdout and to ``benchmarks/results/spark_batch.json``.

Besides wall time, CPU time is counted (this process's, plus that of every process it
started: the Spark JVM, its Python daemon and workers, from ``/proc``), so that rows per
CPU-second compare the two paths even when other work shares the cores. The load average
before and after is recorded: on a shared machine it says how far wall times can be trusted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_variable] = "1"  # in-process scoring on one core
os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")


def descendants_cpu_seconds(root: int | None = None) -> float:
    """User + system CPU seconds of the live descendants of ``root`` (default: this process), reaped children included."""
    root = os.getpid() if root is None else root
    ticks = os.sysconf("SC_CLK_TCK")
    parents, cpu = {}, {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(entry.name)
        parents[pid] = int(fields[1])
        cpu[pid] = sum(int(f) for f in fields[11:15]) / ticks  # utime, stime, cutime, cstime
    total = 0.0
    for pid in cpu:
        ancestor = parents.get(pid)
        while ancestor and ancestor != root:
            ancestor = parents.get(ancestor)
        if ancestor == root:
            total += cpu[pid]
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--model", default="diabetes")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "spark_batch.json")
    parser.add_argument("--skip-in-process", action="store_true", help="time Spark only")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="vitalcheck-spark-bench-"))
    os.environ["BENTOML_HOME"] = str(work / "bentoml")  # before BentoML first touches a store
    sys.path.insert(0, str(ROOT))
    import bentoml
    import numpy as np
    import pandas as pd

    import import_models
    from vitalcheck import sources
    from vitalcheck.batch import score_pandas
    from vitalcheck.batch.spark import score_dataset, spark_session
    from vitalcheck.catalog import TABULAR_MODELS
    from vitalcheck.predictors.tabular import TabularPredictor
    from vitalcheck.settings import get_settings
    from vitalcheck.training import loaders

    settings = get_settings()
    thresholds = {"moderate": settings.risk_moderate_threshold, "high": settings.risk_high_threshold}
    result: dict = {
        "model": args.model,
        "rows": args.rows,
        "master": args.master,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "load_average_before": os.getloadavg(),
    }
    assert import_models.main([]) == 0

    source = sources.read_source(loaders.data_file(args.model, settings.data_dir))
    raw = source.sample(args.rows, replace=True, random_state=42).reset_index(drop=True)
    raw.insert(0, "row_id", np.arange(args.rows))
    data = work / "input.parquet"
    raw.to_parquet(data, index=False)
    del raw
    print(f"{args.rows} {args.model} rows in {data} ({data.stat().st_size / 1e6:.1f} MB)", flush=True)

    if not args.skip_in_process:
        stored = bentoml.models.get(f"{TABULAR_MODELS[args.model].store_name}:latest")
        started, cpu_started = time.perf_counter(), time.process_time()
        predictor = TabularPredictor.load(TABULAR_MODELS[args.model], Path(stored.path), str(stored.tag))
        frame = sources.read_source(data)
        scored = score_pandas(predictor, frame, **thresholds)
        scored.to_parquet(work / "in_process.parquet", index=False)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        result["in_process"] = {
            "seconds": round(seconds, 1),
            "rows_per_second": round(args.rows / seconds, 1),
            "cpu_seconds": round(cpu, 1),
            "rows_per_cpu_second": round(args.rows / cpu, 1),
        }
        print(f"in-process, one core: {seconds:.1f} s, {args.rows / seconds:.0f} rows/s, {cpu:.0f} CPU s", flush=True)
        del frame, scored

    started = time.perf_counter()
    spark = spark_session(args.master, driver_memory="2g", conf={"spark.ui.enabled": "false"})
    spark.range(1).count()
    startup = time.perf_counter() - started
    cpu_started = time.process_time() + descendants_cpu_seconds()
    try:
        summary = score_dataset(spark, args.model, str(data), str(work / "spark.parquet"))
        cpu = time.process_time() + descendants_cpu_seconds() - cpu_started
    finally:
        spark.stop()
    assert summary.rows == args.rows and summary.refused == 0
    result["spark"] = {
        "session_start_seconds": round(startup, 1),
        "job_seconds": round(summary.seconds, 1),
        "rows_per_second": round(args.rows / summary.seconds, 1),
        "rows_per_second_with_start": round(args.rows / (summary.seconds + startup), 1),
        "cpu_seconds": round(cpu, 1),
        "rows_per_cpu_second": round(args.rows / cpu, 1),
        "partitions": summary.partitions,
        "model_loads": summary.model_loads,
    }
    print(
        f"Spark {args.master}: session {startup:.1f} s, job {summary.seconds:.1f} s, "
        f"{args.rows / summary.seconds:.0f} rows/s, {cpu:.0f} CPU s ({summary.model_loads} model loads)",
        flush=True,
    )

    if not args.skip_in_process:
        key = {"probability", "risk_level"} & {c for c in pd.read_parquet(work / "spark.parquet").columns}
        columns = ["row_id", *sorted(key)] if key else ["row_id"]
        a = pd.read_parquet(work / "spark.parquet", columns=columns).sort_values("row_id").reset_index(drop=True)
        b = pd.read_parquet(work / "in_process.parquet", columns=columns).sort_values("row_id").reset_index(drop=True)
        if "probability" in key:
            assert np.allclose(a["probability"], b["probability"], rtol=0, atol=1e-9)
            assert (a["risk_level"] == b["risk_level"]).all()
        result["same_answers"] = True
        result["speed_up"] = round(result["spark"]["rows_per_second"] / result["in_process"]["rows_per_second"], 2)
        print(f"same answers row for row; Spark job / in-process: {result['speed_up']}x", flush=True)

    result["load_average_after"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))
    shutil.rmtree(work, ignore_errors=True)  # kept when a step fails, for a look
    return 0


if __name__ == "__main__":
    sys.exit(main())
