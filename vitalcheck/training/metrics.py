"""Test and validation metrics of the tabular models, and their trivial baselines.

Classifier metrics take labels (catalog class strings) and a probability matrix whose
columns follow the catalog class order (positive class last for binary tasks).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike
from sklearn.metrics import (
    average_precision_score,
    balanced_accuracy_score,
    f1_score,
    mean_absolute_error,
    r2_score,
    roc_auc_score,
    root_mean_squared_error,
)


def _onehot(y: ArrayLike, classes: Sequence[str]) -> np.ndarray:
    labels = np.asarray(y, dtype=object)
    return np.stack([(labels == c).astype(np.float64) for c in classes], axis=1)


def predict_labels(proba: np.ndarray, classes: Sequence[str], threshold: float | None = None) -> np.ndarray:
    """Turn probabilities into labels.

    Args:
        proba: (n_rows, n_classes) probabilities in ``classes`` order.
        classes: class labels; for binary tasks the positive class last.
        threshold: binary only: predict the positive class when its probability is
            ``>= threshold``; ``None`` (and always for multiclass) means arg-max.

    Returns:
        (n_rows,) object array of labels.

    """
    classes_arr = np.asarray(classes, dtype=object)
    if threshold is not None and len(classes) == 2:
        return np.where(proba[:, 1] >= threshold, classes_arr[1], classes_arr[0]).astype(object)
    return classes_arr[np.argmax(proba, axis=1)]


def classification_metrics(
    y: ArrayLike,
    proba: np.ndarray,
    classes: Sequence[str],
    threshold: float | None = None,
    extra: Sequence[str] = (),
) -> dict[str, float]:
    """Probability and label metrics of a classifier.

    Args:
        y: (n_rows,) true labels, each one of ``classes``.
        proba: (n_rows, n_classes) predicted probabilities in ``classes`` order.
        classes: class order (positive class last for binary).
        threshold: positive-class threshold for the label metrics (binary); arg-max if None.
        extra: additional metrics to compute: ``pr_auc`` (binary average precision),
            ``macro_f1``, ``positive_recall`` (binary; returned under that key).

    Returns:
        ``roc_auc`` (binary, or macro one-vs-rest for multiclass), ``brier_score`` (binary:
        of the positive class; multiclass: mean over classes of the one-vs-rest Brier score),
        ``balanced_accuracy`` and the requested extras, as floats.

    Raises:
        ValueError: a class is absent from ``y`` (AUC undefined) or shapes disagree.

    """
    proba = np.asarray(proba, dtype=np.float64)
    onehot = _onehot(y, classes)
    if proba.shape != onehot.shape:
        raise ValueError(f"proba has shape {proba.shape}, expected {onehot.shape}")
    if (onehot.sum(axis=0) == 0).any():
        raise ValueError("every class must occur in y to compute the AUC")
    labels = predict_labels(proba, classes, threshold)
    y_arr = np.asarray(y, dtype=object)
    binary = len(classes) == 2
    out: dict[str, float] = {}
    if binary:
        out["roc_auc"] = float(roc_auc_score(onehot[:, 1], proba[:, 1]))
        out["brier_score"] = float(np.mean((proba[:, 1] - onehot[:, 1]) ** 2))
    else:
        out["roc_auc"] = float(roc_auc_score(onehot, proba, average="macro", multi_class="ovr"))
        out["brier_score"] = float(np.mean((proba - onehot) ** 2))
    out["balanced_accuracy"] = float(balanced_accuracy_score(y_arr.astype(str), labels.astype(str)))
    if "pr_auc" in extra:
        out["pr_auc"] = float(average_precision_score(onehot[:, 1], proba[:, 1]))
    if "macro_f1" in extra:
        out["macro_f1"] = float(
            f1_score(y_arr.astype(str), labels.astype(str), average="macro", labels=list(classes), zero_division=0)
        )
    if "positive_recall" in extra:
        positive = onehot[:, 1] == 1
        out["positive_recall"] = float(np.mean(labels[positive] == classes[1]))
    return out


def regression_metrics(y: ArrayLike, pred: ArrayLike) -> dict[str, float]:
    """``rmse``, ``mae`` and ``r2`` of a regression, in the target's unit (r2 unitless)."""
    y_arr = np.asarray(y, dtype=np.float64)
    pred_arr = np.asarray(pred, dtype=np.float64)
    return {
        "rmse": float(root_mean_squared_error(y_arr, pred_arr)),
        "mae": float(mean_absolute_error(y_arr, pred_arr)),
        "r2": float(r2_score(y_arr, pred_arr)),
    }


def interval_metrics(y: ArrayLike, lower: ArrayLike, upper: ArrayLike) -> dict[str, float]:
    """Empirical coverage of ``[lower, upper]`` and its mean width (target unit)."""
    y_arr = np.asarray(y, dtype=np.float64)
    lo = np.asarray(lower, dtype=np.float64)
    hi = np.asarray(upper, dtype=np.float64)
    return {
        "interval_coverage": float(np.mean((y_arr >= lo) & (y_arr <= hi))),
        "interval_mean_width": float(np.mean(hi - lo)),
    }


def best_threshold(
    y: ArrayLike, positive_proba: np.ndarray, classes: Sequence[str], min_recall: float | None = None
) -> float:
    """Positive-class threshold that maximises balanced accuracy (on validation predictions).

    Args:
        y: (n_rows,) true labels.
        positive_proba: (n_rows,) predicted probability of ``classes[1]``.
        classes: binary class order, positive last.
        min_recall: if given, only thresholds whose positive-class recall is at least this
            are considered (the highest such threshold is used if none reaches the best
            balanced accuracy).

    Returns:
        The threshold (midway between two validation probabilities, or 0.5); ties go to the
        threshold closest to 0.5.

    """
    positive = np.asarray(y, dtype=object) == classes[1]
    p = np.asarray(positive_proba, dtype=np.float64)
    uniq = np.unique(p)
    candidates = np.unique(np.concatenate([(uniq[:-1] + uniq[1:]) / 2, uniq[:1], [0.5]]))
    best: tuple[float, float, float] | None = None
    for t in candidates:
        pred = p >= t
        recall = float(np.mean(pred[positive]))
        if min_recall is not None and recall < min_recall:
            continue
        spec = float(np.mean(~pred[~positive]))
        score = (recall + spec) / 2
        key = (round(score, 12), -abs(float(t) - 0.5), float(t))
        if best is None or key > best:
            best = key
    if best is None:
        return 0.5
    return float(best[2])
