"""Direction sweeps: each served model follows the medical directions the catalog states, on real rows.

Rule checked (``FeatureSpec.direction``, sources in ``vitalcheck.catalog.DIRECTION_SOURCES``): with
every other input of a real record held fixed, raising a feature whose direction is +1 (glucose,
age, ST depression, tumour size, smoking for insurance...) never lowers the output, and raising one
whose direction is -1 (peak heart rate, adult and under-five mortality, HIV deaths) never raises it.
"Never" allows the issue's tolerance: 0.01 of probability for a classifier (the positive class),
1 % of the target's range in the data for a regressor (life expectancy in years, insurance
charges_usd). The check is against the running extreme, so a slow drift the wrong way over several
grid steps counts, not only a single step.

Each numeric feature is swept over 25 points of its training range, both training edges and two
accepted values beyond each edge (half-way to and at valid_min / valid_max; integers for integer
features); a boolean over False/True.

Category directions (``FeatureSpec.category_directions``; stroke's smoking_status, from the AHA/ASA
primary-prevention guideline): each real record is scored once per category; every category marked
+1 ('smokes', 'formerly smoked') must score at least as high as every category marked -1
('never smoked'), within the same tolerance.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.plausibility.support import N_ROWS_SWEEP, directional_features, report, sweep_grid
from vitalcheck.catalog import TABULAR_MODELS

DIRECTIONAL = [n for n, s in TABULAR_MODELS.items() if directional_features(s)]
WITH_CATEGORY_DIRECTIONS = [n for n, s in TABULAR_MODELS.items() if any(f.category_directions for f in s.features)]


def test_every_binary_and_regression_model_has_directions():
    """Sanity of the parametrisation: only the multiclass sleep model states no direction."""
    assert set(TABULAR_MODELS) - set(DIRECTIONAL) <= {"sleep"}


@pytest.mark.parametrize("name", DIRECTIONAL)
def test_direction_sweeps(tasks, name):
    task = tasks(name)
    tolerance = task.tolerance
    violations = []
    worst = 0.0
    sweeps = points = 0
    features = directional_features(task.spec)
    plan = [(f, sweep_grid(f, *(task.train_range(f.name) if f.type != "boolean" else (0.0, 1.0)))) for f in features]
    for f, out in zip(features, task.sweeps(plan, N_ROWS_SWEEP), strict=True):
        along = out[:, :, 0] * f.direction  # rising means "with the direction"
        against = np.max(np.maximum.accumulate(along, axis=1) - along, axis=1)  # per record
        worst = max(worst, float(against.max()))
        violations += [(int(i), f.name, round(float(against[i]), 6)) for i in np.flatnonzero(against > tolerance)]
        sweeps += along.shape[0]
        points += along.size
    report(
        "direction sweeps",
        f"{name}: {sweeps} sweeps ({points} records), worst move against a direction {worst:.3g} "
        f"(tolerance {tolerance:.3g}), violations {len(violations)}",
    )
    assert not violations, (
        f"{name}: {len(violations)} of {sweeps} sweeps move against the catalog direction by more than "
        f"{tolerance:.3g} (record index, feature, amount): {violations[:20]}"
    )


@pytest.mark.parametrize("name", WITH_CATEGORY_DIRECTIONS)
def test_category_directions(tasks, name):
    task = tasks(name)
    tolerance = task.tolerance
    violations = []
    checks = 0
    for feature in (f for f in task.spec.features if f.category_directions):
        raising = [c for c, d in feature.category_directions if d == 1]
        lowering = [c for c, d in feature.category_directions if d == -1]
        assert raising and lowering, f"{name}.{feature.name}: category directions need both signs to compare"
        categories = list(feature.categories)
        output = task.sweep(feature, categories, N_ROWS_SWEEP)[:, :, 0]
        for up in raising:
            for down in lowering:
                gap = output[:, categories.index(down)] - output[:, categories.index(up)]
                checks += len(gap)
                violations += [
                    (int(i), feature.name, f"{up!r} below {down!r}", round(float(gap[i]), 6))
                    for i in np.flatnonzero(gap > tolerance)
                ]
    report("category directions", f"{name}: {checks} comparisons, violations {len(violations)}")
    assert not violations, (
        f"{name}: {len(violations)} of {checks} category comparisons break the catalog direction by more than "
        f"{tolerance:.3g} (record index, feature, what, amount): {violations[:20]}"
    )
