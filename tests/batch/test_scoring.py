"""In-process batch scoring (no Spark): the service's answers, per-row refusals, output columns."""

import json

import numpy as np
import pandas as pd
import pytest

from tests.batch.conftest import assert_rows_equal, service_answers
from vitalcheck import sources
from vitalcheck.batch.scoring import output_columns, score_frame, score_pandas, strip_na_strings
from vitalcheck.catalog import TABULAR_MODELS
from vitalcheck.predictors.tabular import class_column
from vitalcheck.training import loaders


@pytest.fixture(scope="module")
def api(svc):
    return svc.api


def thresholds(settings):
    return {"moderate": settings.risk_moderate_threshold, "high": settings.risk_high_threshold}


@pytest.mark.parametrize("name", list(TABULAR_MODELS))
def test_shared_rows_equal_the_service(api, settings, data_dir, name):
    """Real rows of every data set, scored in batches of 97: the service's answers, row for row."""
    raw = sources.read_source(loaders.data_file(name, data_dir)).sample(300, random_state=1)
    scored = score_pandas(api.registry.tabular[name], raw, batch_rows=97, **thresholds(settings))
    assert list(scored.columns) == [*raw.columns, *(c.name for c in output_columns(TABULAR_MODELS[name]))]
    assert_rows_equal(scored, service_answers(api, name, raw))


def test_text_input_with_missing_value_codes_equals_the_file_reader(api, settings, data_dir, tmp_path):
    """Rows read as text (as Spark reads a CSV) with 'N/A' codes give the answers of the service's file reader."""
    text = pd.read_csv(loaders.data_file("stroke", data_dir), dtype=str, keep_default_na=False, na_values=[""]).head(
        200
    )
    text.loc[[3, 7], "bmi"] = "N/A"
    text.loc[9, "bmi"] = "NaN"
    path = tmp_path / "stroke.csv"
    text.to_csv(path, index=False)
    text = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])  # Spark: every column a string
    predictor = api.registry.tabular["stroke"]
    a = score_frame(predictor, strip_na_strings(text), **thresholds(settings))
    b = score_frame(predictor, sources.read_source(path), **thresholds(settings))
    pd.testing.assert_frame_equal(a, b)
    assert a["warnings"].str.contains("bmi_kg_m2: missing").sum() >= 3


def test_bad_rows_are_refused_one_by_one_without_their_values(api, settings, data_dir):
    raw = sources.read_source(loaders.data_file("diabetes", data_dir)).head(6).astype(object)
    raw.loc[1, "Glucose"] = 987654.321  # above the valid range
    raw.loc[2, "Age"] = None  # missing and not nullable
    raw.loc[4, "BMI"] = "heavy"  # not a number: this batch is parsed row by row
    scored = score_frame(api.registry.tabular["diabetes"], raw, **thresholds(settings))
    errors = {i: json.loads(e) for i, e in scored["error"].dropna().items()}
    assert set(errors) == {1, 2, 4}
    assert errors[1][0]["loc"] == ["glucose_mg_dl"] and errors[1][0]["type"] == "less_than_equal"
    assert errors[2][0]["loc"] == ["age_years"]
    assert errors[4] == [
        {"type": "malformed_column", "loc": ["BMI"], "msg": "holds a value that is not a valid number"}
    ]
    assert "987654" not in scored["error"].str.cat(sep="") and "heavy" not in scored["error"].str.cat(sep="")
    assert scored.loc[[1, 2, 4], "probability"].isna().all() and scored.loc[[1, 2, 4], "risk_level"].isna().all()
    good = raw.drop(index=[1, 2, 4])
    assert_rows_equal(scored.drop(index=[1, 2, 4]).reset_index(drop=True), service_answers(api, "diabetes", good))


def test_missing_source_column_is_a_job_error(api, settings, data_dir):
    raw = sources.read_source(loaders.data_file("insurance", data_dir)).drop(columns=["smoker"])
    with pytest.raises(sources.MissingColumnError) as exc:
        score_frame(api.registry.tabular["insurance"], raw, **thresholds(settings))
    assert exc.value.column == "smoker"


def test_risk_thresholds_are_the_callers(api, data_dir):
    raw = sources.read_source(loaders.data_file("heart", data_dir)).head(50)
    scored = score_frame(api.registry.tabular["heart"], raw, moderate=0.3, high=0.9)
    p = scored["probability"].to_numpy()
    expected = np.where(p >= 0.9, "high", np.where(p >= 0.3, "moderate", "low"))
    assert scored["risk_level"].tolist() == expected.tolist()


def test_output_columns_of_each_kind():
    names = {name: [c.name for c in output_columns(spec)] for name, spec in TABULAR_MODELS.items()}
    tail = ["ood_percentile", "contributors", "warnings", "error", "model_tag"]
    assert names["diabetes"] == ["probability", "risk_level", *tail]
    assert names["sleep"] == [
        "probability_none",
        "probability_insomnia",
        "probability_sleep_apnea",
        "predicted_class",
        *tail,
    ]
    assert names["life_expectancy"] == ["life_expectancy_years", *tail]
    assert names["insurance"] == ["charges_usd", "lower_usd", "upper_usd", "interval_level", *tail]
    assert class_column("Sleep Apnea") == "probability_sleep_apnea"


def test_empty_frame(api, settings):
    raw = pd.DataFrame({c.source_column: [] for c in TABULAR_MODELS["insurance"].features})
    scored = score_pandas(api.registry.tabular["insurance"], raw, **thresholds(settings))
    assert len(scored) == 0 and "charges_usd" in scored.columns
