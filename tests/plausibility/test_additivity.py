"""Exact explanations: every served explanation adds up to the served output, on real rows of every model.

Rules checked (SHAP's local accuracy, Lundberg & Lee 2017, and the API's documented link functions):

* ``explanation.base_value + Σ explanation.contributions == explanation.output_value`` to 1e-9, for
  every record (sleep: for each class's explanation);
* the output value is the served answer on the explanation's scale: a binary model's probability is
  the logistic function of the log-odds output value (to 1e-12); sleep's class probabilities are the
  softmax of the three classes' output values (to 1e-12); life expectancy and insurance charges equal
  the output value;
* every catalog field has a contribution, and no other key does;
* the ``contributors`` are the top 5 of those contributions by absolute value (each with its
  contribution and the submitted value), in descending order; sleep's are those of the predicted
  class, which is the most probable one.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.plausibility.support import N_ROWS_CHEAP, report
from vitalcheck.catalog import TABULAR_MODELS
from vitalcheck.predictors.tabular import TOP_K

ADDITIVITY = 1e-9
LINK = 1e-12


def _check_explanation(explanation, fields):
    problems = []
    if list(explanation.contributions) != fields:
        problems.append(
            f"contribution keys differ from the catalog fields: {sorted(set(explanation.contributions) ^ set(fields))}"
        )
    total = explanation.base_value + math.fsum(explanation.contributions.values())
    if not abs(total - explanation.output_value) <= ADDITIVITY:
        problems.append(f"base + Σ contributions - output = {total - explanation.output_value:.3g}")
    return problems


def _check_contributors(contributors, contributions, record):
    problems = []
    expected_n = min(TOP_K, len(contributions))
    if len(contributors) != expected_n:
        return [f"{len(contributors)} contributors, expected {expected_n}"]
    names = [c.feature for c in contributors]
    if len(set(names)) != len(names):
        problems.append("a field is listed twice among the contributors")
    magnitudes = [abs(c.contribution) for c in contributors]
    if magnitudes != sorted(magnitudes, reverse=True):
        problems.append("contributors are not in descending order of |contribution|")
    for c in contributors:
        if c.contribution != contributions.get(c.feature):
            problems.append(f"contributor {c.feature}: contribution differs from the explanation's")
        if c.value != record[c.feature]:
            problems.append(f"contributor {c.feature}: value differs from the submitted one")
    rest = [abs(v) for k, v in contributions.items() if k not in names]
    if rest and min(magnitudes) < max(rest):
        problems.append("a field outside the contributors has a larger |contribution| than one inside")
    return problems


@pytest.mark.parametrize("name", list(TABULAR_MODELS))
def test_explanations_add_up_to_the_served_output(tasks, name):
    task = tasks(name)
    records = task.rows(N_ROWS_CHEAP)
    validated = task.validate(records)
    dumped = [r.model_dump() for r in validated]
    predictions = task.predictor.predict(validated, moderate=0.2, high=0.5)
    fields = task.spec.feature_names
    classes = list(task.spec.classes)
    failures = []
    worst = 0.0
    for i, (p, record) in enumerate(zip(predictions, dumped, strict=True)):
        problems = []
        if task.is_classifier and len(classes) > 2:
            explanations = [p.explanations[c] for c in classes]
            if list(p.explanations) != classes:
                problems.append(f"explanations are keyed {list(p.explanations)}, expected {classes}")
            outputs = np.array([e.output_value for e in explanations])
            softmax = np.exp(outputs - outputs.max())
            softmax /= softmax.sum()
            served = np.array([p.probabilities[c] for c in classes])
            if not np.max(np.abs(softmax - served)) <= LINK:
                problems.append(
                    f"softmax of the output values differs from the probabilities by {np.max(np.abs(softmax - served)):.3g}"
                )
            if p.predicted_class != classes[int(np.argmax(served))]:
                problems.append("the predicted class is not the most probable one")
            contributions = p.explanations[p.predicted_class].contributions
        else:
            explanations = [p.explanation]
            e = p.explanation
            if task.is_classifier:
                served, linked = p.probability, 1.0 / (1.0 + math.exp(-e.output_value))
            elif task.spec.kind == "regressor":
                served, linked = p.life_expectancy_years, e.output_value
            else:
                served, linked = p.charges_usd, e.output_value
            if not abs(served - linked) <= LINK:
                problems.append(f"served output differs from the explanation's output value by {served - linked:.3g}")
            contributions = e.contributions
        for k, e in enumerate(explanations):
            worst = max(worst, abs(e.base_value + math.fsum(e.contributions.values()) - e.output_value))
            problems += [f"explanation {k}: {m}" for m in _check_explanation(e, fields)]
        problems += _check_contributors(p.contributors, contributions, record)
        if problems:
            failures.append((i, problems))
    report(
        "additivity",
        f"{name}: {len(predictions)} records, worst |base + Σ contributions - output| {worst:.3g}, failures {len(failures)}",
    )
    assert not failures, (
        f"{name}: {len(failures)} of {len(predictions)} records (record index, problems): {failures[:10]}"
    )
