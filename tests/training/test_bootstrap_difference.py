"""vitalcheck.training.evaluation.bootstrap_difference: the constraint cost reported in the cards."""

import numpy as np
import pandas as pd
import pytest

from vitalcheck.catalog import TABULAR_MODELS
from vitalcheck.training.evaluation import _headline, bootstrap_difference, metrics_from_outputs


def _outputs(name, rng, n):
    spec = TABULAR_MODELS[name]
    if spec.kind == "regressor":
        return rng.normal(70, 8, n), rng.normal(70, 8, n)
    k = len(spec.classes)
    y = pd.Series(rng.choice(spec.classes, n))
    proba = rng.dirichlet(np.ones(k), n)
    return y, proba


@pytest.mark.parametrize("name", ["diabetes", "sleep", "life_expectancy"])
def test_the_fast_headline_is_the_reported_metric(name):
    rng = np.random.default_rng(3)
    y, out = _outputs(name, rng, 300)
    metric = {"diabetes": "roc_auc", "sleep": "macro_f1", "life_expectancy": "rmse"}[name]
    assert _headline(name, np.asarray(y), out) == pytest.approx(metrics_from_outputs(name, y, out)[metric], abs=1e-12)


def test_the_interval_covers_a_real_difference_and_not_zero_for_a_big_one():
    rng = np.random.default_rng(4)
    n = 400
    y = pd.Series(np.where(rng.random(n) < 0.4, "diabetes", "no_diabetes"))
    signal = (y == "diabetes").to_numpy().astype(float)
    good = np.column_stack([1 - signal * 0.6 - 0.2, signal * 0.6 + 0.2]) + rng.normal(0, 0.15, (n, 1)) * [1, -1]
    noise = rng.random(n)
    bad = np.column_stack([1 - noise, noise])
    report = bootstrap_difference("diabetes", y, good, bad, n_boot=300)
    lo, hi = report["ci95"]
    assert lo <= report["difference"] <= hi
    assert lo > 0  # a model with signal against one without: the interval excludes 0
    same = bootstrap_difference("diabetes", y, good, good, n_boot=100)
    assert same["difference"] == 0.0 and same["ci95"] == [0.0, 0.0]
