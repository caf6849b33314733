"""The served SHAP values of the real artifacts, recomputed from their definition through the public pipeline.

For a boosted additive model every raw field is a player whose only interactions are its declared
pair (if any), so interventional SHAP against the training rows ``Z`` has a short closed form in
the value function ``v(S) = mean_z f(x_S, z_rest)``: a field outside any pair gets
``v(N) − v(N∖{j})``; a field ``a`` paired with ``b`` gets
``½ (v({a}) − v(∅)) + ½ (v(N) − v(N∖{a}))``, and ``v(∅)`` is the base value. Here ``f`` is the
pickled pipeline's own ``decision_function`` (classifiers, recalibration included) or ``predict``
on raw-field DataFrames, so the check covers what the synthetic tests of
``tests/unit/test_additive.py`` cannot: the real preprocessing (one-hot columns summed back to
their field, NaN, clamping), the real pairs, and the training rows as background.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vitalcheck.catalog import TABULAR_MODELS
from vitalcheck.predictors.tabular import records_to_frame
from vitalcheck.training import evaluation, loaders, splits

pytestmark = pytest.mark.usefixtures("one_thread")

EXACT = 1e-9
"""Largest |served − recomputed| SHAP value, relative to the output's magnitude when it is above 1."""


def raw(spec, pipeline, frame: pd.DataFrame) -> np.ndarray:
    """The pipeline's output on its additive scale, shape (n, n_out)."""
    out = pipeline.decision_function(frame) if spec.kind == "classifier" else pipeline.predict(frame)
    return np.asarray(out, dtype=np.float64).reshape(len(frame), -1)


def served(pipeline, frame: pd.DataFrame, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(base (n_out,), shap (n, fields in ``names`` order, n_out))`` as the model gives them."""
    model = pipeline.named_steps["model"]
    base, shap = model.explain(pipeline[:-1].transform(frame))
    order = [model.field_names().index(name) for name in names]
    return base, shap[:, order, :]


def partners(pipeline) -> dict[str, str]:
    """Field → the field it shares a two-field term with."""
    model = pipeline.named_steps["model"]
    out: dict[str, str] = {}
    for a, b in model.pairs:
        fa, fb = model.column_fields[a], model.column_fields[b]
        out[fa], out[fb] = fb, fa
    return out


def typed(spec, frame: pd.DataFrame) -> pd.DataFrame:
    """A frame as the service builds it from records (numbers float64, categories object, NaN missing)."""
    return records_to_frame(spec, frame.astype(object).where(frame.notna(), None).to_dict("records"))


def mean_with(x: pd.Series, background: pd.DataFrame, taken: list[str]) -> pd.DataFrame:
    """The background rows with the fields ``taken`` set to ``x``'s values."""
    rows = background.copy()
    for name in taken:
        rows[name] = pd.Series([x[name]] * len(rows), index=rows.index, dtype=background[name].dtype)
    return rows


@pytest.fixture(scope="module", params=list(TABULAR_MODELS))
def case(request, tabular_artifacts, data_dir):
    name = request.param
    spec = TABULAR_MODELS[name]
    model, card = evaluation.load_artifact(name, tabular_artifacts)
    pipeline = model[0] if isinstance(model, tuple) else model
    X, y, meta = loaders.load_with_meta(name, loaders.data_file(name, data_dir))
    train, test = splits.split(name, X, y, meta)
    background = typed(spec, X.iloc[train])
    rows = typed(spec, X.iloc[test[:3]])
    # a row with a missing value and one beyond the training range, where the catalog allows them
    by_card = {f.name: f for f in card.features}
    odd = rows.iloc[0].copy()
    nullable = [f.name for f in spec.features if f.nullable]
    if nullable:
        odd[nullable[0]] = np.nan
    for f in spec.features:
        c = by_card[f.name]
        if f.type == "number" and f.valid_max is not None and c.train_max is not None and f.valid_max > c.train_max:
            odd[f.name] = float(f.valid_max)
            break
    rows = typed(spec, pd.concat([rows, odd.to_frame().T], ignore_index=True))
    return spec, pipeline, background, rows


def test_base_is_the_mean_output_over_the_training_rows(case):
    spec, pipeline, background, rows = case
    base, _ = served(pipeline, rows, spec.feature_names)
    expected = raw(spec, pipeline, background).mean(axis=0)
    np.testing.assert_allclose(base, expected, rtol=0, atol=EXACT * max(1.0, float(np.abs(expected).max())))


def test_served_shap_equals_the_interventional_definition(case):
    spec, pipeline, background, rows = case
    names = spec.feature_names
    paired = partners(pipeline)
    base, shap = served(pipeline, rows, names)
    n = len(background)
    for i in range(len(rows)):
        x = rows.iloc[i]
        # v(N ∖ {j}) for every field, v({a}) for every paired field: one call
        frames = [mean_with(x, background, [m for m in names if m != j]) for j in names]
        frames += [mean_with(x, background, [a]) for a in paired]
        out = raw(spec, pipeline, pd.concat(frames, ignore_index=True)).reshape(len(frames), n, -1).mean(axis=1)
        full = raw(spec, pipeline, rows.iloc[[i]])[0]
        without = dict(zip(names, out[: len(names)], strict=True))
        alone = dict(zip(paired, out[len(names) :], strict=True))
        scale = max(1.0, float(np.abs(full).max()))
        for j, field in enumerate(names):
            if field in paired:
                expected = 0.5 * (alone[field] - base) + 0.5 * (full - without[field])
            else:
                expected = full - without[field]
            np.testing.assert_allclose(shap[i, j], expected, rtol=0, atol=EXACT * scale, err_msg=f"row {i}, {field}")
        np.testing.assert_allclose(base + shap[i].sum(axis=0), full, rtol=0, atol=EXACT * scale)
