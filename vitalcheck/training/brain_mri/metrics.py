"""Metrics of the four-class MRI model (numpy only): one definition for validation, test, audits and evaluation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from vitalcheck.training.brain_mri.data import CLASSES

TUMOUR_CLASSES: tuple[str, ...] = tuple(c for c in CLASSES if c != "notumor")
ECE_BINS = 15


def expected_calibration_error(proba: np.ndarray, y: np.ndarray, bins: int = ECE_BINS) -> float:
    """Top-label expected calibration error with equal-width confidence bins.

    Args:
        proba: (n, k) probabilities.
        y: (n,) true class indices.
        bins: number of bins over [0, 1].

    Returns:
        Σ_b (n_b / n) · |accuracy_b − mean confidence_b|, in [0, 1].

    """
    conf = proba.max(axis=1)
    correct = (proba.argmax(axis=1) == y).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        sel = which == b
        if sel.any():
            ece += sel.mean() * abs(correct[sel].mean() - conf[sel].mean())
    return float(ece)


def log_loss(proba: np.ndarray, y: np.ndarray) -> float:
    """Mean negative log-likelihood (nats) of the true classes, probabilities clipped to [1e-12, 1]."""
    return float(-np.mean(np.log(np.clip(proba[np.arange(len(y)), y], 1e-12, 1.0))))


def _f1_per_class(y: np.ndarray, pred: np.ndarray, labels: Sequence[int]) -> np.ndarray:
    out = []
    for k in labels:
        tp = np.sum((pred == k) & (y == k))
        fp = np.sum((pred == k) & (y != k))
        fn = np.sum((pred != k) & (y == k))
        out.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return np.asarray(out, dtype=np.float64)


def classification_report(y: np.ndarray, proba: np.ndarray) -> dict[str, Any]:
    """Test metrics of the four-class model.

    Args:
        y: (n,) true class indices (:data:`CLASSES` order).
        proba: (n, 4) probabilities in :data:`CLASSES` order.

    Returns:
        ``accuracy``, ``macro_f1``, ``recall_<class>`` for every class,
        ``tumour_only_macro_f1`` (images of the three tumour classes only, predicted by
        arg-max over the three tumour probabilities, macro-F1 over those three),
        ``expected_calibration_error`` (top label, 15 bins), ``log_loss`` (nats), and
        ``confusion_matrix`` (rows = true class, columns = predicted, :data:`CLASSES` order).
        Metrics are floats; undefined recalls (class absent) are NaN.

    """
    proba = np.asarray(proba, dtype=np.float64)
    pred = proba.argmax(axis=1)
    k = len(CLASSES)
    out: dict[str, Any] = {
        "n_images": len(y),
        "accuracy": float(np.mean(pred == y)),
        "macro_f1": float(_f1_per_class(y, pred, range(k)).mean()),
    }
    for i, c in enumerate(CLASSES):
        out[f"recall_{c}"] = float(np.mean(pred[y == i] == i)) if np.any(y == i) else float("nan")
    tumour_idx = [CLASSES.index(c) for c in TUMOUR_CLASSES]
    is_tumour = np.isin(y, tumour_idx)
    if is_tumour.any():
        sub_pred = np.asarray(tumour_idx)[proba[is_tumour][:, tumour_idx].argmax(axis=1)]
        out["tumour_only_macro_f1"] = float(_f1_per_class(y[is_tumour], sub_pred, tumour_idx).mean())
    else:
        out["tumour_only_macro_f1"] = float("nan")
    out["expected_calibration_error"] = expected_calibration_error(proba, y)
    out["log_loss"] = log_loss(proba, y)
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (y, pred), 1)
    out["confusion_matrix"] = cm.tolist()
    return out


def card_metrics(report: dict[str, Any]) -> dict[str, float]:
    """The metrics of a :func:`classification_report` that a model card records, rounded to 6 decimals."""
    keep = [
        "accuracy",
        "macro_f1",
        *[f"recall_{c}" for c in CLASSES],
        "tumour_only_macro_f1",
        "expected_calibration_error",
    ]
    return {m: round(float(report[m]), 6) for m in keep}


def majority_baseline(train_y: np.ndarray, test_y: np.ndarray) -> dict[str, float]:
    """Card metrics on ``test_y`` of the predictor that always answers the training class frequencies."""
    prior = np.bincount(train_y, minlength=len(CLASSES)) / len(train_y)
    proba = np.tile(prior, (len(test_y), 1))
    return card_metrics(classification_report(test_y, proba))
