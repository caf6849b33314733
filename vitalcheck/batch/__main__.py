"""Command line: score a Parquet or CSV data set with a tabular VitalCheck model on Spark.

Usage::

    python -m vitalcheck.batch --model diabetes --input big.parquet --output scored.parquet
        [--master local[2]] [--bentoml-home DIR] [--conf KEY=VALUE ...]

Prints a JSON summary (rows, refused rows, model loads, seconds, rows per second) and exits
0; exits 2 on a usage error, an existing output (without ``--overwrite``), an unreadable
input or one that lacks a column, or a model that is absent or fails its checks.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from vitalcheck.batch.scoring import DEFAULT_BATCH_ROWS
from vitalcheck.catalog import TABULAR_MODELS


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m vitalcheck.batch",
        description="Score a Parquet or CSV data set (source column names) with a tabular VitalCheck model on Spark.",
    )
    parser.add_argument("--model", required=True, choices=sorted(TABULAR_MODELS), help="tabular model to apply")
    parser.add_argument("--input", required=True, help="Parquet or CSV file or directory, in the data set's own format")
    parser.add_argument("--output", required=True, help="directory to write (Parquet; CSV when it ends in .csv)")
    parser.add_argument("--master", help="Spark master URL, e.g. local[2], spark://host:7077, yarn (default: Spark's)")
    parser.add_argument("--bentoml-home", help="BentoML home holding the model store (default: $BENTOML_HOME)")
    parser.add_argument("--model-tag", help="model-store tag (default: vitalcheck-<model>:latest)")
    parser.add_argument("--input-format", choices=["auto", "csv", "parquet"], default="auto")
    parser.add_argument("--output-format", choices=["auto", "csv", "parquet"], default="auto")
    parser.add_argument("--partitions", type=int, help="partitions to score in (default: at least 2 per core)")
    parser.add_argument("--row-id", metavar="COLUMN", help="add an id column that increases in input order")
    parser.add_argument("--batch-rows", type=int, default=DEFAULT_BATCH_ROWS, help="rows per vectorised predict call")
    parser.add_argument("--driver-memory", default="2g", help="spark.driver.memory (default 2g)")
    parser.add_argument(
        "--conf", action="append", default=[], metavar="KEY=VALUE", help="extra Spark setting (repeatable)"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace the output if it exists")
    args = parser.parse_args(argv)
    bad = [c for c in args.conf if "=" not in c]
    if bad:
        parser.error(f"--conf takes KEY=VALUE, got {bad}")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run one scoring job; return the exit status."""
    args = parse_args(argv)
    if args.bentoml_home:
        os.environ["BENTOML_HOME"] = os.path.abspath(args.bentoml_home)  # read lazily by BentoML: before first use
    import bentoml
    from pyspark.errors import AnalysisException

    from vitalcheck.batch.spark import refuse_existing_output, score_dataset, spark_session
    from vitalcheck.cards import ArtifactCheckError
    from vitalcheck.sources import MissingColumnError

    if not args.overwrite:
        try:
            refuse_existing_output(args.output)  # before Spark starts
        except FileExistsError as exc:
            print(f"vitalcheck.batch: {exc}", file=sys.stderr)
            return 2
    conf = dict(c.split("=", 1) for c in args.conf)
    spark = spark_session(args.master, driver_memory=args.driver_memory, batch_rows=args.batch_rows, conf=conf)
    try:
        summary = score_dataset(
            spark,
            args.model,
            args.input,
            args.output,
            model_tag=args.model_tag,
            input_format=args.input_format,
            output_format=args.output_format,
            partitions=args.partitions,
            row_id=args.row_id,
            overwrite=args.overwrite,
        )
    except (
        bentoml.exceptions.NotFound,
        ArtifactCheckError,
        MissingColumnError,
        FileExistsError,
        AnalysisException,
        KeyError,
        ValueError,
    ) as exc:
        print(f"vitalcheck.batch: {exc}", file=sys.stderr)
        return 2
    finally:
        spark.stop()
    print(json.dumps(summary.to_dict()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
