"""The documented properties of tests.utils.explain_oracle.contributions, on real test rows and real artifacts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.utils.explain_oracle import contributions
from vitalcheck.catalog import TABULAR_MODELS
from vitalcheck.training import evaluation, loaders, splits

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module", params=["diabetes", "heart", "sleep", "life_expectancy", "insurance"])
def case(request, tabular_artifacts, data_dir):
    name = request.param
    spec = TABULAR_MODELS[name]
    model, card = evaluation.load_artifact(name, tabular_artifacts)
    X, y, meta = loaders.load_with_meta(name, loaders.data_file(name, data_dir))
    _, test = splits.split(name, X, y, meta)
    rows = X.iloc[test[:6]].reset_index(drop=True)
    baseline = {f.name: f.baseline for f in card.features}
    if spec.kind == "classifier":
        k = len(spec.classes) - 1 if len(spec.classes) == 2 else int(np.argmax(model.predict_proba(rows[:1])[0]))

        def predict(frame):
            return model.predict_proba(frame)[:, k]
    else:
        central = model[0] if isinstance(model, tuple) else model

        def predict(frame):
            return central.predict(frame)

    return name, spec, predict, rows, baseline


def test_one_batched_call_and_shape(case):
    _, spec, predict, rows, baseline = case
    calls = []

    def counting(frame):
        calls.append(len(frame))
        return predict(frame)

    out = contributions(counting, rows, baseline, top_k=3)
    n, f = rows.shape
    assert calls == [n * (f + 1)]
    assert len(out) == n and all(len(r) == 3 for r in out)
    full = contributions(predict, rows, baseline, top_k=None)
    assert all(sorted(name for name, _, _ in r) == sorted(spec.feature_names) for r in full)


def test_contribution_is_the_drop_when_replaced_by_baseline(case):
    _, spec, predict, rows, baseline = case
    full = contributions(predict, rows, baseline, top_k=None)
    for i in range(len(rows)):
        row = rows.iloc[[i]]
        base = float(predict(row)[0])
        for name, value, c in full[i]:
            replaced = row.astype(object).copy()
            replaced[name] = [baseline[name]]
            expected = base - float(predict(replaced)[0])
            assert c == pytest.approx(expected, abs=1e-9), name
            original = rows.iloc[i][name]
            assert value is None if pd.isna(original) else value == original


def test_zero_at_the_baseline_exactly(case):
    _, spec, predict, rows, baseline = case
    rows = rows.copy().astype(object)
    first, last = spec.feature_names[0], spec.feature_names[-1]
    rows[first] = baseline[first]
    rows[last] = baseline[last]
    out = contributions(predict, rows, baseline, top_k=None)
    for r in out:
        by_name = {name: c for name, _, c in r}
        assert by_name[first] == 0.0 and by_name[last] == 0.0
    at_baseline = pd.DataFrame([baseline], columns=spec.feature_names)
    assert all(c == 0.0 for _, _, c in contributions(predict, at_baseline, baseline, top_k=None)[0])


def test_sorted_and_deterministic(case):
    _, _, predict, rows, baseline = case
    a = contributions(predict, rows, baseline, top_k=None)
    b = contributions(predict, rows, baseline, top_k=None)
    assert a == b
    for r in a:
        mags = [abs(c) for _, _, c in r]
        assert mags == sorted(mags, reverse=True)
    assert any(c != 0.0 for r in a for _, _, c in r)


def test_errors():
    rows = pd.DataFrame({"a": [1.0], "b": [2.0]})
    with pytest.raises(KeyError, match="b"):
        contributions(lambda f: f["a"].to_numpy(), rows, {"a": 0.0})
    with pytest.raises(ValueError, match="one scalar per row"):
        contributions(lambda f: np.zeros((len(f), 2)), rows, {"a": 0.0, "b": 0.0})
    assert contributions(lambda f: f["a"].to_numpy() * 2, rows, {"a": 0.0, "b": 0.0}, top_k=1) == [[("a", 1.0, 2.0)]]
