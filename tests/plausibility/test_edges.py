"""Bounded extrapolation: beyond the training data a model answers as at its edge, and sparse tails stay calm.

Rules checked, for every numeric feature of every tabular model (directional or not), on real rows:

1. **Clamping.** An accepted value beyond the training range (1 %, 25 %, 50 % of the way to
   valid_min / valid_max, and the bound itself) gives the same served outputs as the training edge
   (every output: probabilities, years, charges and interval bounds; |difference| <= 1e-9). No
   accepted value can therefore swing the output past what the edge gives: a model has no evidence
   beyond its data, so it must not extrapolate a trend (or an artefact of the last leaf) into it.
2. **Honest warnings.** Each such record gets a warning naming that field ("outside the training
   range"), and a record exactly at the training edge gets none for it (the warning is about the
   value, not raised for everything).
3. **Calm sparse tails.** Between the feature's 5th percentile in the data and the training
   minimum, and between its 95th percentile and the training maximum (where few rows lie, and the
   old models swung wildly), the output's total variation along a fine 41-point sweep, all else
   fixed, stays below :data:`TAIL_VARIATION_BOUND` (probability; regressors: that fraction of the
   target's range in the data). For a monotone feature the total variation is just the net change;
   the part beyond the net change (the to-and-fro, "oscillation") must stay below
   :data:`TAIL_OSCILLATION_BOUND`. Both figures are measured per model and printed at the end.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from tests.plausibility.support import (
    EDGE_TOLERANCE,
    N_ROWS_EDGE,
    N_ROWS_TAIL,
    beyond,
    fine_grid,
    numeric_features,
    report,
    typed,
)
from vitalcheck.catalog import TABULAR_MODELS

BEYOND_FRACTIONS = (0.01, 0.25, 0.5, 1.0)
"""Where the values beyond the training range lie, as fractions of the gap to valid_min / valid_max."""

TAIL_VARIATION_BOUND = 0.25
"""Largest total variation of any served output over a sparse tail: the issue's threshold for a "wild"
change (0.25 probability; regressors: 25 % of the target's range in the data, 13 years / 15,600 USD).
No tighter bound is taken: legitimate monotone effects in the tails come close (measured worst case on
the boosted additive models, 100 rows per model: diabetes 0.179 (bmi, high tail), stroke 0.163
(avg glucose, low tail), life expectancy 0.156 (adult mortality, high tail), insurance 0.147 (bmi,
high tail), heart 0.063, breast cancer 0.015; sleep 0.473 (resting heart rate, high tail: a step of
one beat/min moves P(None) by about 0.47), which this bound reports as a violation)."""

TAIL_OSCILLATION_BOUND = 0.10
"""Largest to-and-fro over a sparse tail (total variation beyond the net change), same units.

Directional features are monotone, so this only concerns features without a stated direction, whose
shape may legitimately bend (a U-shaped risk); what is implausible is a reversal larger than the
noise of a tail leaf (at least min_samples_leaf rows). 0.10 is ten times the direction tolerance and
40 % of the wild threshold. Measured worst case: life expectancy 0.037 (total health expenditure,
high tail), insurance 0.081 (the 90 % interval's upper bound along bmi, high tail, smokers; the
central estimate is monotone there), sleep 0.289 (a class probability rising then falling as another
class's score steps up: resting heart rate, high tail); all other models 0."""

WARNED = re.compile(r"^r\[(\d+)\]\.(\w+): outside the training range")


@pytest.mark.parametrize("name", list(TABULAR_MODELS))
def test_beyond_training_range_answers_as_the_edge_and_warns(tasks, name):
    task = tasks(name)
    rows = task.rows(N_ROWS_EDGE)
    plan, where = [], []  # (feature, [edge, values beyond]), (feature name, side)
    for f in numeric_features(task.spec):
        lo, hi = task.train_range(f.name)
        below, above = beyond(f, lo, hi, BEYOND_FRACTIONS)
        for side, edge, values in (("below", lo, below), ("above", hi, above)):
            if values:  # else the training range reaches the accepted bound
                plan.append((f, task.accept(f, [typed(f, edge), *values])))  # the edge first
                where.append((f.name, side))
    moved, silent, false_alarms = [], [], []
    worst = 0.0
    checks = 0
    for (f, grid), (_, side), out in zip(plan, where, task.sweeps(plan, N_ROWS_EDGE), strict=True):
        gap = np.max(np.abs(out[:, 1:, :] - out[:, :1, :]), axis=(1, 2))  # per record
        worst = max(worst, float(gap.max()))
        moved += [(int(i), f.name, side, float(gap[i])) for i in np.flatnonzero(gap > EDGE_TOLERANCE)]
        checks += len(rows) * (len(grid) - 1)
        records = [{**row, f.name: v} for row in rows for v in grid]
        warned = {
            int(m.group(1))
            for per_record in task.predictor.warnings(task.predictor.explained(records), "r")
            for m in map(WARNED.match, per_record)
            if m and m.group(2) == f.name
        }
        for i in range(len(rows)):
            at = i * len(grid)
            if at in warned:
                false_alarms.append((i, f.name, side))
            silent += [(i, f.name, side) for k in range(at + 1, at + len(grid)) if k not in warned]
    sides = len(plan)
    report(
        "beyond the training range",
        f"{name}: {checks} values beyond an edge ({sides} feature sides x {len(rows)} rows), "
        f"largest |output - edge output| {worst:.3g}, unwarned {len(silent)}, warned at the edge {len(false_alarms)}",
    )
    assert not moved, (
        f"{name}: {len(moved)} sweeps answer differently beyond the training range than at its edge "
        f"(record index, feature, side, largest difference): {moved[:20]}"
    )
    assert not silent, f"{name}: {len(silent)} records beyond the training range without a warning: {silent[:20]}"
    assert not false_alarms, f"{name}: a value at the training edge is warned about: {false_alarms[:20]}"


@pytest.mark.parametrize("name", list(TABULAR_MODELS))
def test_sparse_tails_do_not_oscillate(tasks, name):
    task = tasks(name)
    plan, where = [], []  # (feature, fine grid), (feature name, tail)
    for f in numeric_features(task.spec):
        lo, hi = task.train_range(f.name)
        present = task.X[f.name].dropna().astype(float)
        p05, p95 = float(present.quantile(0.05)), float(present.quantile(0.95))
        for tail, values in (("low", fine_grid(f, lo, p05)), ("high", fine_grid(f, p95, hi))):
            if len(values) > 1:
                plan.append((f, values))
                where.append((f.name, tail))
    too_wild, oscillating = [], []
    worst_tv, worst_tv_at = 0.0, None
    worst_osc, worst_osc_at = 0.0, None
    sweeps = 0
    for (fname, tail), out in zip(where, task.sweeps(plan, N_ROWS_TAIL), strict=True):
        along = out / task.target_range  # (rows, points, outputs)
        tv = np.abs(np.diff(along, axis=1)).sum(axis=1)  # (rows, outputs)
        oscillation = (tv - np.abs(along[:, -1] - along[:, 0])).max(axis=1)
        tv = tv.max(axis=1)
        sweeps += len(tv)
        i, j = int(tv.argmax()), int(oscillation.argmax())
        if tv[i] > worst_tv:
            worst_tv, worst_tv_at = float(tv[i]), (i, fname, tail)
        if oscillation[j] > worst_osc:
            worst_osc, worst_osc_at = float(oscillation[j]), (j, fname, tail)
        too_wild += [(int(k), fname, tail, round(float(tv[k]), 4)) for k in np.flatnonzero(tv > TAIL_VARIATION_BOUND)]
        oscillating += [
            (int(k), fname, tail, round(float(oscillation[k]), 4))
            for k in np.flatnonzero(oscillation > TAIL_OSCILLATION_BOUND)
        ]
    unit = "probability" if task.is_classifier else "of the target range"
    report(
        "sparse-tail total variation",
        f"{name}: {sweeps} tail sweeps; worst total variation {worst_tv:.4f} {unit} at "
        f"{worst_tv_at}; worst oscillation (beyond the net change) {worst_osc:.4f} at {worst_osc_at}",
    )
    assert not (too_wild or oscillating), (
        f"{name}: {len(too_wild)} tail sweeps vary by more than {TAIL_VARIATION_BOUND} ({unit}) "
        f"(record index, feature, tail, total variation): {too_wild[:20]}; "
        f"{len(oscillating)} go to and fro by more than {TAIL_OSCILLATION_BOUND} "
        f"(record index, feature, tail, variation beyond the net change): {oscillating[:20]}"
    )
