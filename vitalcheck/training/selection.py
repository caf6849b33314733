"""Model selection of the tabular models: cross-validation of each candidate's grid on the training part.

Only the training part is used; the test part is scored once, after the choice (:mod:`vitalcheck.training.tabular`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import ParameterGrid
from sklearn.pipeline import Pipeline

from vitalcheck.catalog import TABULAR_MODELS, ModelSpec
from vitalcheck.training.evaluation import metrics_from_outputs, predict_outputs
from vitalcheck.training.metrics import regression_metrics
from vitalcheck.training.tasks import TASKS, Candidate


def _fold_metrics(name: str, y: pd.Series, outputs: np.ndarray) -> dict[str, float]:
    spec = TABULAR_MODELS[name]
    if spec.kind == "classifier":
        out = metrics_from_outputs(name, y, outputs, threshold=None)
        if len(spec.classes) == 2:  # label metrics need the threshold, chosen later on out-of-fold outputs
            out = {k: v for k, v in out.items() if k in ("roc_auc", "brier_score", "pr_auc")}
        return out
    return regression_metrics(y, outputs)


def _higher_is_better(metric: str) -> bool:
    return metric not in ("rmse", "mae", "brier_score")


@dataclass
class CVResult:
    """Cross-validation of one candidate at its best grid point."""

    candidate: Candidate
    params: dict[str, Any]
    mean: dict[str, float]
    std: dict[str, float]
    oof: np.ndarray
    grid_scores: list[tuple[dict[str, Any], float]]


def fit_candidate(
    spec: ModelSpec, candidate: Candidate, params: dict[str, Any], X: pd.DataFrame, y: pd.Series
) -> Pipeline:
    """Fit ``candidate`` with ``params`` on ``(X, y)`` (labels as objects for classifiers, floats otherwise)."""
    y_arr = np.asarray(y, dtype=object if spec.kind == "classifier" else np.float64)
    return candidate.build(spec, **params).fit(X, y_arr)


def fit_predict(
    spec: ModelSpec,
    candidate: Candidate,
    params: dict[str, Any],
    X_fit: pd.DataFrame,
    y_fit: pd.Series,
    X_pred: pd.DataFrame,
) -> np.ndarray:
    """Raw outputs (:func:`predict_outputs`) on ``X_pred`` of ``candidate`` fitted on ``(X_fit, y_fit)``."""
    return predict_outputs(spec, fit_candidate(spec, candidate, params, X_fit, y_fit), X_pred)


def cross_validate(
    name: str, candidate: Candidate, X: pd.DataFrame, y: pd.Series, folds: list[tuple[np.ndarray, np.ndarray]]
) -> CVResult:
    """Cross-validate every grid point of ``candidate`` on the training part; keep the best.

    Returns:
        The best grid point's parameters, mean and standard deviation over folds of each
        metric, and its out-of-fold outputs (n_rows, …) in the order of ``X``.

    """
    spec = TABULAR_MODELS[name]
    metric = TASKS[name].selection
    sign = 1.0 if _higher_is_better(metric) else -1.0
    best: CVResult | None = None
    grid_scores: list[tuple[dict[str, Any], float]] = []
    for params in ParameterGrid(candidate.grid or {}):
        per_fold: list[dict[str, float]] = []
        oof: np.ndarray | None = None
        for fit_idx, val_idx in folds:
            out = fit_predict(spec, candidate, params, X.iloc[fit_idx], y.iloc[fit_idx], X.iloc[val_idx])
            if oof is None:
                oof = np.zeros((len(X), *out.shape[1:]))
            oof[val_idx] = out
            per_fold.append(_fold_metrics(name, y.iloc[val_idx], out))
        frame = pd.DataFrame(per_fold)
        if oof is None:  # no folds: no metric was computed, so the lookup of ``metric`` fails as before
            raise KeyError(metric)
        result = CVResult(
            candidate, dict(params), frame.mean().to_dict(), frame.std(ddof=0).to_dict(), oof, grid_scores
        )
        grid_scores.append((dict(params), result.mean[metric]))
        if best is None or sign * result.mean[metric] > sign * best.mean[metric]:
            best = result
    assert best is not None
    return best


def selection_key(name: str, result: CVResult) -> float:
    """Sort key of a candidate's cross-validation: its selection metric, negated when lower is better."""
    metric = TASKS[name].selection
    return result.mean[metric] if _higher_is_better(metric) else -result.mean[metric]
