"""Calibration and out-of-distribution facts: each served card states them, and they are plausible.

Rules checked, on the cards the service loaded (``predictor.card.extra``):

* **Calibration** (every classifier; sleep per class, one-vs-rest): the test-split report has a
  calibration slope (coefficient of logit(p) in a logistic recalibration; Cox 1958, Van Calster et
  al. 2016) with a 95 % bootstrap interval that is ordered and holds the estimate, an expected
  calibration error and a Brier score. Plausible means: the slope is positive (higher predicted risk
  means higher observed risk), the ECE lies in [0, :data:`MAX_ECE`] and the Brier score beats the
  no-information forecast (binary: the card's own prevalence baseline; a class of sleep: 0.25, the
  score of always saying 0.5). The binary report's Brier score equals the card's test metric.
* **Out of distribution** (every model): the share of test rows flagged unusual (above the training
  rows' 99th percentile of distance) is below 0.05 (held-out rows from the same population should
  be flagged about 1 % of the time), and rows whose columns were shuffled independently (an
  impossible mix of real values) are flagged more often than the test rows for at least 5 of the 7
  models (the detector must notice broken correlations, not just count).
"""

from __future__ import annotations

import math

import pytest

from tests.plausibility.support import report
from vitalcheck.catalog import TABULAR_MODELS

CLASSIFIERS = [n for n, s in TABULAR_MODELS.items() if s.kind == "classifier"]
MAX_ECE = 0.15
"""Largest plausible 10-bin ECE on a test split of 79-1086 rows (the largest served is about 0.11)."""
MAX_TEST_OOD_RATE = 0.05
MIN_MODELS_SHIFT_DETECTED = 5


def _calibration_problems(facts, baseline_brier):
    problems = []
    if facts.get("calibration_slope") is None:  # a class the test split separates perfectly: no slope to fit
        if not facts.get("not_estimable"):
            return ["no calibration slope and no reason given"]
        if not 0.0 <= facts["brier_score"] < baseline_brier:
            return [f"Brier {facts['brier_score']:.3g} does not beat the no-information {baseline_brier:.3g}"]
        return []
    keys = ("calibration_slope", "calibration_slope_ci95", "expected_calibration_error", "brier_score")
    missing = [k for k in keys if k not in facts]
    if missing:
        return [f"missing {missing}"]
    slope, (lo, hi) = facts["calibration_slope"], facts["calibration_slope_ci95"]
    if not all(math.isfinite(v) for v in (slope, lo, hi)):
        problems.append("slope or its interval is not finite")
    elif not lo <= slope <= hi:
        problems.append(f"the slope {slope:.3g} lies outside its 95 % interval [{lo:.3g}, {hi:.3g}]")
    if not slope > 0:
        problems.append(f"calibration slope {slope:.3g} is not positive")
    if not 0.0 <= facts["expected_calibration_error"] <= MAX_ECE:
        problems.append(f"ECE {facts['expected_calibration_error']:.3g} outside [0, {MAX_ECE}]")
    if not 0.0 <= facts["brier_score"] < baseline_brier:
        problems.append(f"Brier {facts['brier_score']:.3g} does not beat the no-information {baseline_brier:.3g}")
    return problems


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_calibration_facts(svc, name):
    card = svc.api.registry.tabular[name].card
    assert "calibration" in card.extra, f"{name}: the card has no calibration facts"
    split = card.extra["calibration"]["test_split"]
    spec = TABULAR_MODELS[name]
    if len(spec.classes) == 2:
        per_class = {spec.classes[1]: split}
        baselines = {spec.classes[1]: card.baseline_metrics["brier_score"]}
        assert split["brier_score"] == pytest.approx(card.metrics["brier_score"], rel=1e-9), name
    else:
        assert set(split.get("per_class", {})) == set(spec.classes), f"{name}: per-class calibration missing"
        assert 0.0 <= split["top_label_ece"] <= MAX_ECE, f"{name}: top-label ECE {split['top_label_ece']:.3g}"
        per_class = split["per_class"]
        baselines = dict.fromkeys(spec.classes, 0.25)
    problems = {}
    for label, facts in per_class.items():
        report(
            "calibration (test split)",
            f"{name}/{label}: slope {facts.get('calibration_slope') or float('nan'):.3g} "
            f"95% CI {[round(v, 3) for v in facts.get('calibration_slope_ci95') or []]}, "
            f"ECE {facts.get('expected_calibration_error', float('nan')):.3g}, "
            f"Brier {facts.get('brier_score', float('nan')):.3g}",
        )
        found = _calibration_problems(facts, baselines[label])
        if found:
            problems[label] = found
    assert not problems, f"{name}: implausible calibration facts: {problems}"


def _ood(svc, name):
    card = svc.api.registry.tabular[name].card
    assert "out_of_distribution" in card.extra, f"{name}: the card has no out-of-distribution facts"
    return card.extra["out_of_distribution"]


@pytest.mark.parametrize("name", list(TABULAR_MODELS))
def test_test_rows_are_rarely_flagged_unusual(svc, name):
    facts = _ood(svc, name)
    report(
        "out of distribution",
        f"{name}: test_rate {facts['test_rate']:.4f}, shifted_rate {facts['shifted_rate']:.4f}",
    )
    assert 0.0 <= facts["test_rate"] < MAX_TEST_OOD_RATE, f"{name}: test_rate {facts['test_rate']:.4f}"


def test_shuffled_rows_are_flagged_more_often(svc):
    rates = {name: (_ood(svc, name)["test_rate"], _ood(svc, name)["shifted_rate"]) for name in TABULAR_MODELS}
    detected = [name for name, (test, shifted) in rates.items() if shifted > test]
    assert len(detected) >= MIN_MODELS_SHIFT_DETECTED, (
        f"shifted rows flagged more often than test rows for only {len(detected)} of {len(rates)} models "
        f"(name: test_rate, shifted_rate): {rates}"
    )
