"""The seven artifacts: contract (columns, classes, errors), cards, reproducible test metrics, golden outputs."""

from __future__ import annotations

import json
import subprocess
import sys

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline

from vitalcheck.cards import ModelCard, load_card, sha256_file, verify_artifact
from vitalcheck.catalog import TABULAR_MODELS
from vitalcheck.training import evaluation, loaders, splits, tabular
from vitalcheck.training.__main__ import main

NAMES = list(TABULAR_MODELS)

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def loaded(tabular_artifacts):
    return {name: evaluation.load_artifact(name, tabular_artifacts) for name in NAMES}


def pipelines(model):
    return list(model) if isinstance(model, tuple) else [model]


def raw_frame(spec, card, n=1):
    """Rows of raw inputs rebuilt from the card's JSON golden inputs."""
    return pd.DataFrame.from_records([g["input"] for g in card.golden[:n]], columns=spec.feature_names)


@pytest.mark.parametrize("name", NAMES)
def test_card_validates_and_matches_artifact(tabular_artifacts, name):
    spec = TABULAR_MODELS[name]
    card = load_card(tabular_artifacts / spec.card_file)
    assert isinstance(card, ModelCard)
    assert card.sha256 == sha256_file(tabular_artifacts / spec.artifact)
    verify_artifact(tabular_artifacts / spec.artifact, tabular_artifacts / spec.card_file)
    assert card.name == name and card.artifact == spec.artifact and card.framework == "scikit-learn"
    assert {"scikit-learn", "numpy", "pandas", "scipy", "joblib", "python"} <= set(card.framework_versions)
    assert [f.name for f in card.features] == spec.feature_names
    assert len(card.candidates) >= 2 and len(card.golden) == 5
    assert card.dataset.rows_train + card.dataset.rows_test == card.dataset.rows_total
    assert card.dataset.licence != "unknown" and "target_notes" in card.extra
    for feat in card.features:
        assert feat.baseline is not None
        if feat.type in ("number", "integer"):
            assert feat.train_min <= feat.baseline <= feat.train_max
        if feat.type == "category":
            assert feat.baseline in feat.train_categories and set(feat.train_categories) <= set(feat.categories)
    if spec.kind == "classifier":
        assert card.output["classes"] == list(spec.classes)
    expected = {
        "classifier": {"roc_auc", "brier_score", "balanced_accuracy"},
        "regressor": {"rmse", "mae", "r2"},
        "interval_regressor": {"rmse", "mae", "r2", "interval_coverage", "interval_mean_width_usd"},
    }[spec.kind]
    assert expected <= set(card.metrics) and set(card.metrics) == set(card.baseline_metrics)


@pytest.mark.parametrize("name", NAMES)
def test_artifact_is_a_pipeline_scoring_raw_rows(loaded, name):
    spec = TABULAR_MODELS[name]
    model, card = loaded[name]
    if spec.kind == "interval_regressor":
        assert isinstance(model, tuple) and len(model) == 3
    for pipe in pipelines(model):
        inner = getattr(pipe, "regressor", pipe)  # the interval bounds wrap a pipeline
        assert isinstance(inner, Pipeline) and isinstance(inner.steps[0][1], ColumnTransformer)
    row = raw_frame(spec, card)
    if spec.kind == "classifier":
        assert list(model.classes_) == list(spec.classes)
        proba = model.predict_proba(row)
        assert proba.shape == (1, len(spec.classes))
        assert np.isclose(proba.sum(), 1.0) and (proba >= 0).all()
    else:
        for pipe in pipelines(model):
            value = pipe.predict(row)
            assert value.shape == (1,) and np.isfinite(value).all()


@pytest.mark.parametrize("name", NAMES)
def test_nullable_features_accept_missing_values(loaded, name):
    spec = TABULAR_MODELS[name]
    model, card = loaded[name]
    row = raw_frame(spec, card).astype(object)
    for feat in spec.features:
        if feat.nullable:
            row.loc[0, feat.name] = None
    out = evaluation.predict_outputs(spec, model, row)
    assert np.isfinite(out).all()


@pytest.mark.parametrize("name", NAMES)
def test_missing_column_is_rejected_by_name(loaded, name):
    spec = TABULAR_MODELS[name]
    model, card = loaded[name]
    dropped = spec.feature_names[1]
    row = raw_frame(spec, card).drop(columns=[dropped])
    for pipe in pipelines(model):
        with pytest.raises(ValueError, match=dropped):
            (pipe.predict_proba if spec.kind == "classifier" else pipe.predict)(row)


@pytest.mark.parametrize("name", NAMES)
def test_evaluate_on_test_split_reproduces_card(data_dir, loaded, name):
    model, card = loaded[name]
    X, y, meta = loaders.load_with_meta(name, loaders.data_file(name, data_dir))
    train, test = splits.split(name, X, y, meta)
    assert len(np.intersect1d(train, test)) == 0 and len(train) + len(test) == len(X)
    assert len(test) == card.dataset.rows_test
    assert tabular._hash_positions(test) == card.extra["test_positions_sha256"]
    metrics = evaluation.evaluate_frame(name, model, card, X.iloc[test], y.iloc[test])
    assert metrics.keys() == card.metrics.keys()
    for key, value in card.metrics.items():
        assert metrics[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key


@pytest.mark.parametrize("name", NAMES)
def test_golden_outputs_reproduce(loaded, name):
    spec = TABULAR_MODELS[name]
    model, card = loaded[name]
    frame = pd.DataFrame.from_records([g["input"] for g in card.golden], columns=spec.feature_names)
    expected = np.asarray([g["output"] for g in card.golden], dtype=float)
    got = evaluation.predict_outputs(spec, model, frame).reshape(expected.shape)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    # the same records as the service builds them: numbers and booleans as float64
    as_float = frame.copy()
    for feat in spec.features:
        if feat.type != "category":
            as_float[feat.name] = pd.to_numeric(frame[feat.name].astype(object)).astype("float64")
    np.testing.assert_allclose(
        evaluation.predict_outputs(spec, model, as_float).reshape(expected.shape), expected, rtol=0, atol=1e-6
    )


def test_grouped_splits_keep_groups_on_one_side(data_dir):
    X, y, meta = loaders.load_with_meta("sleep", loaders.data_file("sleep", data_dir))
    train, test = splits.split("sleep", X, y, meta)
    groups = splits.feature_groups(X)
    assert not set(groups[train]) & set(groups[test])
    assert len(set(groups)) < len(X)  # duplicates exist, so the grouping matters
    X, y, meta = loaders.load_with_meta("life_expectancy", loaders.data_file("life_expectancy", data_dir))
    train, test = splits.split("life_expectancy", X, y, meta)
    countries = meta["country"].to_numpy()
    assert not set(countries[train]) & set(countries[test])


def test_insurance_interval_is_ordered_and_calibrated(loaded, data_dir):
    spec = TABULAR_MODELS["insurance"]
    model, card = loaded["insurance"]
    X, y, meta = loaders.load_with_meta("insurance", loaders.data_file("insurance", data_dir))
    _, test = splits.split("insurance", X, y, meta)
    out = evaluation.predict_outputs(spec, model, X.iloc[test])
    assert (out[:, 1] <= out[:, 0]).all() and (out[:, 0] <= out[:, 2]).all()
    assert card.extra["conformal_level"] == 0.9 and card.extra["rows_calibration"] > 100


def test_cli_evaluate_on_new_file_in_source_format(tabular_artifacts, data_dir, tmp_path, capsys):
    """``evaluate`` parses any file in the shared format: here, the test rows of the source file, copied verbatim."""
    for name in NAMES:
        path = loaders.data_file(name, data_dir)
        X, y, meta = loaders.load_with_meta(name, path)
        _, test = splits.split(name, X, y, meta)
        lines = path.read_text(encoding="utf-8").splitlines()
        subset = tmp_path / f"{name}.csv"
        subset.write_text("\n".join([lines[0]] + [lines[1 + i] for i in X.index[test]]) + "\n", encoding="utf-8")
        assert (
            main(["evaluate", "--model", name, "--data", str(subset), "--artifacts-dir", str(tabular_artifacts)]) == 0
        )
        printed = json.loads(capsys.readouterr().out)
        card = load_card(tabular_artifacts / TABULAR_MODELS[name].card_file)
        assert printed == pytest.approx(card.metrics, rel=1e-9), name


def test_cli_evaluate_refuses_a_tampered_artifact(tabular_artifacts, tmp_path, data_dir, capsys):
    spec = TABULAR_MODELS["diabetes"]
    for f in (spec.artifact, spec.card_file):
        (tmp_path / f).write_bytes((tabular_artifacts / f).read_bytes())
    (tmp_path / spec.artifact).write_bytes((tmp_path / spec.artifact).read_bytes() + b"\0")
    code = main(
        [
            "evaluate",
            "--model",
            "diabetes",
            "--data",
            str(loaders.data_file("diabetes", data_dir)),
            "--artifacts-dir",
            str(tmp_path),
        ]
    )
    assert code == 1 and "sha256" in capsys.readouterr().err


def test_artifacts_unpickle_without_training_extras(tabular_artifacts):
    """The service must load the pickles without vitalcheck.training, rich or torch."""
    script = f"""
import sys, importlib.abc
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('rich', 'torch') or name.startswith('vitalcheck.training'):
            raise ImportError('blocked ' + name)
sys.meta_path.insert(0, Block())
import joblib
for artifact in {[s.artifact for s in TABULAR_MODELS.values()]!r}:
    joblib.load({str(tabular_artifacts)!r} + '/' + artifact)
print('ok')
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_model_cards_summary_lists_every_model(tabular_artifacts, tmp_path):
    from vitalcheck.training.model_cards import write_summary

    for spec in TABULAR_MODELS.values():
        (tmp_path / spec.card_file).write_bytes((tabular_artifacts / spec.card_file).read_bytes())
    text = write_summary(tmp_path).read_text()
    for name in NAMES:
        assert f"| {name} |" in text
    assert joblib  # imported for symmetry with the service's loader
