"""Boosted additive models with exact SHAP values: the served family of every tabular model.

A histogram gradient-boosting model whose trees each use one input column, or one of a few
declared disjoint column pairs (scikit-learn's ``interaction_cst``), is a sum of step
functions: ``raw(x) = c + Σ_j f_j(x_j) + Σ_(a,b) g_ab(x_a, x_b)`` on the model's additive scale
(log-odds for a binary classifier, per-class softmax scores for a multiclass one, the target's
unit for a regressor). After fitting, the trees are read into those step-function tables, so
each prediction has exact interventional SHAP values against the training rows (Lundberg et
al. 2020): ``f_j(x_j) − mean_train f_j`` for a one-column term, the two-player Shapley split
for a pair. One-hot columns are summed back to their raw field. ``base + Σ SHAP = raw(x)``
holds exactly, up to float rounding (checked to 1e-9 when fitted and at every start-up). Answers are computed from the tables, which
reproduce the fitted trees to 1e-9 (checked when fitted and at start-up).

Inputs are clamped to the training range of each column before the trees see them, so an
accepted value beyond the data is answered as at the nearest edge. Monotonic constraints
(``monotonic_cst``) carry the catalog's expected directions.

Serving-safe: numpy and scikit-learn only (it is unpickled by the service).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import sklearn
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.utils.validation import check_is_fitted

from vitalcheck.compiled import ADDITIVITY_TOLERANCE, probabilities
from vitalcheck.estimators import encode_labels

__all__ = ["ADDITIVITY_TOLERANCE", "AdditiveBoostingClassifier", "AdditiveBoostingRegressor", "probabilities"]

KNOTS = 201
"""Training quantiles (at most) on which a smoothed term is served as a piecewise-linear curve."""

SMOOTHED_MIN_DISTINCT = 3
"""Columns with fewer distinct training values (booleans, one-hot columns) keep their steps."""

TREES_READ_WITH = "1.9"
"""scikit-learn minor version whose private tree layout (``_predictors[i][k].nodes``) this reads."""


def _check_sklearn() -> None:
    if not sklearn.__version__.startswith(TREES_READ_WITH + "."):
        raise RuntimeError(
            f"vitalcheck.additive reads HistGradientBoosting's tree nodes as laid out in scikit-learn "
            f"{TREES_READ_WITH}.x; {sklearn.__version__} is installed: check _predictors/nodes and update"
        )


def _walk(nodes: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Leaf values of one tree for rows of X (n, d): the predictor's own rule (``x <= threshold`` left)."""
    at = np.zeros(len(X), dtype=np.int64)
    while True:
        inner = nodes["is_leaf"][at] == 0
        if not inner.any():
            return nodes["value"][at].astype(np.float64)
        rows = np.flatnonzero(inner)
        node = nodes[at[rows]]
        x = X[rows, node["feature_idx"]]
        left = np.where(np.isnan(x), node["missing_go_to_left"].astype(bool), x <= node["num_threshold"])
        at[rows] = np.where(left, node["left"], node["right"])


class _Tables:
    """Step-function tables of one fitted model, for ``n_out`` outputs (classes or 1), and the served terms.

    ``steps`` are the trees' one-column terms exactly (checked against the trees). The served
    one-column terms differ in two ways, both part of the fitted model:

    * a numeric column's step function is smoothed in quantile space (a Gaussian kernel over the
      training rows' ranks; its standard deviation, ``smoothing``, is a share of the rows) and served as a piecewise-linear
      curve on training quantiles: boosting piles steps on single thresholds, so a 0.1-unit change
      could move a risk by 0.3; a positive kernel keeps every monotonic constraint;
    * a column missing in fewer than ``min_missing`` training rows answers a missing value with
      the mean of its term over the training rows, not with the side a handful of rows chose.

    Pair terms are served as fitted (steps), except that a rarely missing partner's missing value
    is its term's mean over the training rows given the other partner.
    """

    def __init__(
        self,
        model: Any,
        n_columns: int,
        pairs: Sequence[tuple[int, int]],
        X_train: np.ndarray,
        min_missing: int,
        bandwidth: float,
    ) -> None:
        trees = [[tree.nodes for tree in per_iter] for per_iter in model._predictors]
        n_out = len(trees[0])
        used: list[list[tuple[tuple[int, ...], np.ndarray]]] = [[] for _ in range(n_out)]
        cuts: list[set[float]] = [set() for _ in range(n_columns)]
        for per_iter in trees:
            for k, nodes in enumerate(per_iter):
                inner = nodes[~nodes["is_leaf"].astype(bool)]
                features = tuple(sorted({int(f) for f in inner["feature_idx"]}))
                if len(features) > 2 or (len(features) == 2 and features not in pairs):
                    raise ValueError(f"a tree uses columns {features}: not an allowed term")
                for f in features:
                    t = inner["num_threshold"][inner["feature_idx"] == f]
                    cuts[f].update(float(v) for v in t[np.isfinite(t)])
                used[k].append((features, nodes))
        self.thresholds = [np.array(sorted(c), dtype=np.float64) for c in cuts]
        # representative of interval k = (t_{k-1}, t_k]: t_k; above the last: the next float; then NaN
        reps = [
            np.concatenate([t, [np.nextafter(t[-1], np.inf) if len(t) else 0.0], [np.nan]]) for t in self.thresholds
        ]
        self.steps = [np.zeros((n_out, len(r))) for r in reps]
        self.pair = {p: np.zeros((n_out, len(reps[p[0]]), len(reps[p[1]]))) for p in pairs}
        for k in range(n_out):
            for features, nodes in used[k]:
                if len(features) == 1:
                    (f,) = features
                    grid = np.zeros((len(reps[f]), n_columns))
                    grid[:, f] = reps[f]
                    self.steps[f][k] += _walk(nodes, grid)
                elif len(features) == 2:
                    a, b = features
                    ra, rb = np.meshgrid(reps[a], reps[b], indexing="ij")
                    grid = np.zeros((ra.size, n_columns))
                    grid[:, a], grid[:, b] = ra.ravel(), rb.ravel()
                    self.pair[(a, b)][k] += _walk(nodes, grid).reshape(ra.shape)
        self.constant = np.zeros(n_out)  # set by the caller from the public raw predictions
        index = self.intervals(X_train)
        self._serve(X_train, index, min_missing, bandwidth)
        self.pair_steps = {p: g.copy() for p, g in self.pair.items()}
        for (a, b), g in self.pair.items():  # a rarely missing partner: its missing value at the term's mean
            for column, axis in ((a, 1), (b, 2)):
                present = ~np.isnan(X_train[:, column])
                if int((~present).sum()) < min_missing and present.any():
                    rows = index[present, column]
                    if axis == 1:
                        g[:, -1, :] = g[:, rows, :].mean(axis=1)
                    else:
                        g[:, :, -1] = g[:, :, rows].mean(axis=2)
        # background expectations (the training rows) behind the SHAP values
        self.single_mean = [self.term(j, X_train[:, j], index[:, j]).mean(axis=1) for j in range(n_columns)]
        self.pair_given_a = {}
        self.pair_given_b = {}
        self.pair_mean = {}
        for (a, b), g in self.pair.items():
            self.pair_given_a[(a, b)] = g[:, :, index[:, b]].mean(axis=2)  # E_z g(x_a, z_b), per interval of a
            self.pair_given_b[(a, b)] = g[:, index[:, a], :].mean(axis=1)  # E_z g(z_a, x_b), per interval of b
            self.pair_mean[(a, b)] = g[:, index[:, a], index[:, b]].mean(axis=1)

    def _serve(self, X: np.ndarray, index: np.ndarray, min_missing: int, bandwidth: float) -> None:
        """Build the served one-column terms: smoothed curves on quantile knots, and the missing values."""
        self.knots: list[np.ndarray | None] = []
        self.curves: list[np.ndarray | None] = []
        self.missing = []
        for j, steps in enumerate(self.steps):
            present = ~np.isnan(X[:, j])
            x = X[present, j]
            fitted = steps[:, index[present, j]]  # (n_out, rows): the step term at the training rows
            if bandwidth > 0 and len(np.unique(x)) >= SMOOTHED_MIN_DISTINCT and len(self.thresholds[j]):
                knots = np.unique(np.quantile(x, np.linspace(0.0, 1.0, KNOTS)))
                ranks = (np.argsort(np.argsort(x, kind="stable"), kind="stable") + 0.5) / len(x)
                at = np.searchsorted(np.sort(x), knots, side="left") / len(x)  # the knots' ranks
                weight = np.exp(-0.5 * ((at[:, None] - ranks[None, :]) / bandwidth) ** 2)
                curve = (fitted @ weight.T) / weight.sum(axis=1)
                self.knots.append(knots)
                self.curves.append(curve)
                served = np.stack([np.interp(x, knots, c) for c in curve])
            else:
                self.knots.append(None)
                self.curves.append(None)
                served = fitted
            rare = int((~present).sum()) < min_missing
            self.missing.append(served.mean(axis=1) if rare and present.any() else steps[:, -1])

    def term(self, j: int, x: np.ndarray, index: np.ndarray) -> np.ndarray:
        """The served one-column term ``j`` at values ``x`` (their interval ``index``), shape (n_out, n)."""
        curve, knots = self.curves[j], self.knots[j]
        if curve is None or knots is None:
            out = self.steps[j][:, index]
        else:
            out = np.stack([np.interp(x, knots, c) for c in curve])
        nan = np.isnan(x)
        if nan.any():
            out[:, nan] = self.missing[j][:, None]
        return out

    def intervals(self, X: np.ndarray) -> np.ndarray:
        """Interval index per cell, shape (n, d); NaN → the last slot."""
        out = np.empty(X.shape, dtype=np.int64)
        for j, t in enumerate(self.thresholds):
            x = X[:, j]
            out[:, j] = np.where(np.isnan(x), len(t) + 1, np.searchsorted(t, x, side="left"))
        return out

    def raw(self, X: np.ndarray) -> np.ndarray:
        """The served output: Σ of all served terms + constant, shape (n, n_out)."""
        index = self.intervals(X)
        total = np.tile(self.constant, (len(X), 1))
        for j in range(len(self.steps)):
            total += self.term(j, X[:, j], index[:, j]).T
        for (a, b), g in self.pair.items():
            total += g[:, index[:, a], index[:, b]].T
        return total

    def step_raw(self, X: np.ndarray) -> np.ndarray:
        """Σ of the trees' own terms + constant, shape (n, n_out): what the fitted trees answer."""
        index = self.intervals(X)
        total = np.tile(self.constant, (len(X), 1))
        for j, t in enumerate(self.steps):
            total += t[:, index[:, j]].T
        for (a, b), g in self.pair_steps.items():
            total += g[:, index[:, a], index[:, b]].T
        return total

    def shap(self, X: np.ndarray) -> np.ndarray:
        """Per-column SHAP values of the served model, shape (n, d, n_out); Σ over columns = raw − base."""
        index = self.intervals(X)
        out = np.zeros((len(X), len(self.steps), len(self.constant)))
        for j in range(len(self.steps)):
            out[:, j, :] = (self.term(j, X[:, j], index[:, j]) - self.single_mean[j][:, None]).T
        for (a, b), g in self.pair.items():
            ia, ib = index[:, a], index[:, b]
            both = g[:, ia, ib]
            given_a, given_b, mean = (
                self.pair_given_a[(a, b)][:, ia],
                self.pair_given_b[(a, b)][:, ib],
                self.pair_mean[(a, b)],
            )
            out[:, a, :] += (0.5 * (given_a - mean[:, None]) + 0.5 * (both - given_b)).T
            out[:, b, :] += (0.5 * (given_b - mean[:, None]) + 0.5 * (both - given_a)).T
        return out

    def base(self) -> np.ndarray:
        """Mean served output over the training rows, shape (n_out,)."""
        return self.constant + sum(self.single_mean) + sum(self.pair_mean.values(), np.zeros_like(self.constant))


class _AdditiveBoosting(BaseEstimator):
    """What the classifier and the regressor share: clamping, fitting, tables, SHAP values."""

    _estimator_type_hgb: type

    def __init__(
        self,
        column_fields: Sequence[str] = (),
        monotonic_cst: Sequence[int] | None = None,
        pairs: Sequence[tuple[int, int]] = (),
        learning_rate: float = 0.05,
        max_iter: int = 300,
        max_leaf_nodes: int = 4,
        min_samples_leaf: int = 20,
        l2_regularization: float = 1.0,
        random_state: int = 0,
        smoothing: float = 0.02,
    ) -> None:
        self.column_fields = column_fields
        self.monotonic_cst = monotonic_cst
        self.pairs = pairs
        self.learning_rate = learning_rate
        self.max_iter = max_iter
        self.max_leaf_nodes = max_leaf_nodes
        self.min_samples_leaf = min_samples_leaf
        self.l2_regularization = l2_regularization
        self.random_state = random_state
        self.smoothing = smoothing

    def _hgb_params(self, n_columns: int) -> dict[str, Any]:
        pairs = [tuple(sorted(p)) for p in self.pairs]
        flat = [c for p in pairs for c in p]
        if len(flat) != len(set(flat)):
            raise ValueError("interaction pairs must be disjoint (a column in two pairs is not a 2-column term)")
        groups = [[j] for j in range(n_columns) if j not in flat] + [list(p) for p in pairs]
        return {
            "learning_rate": self.learning_rate,
            "max_iter": self.max_iter,
            "max_leaf_nodes": self.max_leaf_nodes,
            "min_samples_leaf": self.min_samples_leaf,
            "l2_regularization": self.l2_regularization,
            "monotonic_cst": None if self.monotonic_cst is None else list(self.monotonic_cst),
            "interaction_cst": groups,
            "early_stopping": False,
            "random_state": self.random_state,
        }

    def _clamp(self, X: Any) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        return np.clip(X, self.lower_, self.upper_)  # NaN stays NaN

    def _fit_tables(self, X: np.ndarray, y: Any, **hgb: Any) -> None:
        _check_sklearn()
        X = np.asarray(X, dtype=np.float64)
        if self.column_fields and len(self.column_fields) != X.shape[1]:
            raise ValueError(f"column_fields names {len(self.column_fields)} columns, X has {X.shape[1]}")
        with np.errstate(all="ignore"):
            self.lower_ = np.where(np.isnan(np.nanmin(X, axis=0)), -np.inf, np.nanmin(X, axis=0))
            self.upper_ = np.where(np.isnan(np.nanmax(X, axis=0)), np.inf, np.nanmax(X, axis=0))
        X = self._clamp(X)
        self.model_ = self._estimator_type_hgb(**self._hgb_params(X.shape[1]), **hgb).fit(X, y)
        self.n_features_in_ = X.shape[1]
        pairs = [tuple(sorted(p)) for p in self.pairs]
        tables = _Tables(self.model_, X.shape[1], pairs, X, self.min_samples_leaf, self.smoothing)  # type: ignore[arg-type]
        tables.constant = (self._tree_raw(X) - tables.step_raw(X)).mean(axis=0)
        self.tables_ = tables
        worst = self.max_tree_difference(X)
        if not worst <= ADDITIVITY_TOLERANCE:
            raise ValueError(f"the trees are not additive in the declared terms (max error {worst:.3g})")
        served = self.raw_output(X)
        exact = float(np.max(np.abs(self.base_values() + self.shap_columns(X).sum(axis=1) - served)))
        if not exact <= ADDITIVITY_TOLERANCE:
            raise ValueError(f"the explanations do not add up to the served output (max error {exact:.3g})")

    def _tree_raw(self, X: np.ndarray) -> np.ndarray:
        raw = np.asarray(self._hgb_raw(X), dtype=np.float64)
        return raw.reshape(len(X), -1)

    def max_tree_difference(self, X: Any) -> float:
        """Largest |step tables − trees| of the raw output over rows of X: the tables read the trees right.

        The served terms are computed from those tables (smoothed, see :class:`_Tables`); training
        and every start-up check that the tables behind them are the fitted trees.
        """
        X = self._clamp(X)
        return float(np.max(np.abs(self.tables_.step_raw(X) - self._tree_raw(X)), initial=0.0))

    def _hgb_raw(self, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    # ---- explanations ----------------------------------------------------------------------
    def shap_columns(self, X: Any) -> np.ndarray:
        """SHAP values per input column (before clamping), shape (n, d, n_out), on the raw scale."""
        check_is_fitted(self, "tables_")
        return self.tables_.shap(self._clamp(X))

    def base_values(self) -> np.ndarray:
        """The SHAP base value: mean raw output over the training rows, shape (n_out,)."""
        check_is_fitted(self, "tables_")
        return self.tables_.base()

    def field_names(self) -> list[str]:
        """Raw field names in first-seen column order (one-hot columns share their field's name)."""
        return list(dict.fromkeys(self.column_fields))

    def shap_fields(self, X: Any) -> np.ndarray:
        """SHAP values per raw field (one-hot columns summed), shape (n, n_fields, n_out), raw scale."""
        columns = self.shap_columns(X)
        names = self.field_names()
        index = np.array([names.index(f) for f in self.column_fields])
        out = np.zeros((columns.shape[0], len(names), columns.shape[2]))
        for column, field in enumerate(index):
            out[:, field, :] += columns[:, column, :]
        return out

    def raw_output(self, X: Any) -> np.ndarray:
        """The model's raw output on its additive scale, shape (n, n_out), from the term tables."""
        check_is_fitted(self, "tables_")
        return self.tables_.raw(self._clamp(X))


class AdditiveBoostingClassifier(ClassifierMixin, _AdditiveBoosting):
    """Boosted additive classifier whose ``predict_proba`` columns follow the catalog's class order.

    Args:
        classes: class labels in output order (binary: positive class last).
        column_fields: raw field of each input column (one-hot columns repeat their field).
        monotonic_cst: per column: 1 (output rises), -1 (falls) or 0; binary only.
        pairs: disjoint column pairs allowed a two-column term.
        smoothing: standard deviation of the kernel that smooths each numeric term, as a share of
            the training rows (0: serve the trees' steps).
        logit_slope, logit_intercept: binary recalibration of the log-odds, ``a·raw + b``
            (1 and 0: none); set from out-of-fold predictions by the trainer.
        other arguments: those of :class:`~sklearn.ensemble.HistGradientBoostingClassifier`.

    """

    _estimator_type_hgb = HistGradientBoostingClassifier

    def __init__(
        self,
        classes: Sequence[str] = (),
        column_fields: Sequence[str] = (),
        monotonic_cst: Sequence[int] | None = None,
        pairs: Sequence[tuple[int, int]] = (),
        learning_rate: float = 0.05,
        max_iter: int = 300,
        max_leaf_nodes: int = 4,
        min_samples_leaf: int = 20,
        l2_regularization: float = 1.0,
        random_state: int = 0,
        smoothing: float = 0.02,
        logit_slope: float = 1.0,
        logit_intercept: float = 0.0,
    ) -> None:
        super().__init__(
            column_fields,
            monotonic_cst,
            pairs,
            learning_rate,
            max_iter,
            max_leaf_nodes,
            min_samples_leaf,
            l2_regularization,
            random_state,
            smoothing,
        )
        self.classes = classes
        self.logit_slope = logit_slope
        self.logit_intercept = logit_intercept

    def fit(self, X: Any, y: Sequence[Any]) -> AdditiveBoostingClassifier:
        """Fit on labels from ``classes``; raises ValueError for an unknown label."""
        codes = encode_labels(y, self.classes)
        self.classes_ = np.asarray(self.classes, dtype=object)
        self._fit_tables(X, codes)
        return self

    def _hgb_raw(self, X: np.ndarray) -> np.ndarray:
        return self.model_.decision_function(X)

    def decision_function(self, X: Any) -> np.ndarray:
        """Recalibrated raw scores: binary (n,) log-odds of the positive class; multiclass (n, K)."""
        raw = self.raw_output(X) * self.logit_slope + self.logit_intercept
        return raw[:, 0] if raw.shape[1] == 1 else raw

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, shape (n, n_classes), columns in ``classes`` order."""
        return probabilities(self.decision_function(X))

    def predict(self, X: Any) -> np.ndarray:
        """Most probable class label per row, shape (n,)."""
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    def explain(self, X: Any) -> tuple[np.ndarray, np.ndarray]:
        """Exact SHAP values per raw field on the recalibrated log-odds scale.

        Returns:
            ``(base, shap)``: base of shape (n_out,) and SHAP values (n, n_fields, n_out), where
            n_out is 1 (binary: log-odds of the positive class) or n_classes (softmax scores);
            ``base + shap.sum(axis=1)`` equals :meth:`decision_function`.

        """
        return (
            self.base_values() * self.logit_slope + self.logit_intercept,
            self.shap_fields(X) * self.logit_slope,
        )


class AdditiveBoostingRegressor(RegressorMixin, _AdditiveBoosting):
    """Boosted additive regressor (squared error, or a quantile loss for interval bounds).

    Args:
        loss: ``squared_error`` or ``quantile``.
        quantile: the quantile for ``loss="quantile"``.
        other arguments: see :class:`AdditiveBoostingClassifier`.

    """

    _estimator_type_hgb = HistGradientBoostingRegressor

    def __init__(
        self,
        column_fields: Sequence[str] = (),
        monotonic_cst: Sequence[int] | None = None,
        pairs: Sequence[tuple[int, int]] = (),
        learning_rate: float = 0.05,
        max_iter: int = 300,
        max_leaf_nodes: int = 4,
        min_samples_leaf: int = 20,
        l2_regularization: float = 1.0,
        random_state: int = 0,
        smoothing: float = 0.02,
        loss: str = "squared_error",
        quantile: float | None = None,
    ) -> None:
        super().__init__(
            column_fields,
            monotonic_cst,
            pairs,
            learning_rate,
            max_iter,
            max_leaf_nodes,
            min_samples_leaf,
            l2_regularization,
            random_state,
            smoothing,
        )
        self.loss = loss
        self.quantile = quantile

    def fit(self, X: Any, y: Any) -> AdditiveBoostingRegressor:
        """Fit on a numeric target (n,)."""
        self._fit_tables(X, np.asarray(y, dtype=np.float64), loss=self.loss, quantile=self.quantile)
        return self

    def _hgb_raw(self, X: np.ndarray) -> np.ndarray:
        return self.model_.predict(X)

    def predict(self, X: Any) -> np.ndarray:
        """Predictions, shape (n,), in the target's unit."""
        return self.raw_output(X)[:, 0]

    def explain(self, X: Any) -> tuple[np.ndarray, np.ndarray]:
        """Exact SHAP values per raw field in the target's unit: ``(base (1,), shap (n, n_fields, 1))``."""
        return self.base_values(), self.shap_fields(X)
