"""Batch scoring on Spark (local mode): the service's answers row for row, the model loaded once per worker.

Slow (Spark start-up, a Python worker per core importing scikit-learn): run by ``make spark-test``.
Needs the ``spark`` extra (pyspark) and Java 17+; skipped otherwise.
"""

import json
import os
import shutil
import subprocess
import sys

import pandas as pd
import pytest

from tests.batch.conftest import assert_rows_equal, service_answers
from vitalcheck import sources
from vitalcheck.catalog import TABULAR_MODELS
from vitalcheck.training import loaders

pytest.importorskip("pyspark")
if shutil.which("java") is None:
    pytest.skip("Spark needs Java (17+)", allow_module_level=True)

pytestmark = pytest.mark.slow

ROWS = 100_000


@pytest.fixture(scope="module")
def spark(model_store):
    from vitalcheck.batch.spark import spark_session

    session = spark_session("local[2]", driver_memory="2g", conf={"spark.ui.enabled": "false"})
    yield session
    session.stop()


@pytest.fixture(scope="module")
def api(svc):
    return svc.api


def read_scored(path) -> pd.DataFrame:
    frame = pd.read_parquet(path) if not str(path).endswith(".csv") else _read_csv_dir(path)
    order = frame["row_id"].astype("int64").argsort(kind="stable")
    return frame.iloc[order].reset_index(drop=True)


def _read_csv_dir(path) -> pd.DataFrame:
    parts = sorted(p for p in path.iterdir() if p.suffix == ".csv")
    return pd.concat([pd.read_csv(p, dtype=str, keep_default_na=False, na_values=[""]) for p in parts])


def test_100k_rows_on_local2_equal_the_service_row_for_row(spark, api, data_dir, tmp_path):
    """100,000 rows resampled from the shared diabetes file, as Parquet in the source format."""
    from vitalcheck.batch.spark import score_dataset

    source = sources.read_source(loaders.data_file("diabetes", data_dir))
    raw = source.sample(ROWS, replace=True, random_state=7).reset_index(drop=True)
    raw.insert(0, "row_id", range(ROWS))
    raw.to_parquet(tmp_path / "big.parquet", index=False)

    summary = score_dataset(spark, "diabetes", str(tmp_path / "big.parquet"), str(tmp_path / "scored.parquet"))

    assert (summary.rows, summary.refused, summary.partitions) == (ROWS, 0, 4)
    assert 1 <= summary.model_loads <= 2, "the model is loaded once per Python worker, not per partition"
    assert summary.model_tag == str(api.registry.tabular["diabetes"].info.tag)
    print(f"\n100k rows on local[2]: {summary.to_dict()}")
    scored = read_scored(tmp_path / "scored.parquet")
    pd.testing.assert_frame_equal(scored[raw.columns], raw, check_dtype=False)  # input columns pass through
    assert_rows_equal(scored, service_answers(api, "diabetes", raw.drop(columns="row_id")))

    # contributors as an array of structs in Spark SQL, as docs/SPARK.md shows
    from pyspark.sql import functions as F

    schema = "array<struct<feature:string,value:string,contribution:double>>"
    first = (
        spark.read.parquet(str(tmp_path / "scored.parquet"))
        .where(F.col("row_id") == 0)
        .select(F.from_json("contributors", schema).alias("c"))
        .first()
    )
    assert [c.feature for c in first.c] == [c["feature"] for c in json.loads(scored.loc[0, "contributors"])]


def test_csv_with_codes_and_bad_rows_to_csv(spark, api, data_dir, tmp_path):
    """Sleep (blood-pressure split, three classes) from CSV text: bad rows get an error, the rest the service's answers."""
    from vitalcheck.batch.spark import score_dataset

    text = pd.read_csv(loaders.data_file("sleep", data_dir), dtype=str, keep_default_na=False, na_values=[""])
    text.loc[5, "Blood Pressure"] = "high"  # not 'sys/dia'
    text.loc[8, "Age"] = "7"  # below the valid range
    text.to_csv(tmp_path / "sleep.csv", index=False)

    summary = score_dataset(
        spark, "sleep", str(tmp_path / "sleep.csv"), str(tmp_path / "out.csv"), row_id="row_id", partitions=3
    )

    assert (summary.rows, summary.refused, summary.partitions) == (len(text), 2, 3)
    scored = read_scored(tmp_path / "out.csv")
    errors = scored["error"].dropna()
    assert list(errors.index) == [5, 8]
    assert json.loads(errors[5])[0]["type"] == "malformed_row"
    assert json.loads(errors[8]) == [
        {"type": "greater_than_equal", "loc": ["age_years"], "msg": "Input should be greater than or equal to 18"}
    ]
    good = scored.drop(index=[5, 8]).reset_index(drop=True)
    for column in ("probability_none", "probability_insomnia", "probability_sleep_apnea"):
        good[column] = good[column].astype(float)
    expected = service_answers(api, "sleep", sources.read_source(tmp_path / "sleep.csv").drop(index=[5, 8]))
    assert_rows_equal(good, expected)


def test_missing_column_is_refused_before_the_job(spark, data_dir, tmp_path):
    from vitalcheck.batch.spark import score_dataset

    raw = sources.read_source(loaders.data_file("insurance", data_dir)).drop(columns="region")
    raw.to_parquet(tmp_path / "in.parquet", index=False)
    with pytest.raises(sources.MissingColumnError, match="region"):
        score_dataset(spark, "insurance", str(tmp_path / "in.parquet"), str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_command_line(model_store, data_dir, tmp_path):
    """``python -m vitalcheck.batch`` end to end, on one core, with the model store named by --bentoml-home."""
    env = {**os.environ, "BENTOML_HOME": str(tmp_path / "empty-home")}
    out = tmp_path / "scored.parquet"
    command = [sys.executable, "-m", "vitalcheck.batch", "--model", "insurance", "--master", "local[1]"]
    command += ["--input", str(loaders.data_file("insurance", data_dir)), "--output", str(out)]
    command += ["--bentoml-home", str(model_store), "--driver-memory", "1g"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    n = len(sources.read_source(loaders.data_file("insurance", data_dir)))
    assert summary["rows"] == n and summary["refused"] == 0 and summary["model_loads"] == 1
    scored = pd.read_parquet(out)
    assert len(scored) == n and (scored["lower_usd"] <= scored["charges_usd"]).all()
    assert scored["model_tag"].str.startswith(TABULAR_MODELS["insurance"].store_name + ":").all()

    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)  # refused before Spark starts
    assert again.returncode == 2 and "already exists" in again.stderr, again.stderr[-2000:]
