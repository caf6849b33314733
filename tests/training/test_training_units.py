"""Unit tests of the serving-safe estimators, the metrics helpers and the CLI's optional imports."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression

from vitalcheck.estimators import MISSING_CATEGORY, CatalogOrderClassifier, ConformalShift, to_category, to_float
from vitalcheck.training import __main__ as cli
from vitalcheck.training.metrics import best_threshold, classification_metrics, interval_metrics

pytestmark = pytest.mark.usefixtures("one_thread")


def test_to_float_handles_json_values():
    frame = pd.DataFrame(
        {"a": [True, None, False], "b": [1, None, 3.5], "c": pd.array([True, pd.NA, False], dtype="boolean")}
    )
    np.testing.assert_array_equal(to_float(frame), [[1, 1, 1], [np.nan] * 3, [0, 3.5, 0]])


def test_to_category_maps_missing():
    frame = pd.DataFrame({"x": ["a", None, np.nan]})
    assert to_category(frame)[:, 0].tolist() == ["a", MISSING_CATEGORY, MISSING_CATEGORY]


def test_catalog_order_classifier_keeps_catalog_order():
    X = np.array([[0.0], [1.0], [2.0], [3.0], [4.0], [5.0]])
    y = np.array(["None", "None", "Insomnia", "Insomnia", "Sleep Apnea", "Sleep Apnea"], dtype=object)
    clf = CatalogOrderClassifier(LogisticRegression(), classes=("None", "Insomnia", "Sleep Apnea")).fit(X, y)
    assert list(clf.classes_) == ["None", "Insomnia", "Sleep Apnea"]
    proba = clf.predict_proba(X)
    assert proba[0].argmax() == 0 and proba[-1].argmax() == 2
    assert clf.predict(X[:1])[0] == "None"
    assert list(pickle.loads(pickle.dumps(clf)).classes_) == list(clf.classes_)
    with pytest.raises(ValueError, match="unknown"):
        CatalogOrderClassifier(LogisticRegression(), classes=("a", "b")).fit(X[:2], ["a", "unknown"])


def test_conformal_shift():
    reg = LinearRegression().fit([[0.0], [1.0]], [0.0, 1.0])
    assert ConformalShift(reg, -2.5).predict([[1.0]])[0] == pytest.approx(-1.5)


def test_metrics_helpers():
    y = ["n", "n", "p", "p"]
    proba = np.array([[0.9, 0.1], [0.6, 0.4], [0.65, 0.35], [0.2, 0.8]])
    m = classification_metrics(y, proba, ("n", "p"), threshold=0.3, extra=("pr_auc", "positive_recall"))
    assert m["roc_auc"] == pytest.approx(0.75) and m["positive_recall"] == 1.0
    # thresholds 0.225 and 0.5 both give balanced accuracy 0.75; the tie goes to the one closest to 0.5
    assert best_threshold(y, proba[:, 1], ("n", "p")) == 0.5
    assert best_threshold(y, proba[:, 1], ("n", "p"), min_recall=1.0) == pytest.approx(0.225)
    assert interval_metrics([1, 2, 3], [0, 2.5, 2], [2, 3, 4]) == {
        "interval_coverage": pytest.approx(2 / 3),
        "interval_mean_width": 1.5,
    }


def test_optional_modules_are_imported_lazily():
    assert cli._import("vitalcheck.training.not_there", "x", required=False) is None
    with pytest.raises(cli.CLIError, match="not_there"):
        cli._import("vitalcheck.training.not_there", "x", required=True)


def test_cli_trains_one_model(data_dir, tmp_path, capsys):
    assert cli.main(["train", "--only", "diabetes", "--data-dir", str(data_dir), "--out", str(tmp_path)]) == 0
    assert (tmp_path / "diabetes_pipeline.pkl").is_file() and (tmp_path / "diabetes_pipeline.card.json").is_file()
    assert "diabetes" in (tmp_path / "MODEL_CARDS.md").read_text()
    assert "diabetes" in capsys.readouterr().err
