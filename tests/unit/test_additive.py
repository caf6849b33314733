"""vitalcheck.additive: exact SHAP values of boosted additive models, against their definitions.

Synthetic data, small models. Five raw fields ``a, b, c, d, e`` in six columns: ``c`` is two
one-hot-like 0/1 columns (summed back to one field), ``a`` has missing values, and ``(a, b)`` is
the optional pair term. Every check goes through the estimators' public outputs
(``decision_function`` / ``predict``): additivity, a brute-force interventional SHAP over all
coalitions of the five fields, monotonic constraints, clamping, pair validation and pickling.
"""

from __future__ import annotations

import math
import pickle
from itertools import product

import numpy as np
import pytest

from vitalcheck.additive import AdditiveBoostingClassifier, AdditiveBoostingRegressor

FIELDS = ("a", "b", "c", "c", "d", "e")
NAMES = ["a", "b", "c", "d", "e"]
PAIR = ((0, 1),)
N = 240
EXACT = 1e-9


def _data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Columns a, b, c_x, c_y, d, e and a latent score with an a·b interaction."""
    rng = np.random.default_rng(seed)
    a = rng.normal(0.0, 1.0, N)
    b = rng.uniform(-2.0, 2.0, N)
    c = (rng.random(N) < 0.4).astype(float)
    d = rng.integers(0, 5, N).astype(float)
    e = rng.normal(10.0, 3.0, N)
    latent = 0.8 * a - 0.6 * b + 1.5 * a * b + 0.7 * c + 0.3 * d + 0.1 * (e - 10.0)
    a[rng.random(N) < 0.1] = np.nan  # a learned value for a missing ``a``
    return np.column_stack([a, b, c, 1.0 - c, d, e]), latent


X, LATENT = _data()


def _labels(kind: str) -> np.ndarray:
    noise = np.random.default_rng(1).logistic(0.0, 1.0, N)
    score = LATENT + noise
    if kind == "binary":
        return np.where(score > 0.0, "yes", "no").astype(object)
    if kind == "multiclass":
        return np.array(["low", "mid", "high"], dtype=object)[np.digitize(score, np.quantile(score, [1 / 3, 2 / 3]))]
    return 50.0 + 5.0 * LATENT + np.random.default_rng(2).normal(0.0, 1.0, N)


def _new_rows() -> np.ndarray:
    """Rows not seen in training: missing values, values far outside the range, ±inf."""
    rows = X[:6].copy()
    rows[0, 0] = np.nan
    rows[1, [0, 1, 4, 5]] = [1e9, -1e9, 1e6, -1e6]
    rows[2, [0, 5]] = [-1e12, 1e12]
    rows[3, [1, 4]] = [np.inf, -np.inf]
    rows[4, :] = [np.nan, 7.0, 0.0, 1.0, 99.0, -50.0]
    rows[5, 2:4] = [0.0, 0.0]  # an unknown category: both one-hot columns zero
    return rows


def _fit(kind: str, pairs=(), **params):
    common = {"column_fields": FIELDS, "pairs": pairs, "max_iter": 40, "random_state": 0, **params}
    if kind == "regressor":
        return AdditiveBoostingRegressor(**common).fit(X, _labels(kind))
    classes = ("no", "yes") if kind == "binary" else ("low", "mid", "high")
    return AdditiveBoostingClassifier(classes=classes, **common).fit(X, _labels(kind))


def _output(model, rows: np.ndarray) -> np.ndarray:
    """The model's public answer on its additive scale, shape (n, n_out)."""
    if isinstance(model, AdditiveBoostingRegressor):
        out = model.predict(rows)
    else:
        out = model.decision_function(rows)
    return np.asarray(out, dtype=np.float64).reshape(len(rows), -1)


KINDS = ["binary", "multiclass", "regressor"]


@pytest.fixture(
    scope="module", params=[(k, p) for k in KINDS for p in (False, True)], ids=lambda v: f"{v[0]}-pair{int(v[1])}"
)
def model(request):
    kind, paired = request.param
    return _fit(kind, pairs=PAIR if paired else ())


def test_pair_term_is_a_real_interaction():
    """The pair models' (a, b) table is not a sum of one-column steps (so the two-player split is exercised)."""
    for kind in KINDS:
        g = _fit(kind, pairs=PAIR).tables_.pair[(0, 1)]
        interaction = g - g[:, :1, :] - g[:, :, :1] + g[:, :1, :1]
        assert np.abs(interaction).max() > 1e-3, kind
        assert not _fit(kind).tables_.pair  # no pair declared: no pair table


@pytest.mark.parametrize("rows", ["training", "new"])
def test_base_plus_shap_is_the_output(model, rows):
    data = X if rows == "training" else _new_rows()
    base, shap = model.explain(data)
    n_out = 3 if getattr(model, "classes", ()) == ("low", "mid", "high") else 1
    assert base.shape == (n_out,)
    assert shap.shape == (len(data), len(NAMES), n_out)
    assert model.field_names() == NAMES
    assert np.all(np.isfinite(shap))
    np.testing.assert_allclose(base + shap.sum(axis=1), _output(model, data), rtol=0, atol=EXACT)
    if isinstance(model, AdditiveBoostingClassifier):
        probabilities = model.predict_proba(data)
        assert probabilities.shape == (len(data), len(model.classes))
        np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=0, atol=1e-12)
        assert list(model.predict(data)) == [model.classes[k] for k in probabilities.argmax(axis=1)]


def test_recalibrated_log_odds_are_explained():
    """A binary model's logit_slope/intercept are carried into base and SHAP values."""
    model = _fit("binary", pairs=PAIR)
    plain = _output(model, _new_rows())
    model.set_params(logit_slope=0.7, logit_intercept=-0.3)
    rows = _new_rows()
    base, shap = model.explain(rows)
    np.testing.assert_allclose(_output(model, rows), 0.7 * plain - 0.3, rtol=0, atol=EXACT)
    np.testing.assert_allclose(base + shap.sum(axis=1), _output(model, rows), rtol=0, atol=EXACT)


def _field_columns() -> list[list[int]]:
    return [[j for j, f in enumerate(FIELDS) if f == name] for name in NAMES]


def brute_force_shap(model, x: np.ndarray, background: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Interventional SHAP of one row by enumerating every coalition of raw fields.

    ``v(S)`` is the mean over the background rows ``z`` of the model's output at the row
    taking ``x`` on the fields of ``S`` and ``z`` elsewhere; ``φ_i = Σ_S |S|!(n−|S|−1)!/n! ·
    (v(S ∪ {i}) − v(S))``. Returns ``(v(∅), φ (n_fields, n_out))``.
    """
    columns = _field_columns()
    n = len(columns)
    masks = list(product((False, True), repeat=n))
    stacked = []
    for mask in masks:
        rows = background.copy()
        for i, take in enumerate(mask):
            if take:
                rows[:, columns[i]] = x[columns[i]]
        stacked.append(rows)
    out = _output(model, np.vstack(stacked)).reshape(len(masks), len(background), -1)
    v = dict(zip(masks, out.mean(axis=1), strict=True))
    phi = np.zeros((n, out.shape[2]))
    for mask in masks:
        size = sum(mask)
        for i in range(n):
            if mask[i]:
                continue
            with_i = tuple(True if j == i else m for j, m in enumerate(mask))
            weight = math.factorial(size) * math.factorial(n - size - 1) / math.factorial(n)
            phi[i] += weight * (v[with_i] - v[mask])
    return v[(False,) * n], phi


def test_shap_equals_brute_force_interventional_shap(model):
    rows = np.vstack([X[[0, 7, 19]], _new_rows()])
    base, shap = model.explain(rows)
    for r, x in enumerate(rows):
        empty, phi = brute_force_shap(model, x, X)
        np.testing.assert_allclose(base, empty, rtol=0, atol=EXACT)
        np.testing.assert_allclose(shap[r], phi, rtol=0, atol=EXACT, err_msg=f"row {r}")


def test_one_hot_columns_sum_to_their_field(model):
    rows = _new_rows()
    columns = model.shap_columns(rows)
    fields = model.shap_fields(rows)
    for k, cols in enumerate(_field_columns()):
        np.testing.assert_array_equal(fields[:, k, :], columns[:, cols, :].sum(axis=1))


@pytest.mark.parametrize("kind", ["binary", "regressor"])
@pytest.mark.parametrize("paired", [False, True])
def test_monotonic_constraints_hold_on_a_sweep(kind, paired):
    """Output and the field's SHAP value rise with ``a`` (+1) and fall with ``b`` (-1), everywhere."""
    model = _fit(kind, pairs=PAIR if paired else (), monotonic_cst=(1, -1, 0, 0, 0, 0))
    sweep = np.linspace(-6.0, 6.0, 241)
    for column, sign in ((0, 1), (1, -1)):
        for row in X[:25]:
            if np.isnan(row).any():
                continue
            grid = np.tile(row, (len(sweep), 1))
            grid[:, column] = sweep
            out = _output(model, grid)[:, 0]
            assert np.all(sign * np.diff(out) >= -1e-12), (kind, column)
            field_shap = model.explain(grid)[1][:, column, 0]
            assert np.all(sign * np.diff(field_shap) >= -1e-12), (kind, column)
        # the constraint is not vacuous: the output does move along the sweep
        assert sign * (out[-1] - out[0]) > 0


def test_inputs_beyond_the_training_range_answer_as_at_the_edge(model):
    np.testing.assert_array_equal(model.lower_, np.nanmin(X, axis=0))
    np.testing.assert_array_equal(model.upper_, np.nanmax(X, axis=0))
    rows = X[1:30].copy()
    rows = rows[~np.isnan(rows).any(axis=1)]
    for j in (0, 1, 4, 5):
        for beyond, edge in ((np.inf, model.upper_[j]), (-np.inf, model.lower_[j])):
            for far in (beyond, np.sign(beyond) * 1e9, edge + np.sign(beyond) * 1e-6):
                outside, at_edge = rows.copy(), rows.copy()
                outside[:, j], at_edge[:, j] = far, edge
                np.testing.assert_array_equal(_output(model, outside), _output(model, at_edge))
                np.testing.assert_array_equal(model.explain(outside)[1], model.explain(at_edge)[1])


def test_pairs_must_be_disjoint():
    for pairs in (((0, 1), (1, 4)), ((0, 1), (4, 0)), ((0, 1), (0, 1))):
        with pytest.raises(ValueError, match="disjoint"):
            _fit("regressor", pairs=pairs)
    ordered = _fit("regressor", pairs=((1, 0),))  # a pair is a set: (1, 0) is (0, 1)
    np.testing.assert_array_equal(ordered.predict(X), _fit("regressor", pairs=PAIR).predict(X))


def test_other_inputs_are_refused():
    with pytest.raises(ValueError, match="column_fields"):
        AdditiveBoostingRegressor(column_fields=("a", "b"), max_iter=5).fit(X, _labels("regressor"))
    with pytest.raises(ValueError, match="not among the classes"):
        AdditiveBoostingClassifier(classes=("no", "maybe"), column_fields=FIELDS, max_iter=5).fit(X, _labels("binary"))


def test_pickle_round_trip_gives_identical_explanations(model):
    rows = np.vstack([X, _new_rows()])
    again = pickle.loads(pickle.dumps(model))
    base, shap = model.explain(rows)
    base2, shap2 = again.explain(rows)
    np.testing.assert_array_equal(base, base2)
    np.testing.assert_array_equal(shap, shap2)
    np.testing.assert_array_equal(_output(model, rows), _output(again, rows))


# ---- served terms: smoothing and rarely missing fields ---------------------------------------------------


def _step_data(n=3000, seed=11):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1, 1, (n, 2))
    logit = np.where(X[:, 0] > 0, 1.5, -1.5) + 0.3 * X[:, 1]
    y = np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), "pos", "neg")
    return X, y


def test_smoothing_spreads_a_step_and_keeps_the_direction():
    """A threshold effect: the trees serve it as one jump; the smoothed term ramps over a few % of the rows."""
    X, y = _step_data()
    grid = np.column_stack([np.linspace(-1, 1, 2001), np.zeros(2001)])
    jumps = {}
    for smoothing in (0.0, 0.02):
        model = AdditiveBoostingClassifier(
            classes=["neg", "pos"], column_fields=["a", "b"], monotonic_cst=[1, 0], smoothing=smoothing
        ).fit(X, y)
        raw = model.decision_function(grid)
        assert np.all(np.diff(raw) >= -1e-12), smoothing  # the constraint survives the smoothing
        jumps[smoothing] = float(np.max(np.diff(raw)))  # largest change over 0.1 % of the range
        base, shap = model.explain(grid)
        assert np.max(np.abs(base + shap.sum(axis=1)[:, 0] - raw)) <= 1e-9
    assert jumps[0.0] > 1.0  # the steps jump by most of the 3 log-odds at once
    assert jumps[0.02] < jumps[0.0] / 5


def test_a_rarely_missing_field_answers_missing_with_its_mean():
    """Three missing values in training (fewer than min_samples_leaf): a missing value scores the term's mean."""
    X, y = _step_data()
    X[:3, 0] = np.nan
    model = AdditiveBoostingClassifier(classes=["neg", "pos"], column_fields=["a", "b"], min_samples_leaf=20).fit(X, y)
    present = X[~np.isnan(X[:, 0])]
    blanked = present.copy()
    blanked[:, 0] = np.nan
    shift = model.decision_function(present) - model.decision_function(blanked)
    assert abs(float(shift.mean())) <= 1e-9  # missing = the mean of the term over the rows that have a value
    assert float(np.abs(shift).max()) > 1.0  # ... which is not what every row gets


def test_a_often_missing_field_keeps_what_the_data_say_about_missing():
    """Missing in 30 % of training rows, and then mostly positive: the learned value stands."""
    X, y = _step_data()
    gone = np.arange(len(X)) % 3 == 0
    X[gone, 0] = np.nan
    y = np.where(gone, "pos", y)
    model = AdditiveBoostingClassifier(classes=["neg", "pos"], column_fields=["a", "b"]).fit(X, y)
    row = np.array([[np.nan, 0.0], [0.9, 0.0]])
    missing, high = model.predict_proba(row)[:, 1]
    assert missing > 0.9 and missing > high - 0.05


def test_a_rarely_missing_pair_partner_answers_missing_with_its_mean():
    """In a two-field term too: a partner never missing in training scores a missing value at the term's mean."""
    X, y = _step_data()
    X[:, 1] = X[:, 0] * 0.5 + X[:, 1]
    model = AdditiveBoostingClassifier(classes=["neg", "pos"], column_fields=["a", "b"], pairs=[(0, 1)]).fit(X, y)
    blanked = X[:20].copy()
    blanked[:, 0] = np.nan
    for i, row in enumerate(blanked):  # missing a = the average answer over the training rows' values of a
        filled = np.column_stack([X[:, 0], np.full(len(X), row[1])])
        assert model.decision_function(row[None, :])[0] == pytest.approx(
            float(model.decision_function(filled).mean()), abs=1e-9
        ), i
    base, shap = model.explain(blanked)
    assert np.max(np.abs(base + shap.sum(axis=1)[:, 0] - model.decision_function(blanked))) <= 1e-9
