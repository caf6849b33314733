"""Calibration metrics, reliability diagram and logistic recalibration (vitalcheck.training.calibration)."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from scipy.special import expit, logit, softmax
from sklearn.linear_model import LogisticRegression

from vitalcheck.training.calibration import (
    binary_calibration,
    expected_calibration_error,
    fit_logit_recalibration,
    multiclass_calibration,
    recalibration_helps,
    reliability_diagram_png,
)


def _calibrated(seed: int, n: int = 1000, scale: float = 1.5) -> tuple[np.ndarray, np.ndarray]:
    """(true log-odds z, y ~ Bernoulli(expit(z)))."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, scale, n)
    return z, rng.binomial(1, expit(z))


def _inside(value: float, ci: list[float]) -> bool:
    return ci[0] <= value <= ci[1]


def test_calibrated_predictions_give_slope_1_and_intercept_0_intervals():
    # Across independent data sets the 95 % intervals should contain the true values most of the time.
    hits = []
    for seed in range(20):
        z, y = _calibrated(seed)
        r = binary_calibration(y, expit(z), n_boot=300, seed=seed)
        assert r["calibration_slope_ci95"][0] < r["calibration_slope"] < r["calibration_slope_ci95"][1]
        assert r["slope_ci_contains_1"] == _inside(1.0, r["calibration_slope_ci95"])
        hits.append(r["slope_ci_contains_1"] and _inside(0.0, r["calibration_intercept_ci95"]))
    assert np.mean(hits) >= 0.8


def test_result_is_json_ready_and_complete():
    z, y = _calibrated(0, n=300)
    r = binary_calibration(y, expit(z), n_boot=50)
    assert json.loads(json.dumps(r)) == r
    assert r["n"] == 300 and r["n_boot"] == 50 and r["n_boot_used"] == 50
    assert r["brier_score"] == pytest.approx(np.mean((expit(z) - y) ** 2))
    assert binary_calibration(y, expit(z), n_boot=50) == r  # seeded


def test_overconfident_predictions_give_slope_one_half():
    z, y = _calibrated(3, n=2000)
    r = binary_calibration(y, expit(2 * z), n_boot=500)
    assert r["calibration_slope"] == pytest.approx(0.5, abs=0.07)
    assert r["calibration_slope_ci95"][1] < 1.0
    assert not r["slope_ci_contains_1"]
    assert r["expected_calibration_error"] > binary_calibration(y, expit(z), n_boot=10)["expected_calibration_error"]


def test_intercept_detects_underestimated_risk():
    z, y = _calibrated(4, n=2000)
    r = binary_calibration(y, expit(z - 1.0), n_boot=300)
    assert r["calibration_intercept"] == pytest.approx(1.0, abs=0.15)
    assert r["calibration_intercept_ci95"][0] > 0


def test_recalibration_recovers_known_slope_and_intercept():
    rng = np.random.default_rng(5)
    logits = rng.normal(0.0, 2.0, 20_000)
    y = rng.binomial(1, expit(0.6 * logits - 0.4))
    a, b = fit_logit_recalibration(logits, y)
    assert a == pytest.approx(0.6, abs=0.04) and b == pytest.approx(-0.4, abs=0.05)
    ref = LogisticRegression(C=np.inf, tol=1e-12, max_iter=1000).fit(logits[:, None], y)
    assert a == pytest.approx(ref.coef_[0, 0], abs=1e-6) and b == pytest.approx(ref.intercept_[0], abs=1e-6)


def test_recalibration_helps_miscalibrated_but_not_calibrated_logits():
    helps_calibrated = []
    for seed in range(20):
        z, y = _calibrated(100 + seed, n=2000)
        bad = recalibration_helps(2 * z + 0.5, y, seed=seed)
        assert bad["helps"] and bad["log_loss_after"] < bad["log_loss_before"] - 0.01 and bad["folds"] == 5
        good = recalibration_helps(z, y, seed=seed)
        assert abs(good["log_loss_after"] - good["log_loss_before"]) < 0.005
        helps_calibrated.append(good["helps"])
    assert np.mean(helps_calibrated) < 0.5


def test_ece_matches_hand_computation():
    y = [0, 1, 0, 1, 1]
    p = [0.05, 0.15, 0.12, 0.95, 1.0]
    # bins [0, .1): |0 - .05| x 1; [.1, .2): |.5 - .135| x 2; [.9, 1]: |1 - .975| x 2; over n = 5
    assert expected_calibration_error(y, p) == pytest.approx((0.05 + 2 * 0.365 + 2 * 0.025) / 5)
    assert expected_calibration_error(y, p, n_bins=1) == pytest.approx(abs(0.6 - np.mean(p)))


def test_invalid_inputs_raise():
    with pytest.raises(ValueError):
        binary_calibration([0, 0, 0], [0.1, 0.2, 0.3], n_boot=10)
    with pytest.raises(ValueError):
        binary_calibration([0, 1], [0.1, 1.2], n_boot=10)
    with pytest.raises(ValueError):
        expected_calibration_error([0, 2], [0.1, 0.2])
    with pytest.raises(ValueError):
        fit_logit_recalibration([-1.0, 1.0], [0, 1])  # perfectly separated


def test_multiclass_calibration():
    rng = np.random.default_rng(6)
    classes = ["low", "medium", "high"]
    scores = rng.normal(0.0, 1.5, (3000, 3))
    proba = softmax(scores, axis=1)
    labels = np.array([rng.choice(classes, p=row) for row in proba], dtype=object)
    good = multiclass_calibration(labels, proba, classes, n_boot=100)
    overconfident = multiclass_calibration(labels, softmax(3 * scores, axis=1), classes, n_boot=100)
    assert list(good["per_class"]) == classes and good["n"] == 3000
    for c in classes:
        assert good["per_class"][c]["calibration_slope"] == pytest.approx(1.0, abs=0.2)
        assert overconfident["per_class"][c]["calibration_slope"] < 0.6
    assert good["top_label_ece"] < 0.05 < overconfident["top_label_ece"]


def test_multiclass_by_hand():
    # Two distinct probability rows: the logistic fit reproduces their observed frequencies exactly.
    classes = ["a", "b"]
    proba = np.array([[0.8, 0.2]] * 10 + [[0.3, 0.7]] * 10)
    labels = np.array(["a"] * 7 + ["b"] * 3 + ["a"] * 4 + ["b"] * 6, dtype=object)
    r = multiclass_calibration(labels, proba, classes, n_boot=200)
    # confidence .8 with 7/10 correct, .7 with 6/10 correct
    assert r["top_label_ece"] == pytest.approx(0.5 * 0.1 + 0.5 * 0.1)
    b = r["per_class"]["b"]  # P(b) = .2 observed .3, P(b) = .7 observed .6
    assert b["calibration_slope"] == pytest.approx((logit(0.6) - logit(0.3)) / (logit(0.7) - logit(0.2)))
    assert b["expected_calibration_error"] == pytest.approx(0.1)
    assert r["per_class"]["a"]["calibration_slope"] == pytest.approx(b["calibration_slope"])
    with pytest.raises(ValueError):
        multiclass_calibration(labels, proba, ["a", "c"], n_boot=10)


def test_reliability_diagram_is_a_deterministic_png(tmp_path):
    z, y = _calibrated(7, n=500)
    curves = {"calibrated": (y, expit(z)), "over-confident": (y, expit(2 * z))}
    first, second, other = tmp_path / "a.png", tmp_path / "sub" / "b.png", tmp_path / "c.png"
    reliability_diagram_png(first, curves, "Test diagram")
    reliability_diagram_png(second, curves, "Test diagram")
    reliability_diagram_png(other, {"calibrated": (y, expit(z))}, "Test diagram")
    data = first.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert data == second.read_bytes()
    assert data != other.read_bytes()
    assert b"Software" not in data


def test_bootstrap_is_fast():
    z, y = _calibrated(8, n=1000)
    binary_calibration(y, expit(z), n_boot=10)  # warm-up (imports)
    start = time.perf_counter()
    binary_calibration(y, expit(z), n_boot=1000)
    assert time.perf_counter() - start < 2.0
