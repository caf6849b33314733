"""Scoring of tabular artifacts: raw outputs, the card's metrics and baselines, and ``evaluate``.

One definition of each metric for cross-validation, the test split, the card's baselines and
the CLI's ``evaluate``, so that they can be compared.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
from scipy.stats import rankdata
from sklearn.metrics import f1_score
from threadpoolctl import threadpool_limits

from vitalcheck.cards import ModelCard, verify_artifact
from vitalcheck.catalog import TABULAR_MODELS, ModelSpec
from vitalcheck.training import loaders
from vitalcheck.training.metrics import classification_metrics, interval_metrics, regression_metrics
from vitalcheck.training.tasks import INTERVAL_LEVEL, TASKS


def predict_outputs(spec: ModelSpec, model: Any, X: pd.DataFrame) -> np.ndarray:
    """Raw outputs of an artifact.

    Returns:
        classifier: (n_rows, n_classes) probabilities in catalog class order;
        regressor: (n_rows,) predictions in ``spec.target_unit``;
        interval regressor (tuple central, lower, upper): (n_rows, 3) columns central, lower, upper,
        with ``lower <= central <= upper`` enforced as the service does (a single regressor, as in
        cross-validation: (n_rows,)).

    """
    X = X[spec.feature_names]
    if spec.kind == "classifier":
        return np.asarray(model.predict_proba(X), dtype=np.float64)
    if isinstance(model, tuple):
        central, lower, upper = (np.asarray(m.predict(X), dtype=np.float64) for m in model)
        return np.column_stack([central, np.minimum(lower, central), np.maximum(upper, central)])
    return np.asarray(model.predict(X), dtype=np.float64)


def metrics_from_outputs(
    name: str, y: pd.Series | np.ndarray, outputs: np.ndarray, threshold: float | None = None
) -> dict[str, float]:
    """Compute the card's test metrics from raw outputs (see :func:`predict_outputs`).

    Classifiers: ``roc_auc``, ``brier_score``, ``balanced_accuracy`` (at ``threshold``; arg-max
    when None) plus the task's extras (stroke ``pr_auc``, sleep ``macro_f1``, breast cancer
    ``malignant_recall``). Regressors: ``rmse``, ``mae``, ``r2``; insurance also
    ``interval_coverage`` and ``interval_mean_width_usd``.
    """
    spec = TABULAR_MODELS[name]
    cfg = TASKS[name]
    if spec.kind == "classifier":
        out = classification_metrics(y, outputs, spec.classes, threshold, cfg.extra_metrics)
        if cfg.positive_recall_name and "positive_recall" in out:
            out[cfg.positive_recall_name] = out.pop("positive_recall")
        return out
    if spec.kind == "interval_regressor":
        out = regression_metrics(y, outputs[:, 0])
        interval = interval_metrics(y, outputs[:, 1], outputs[:, 2])
        out["interval_coverage"] = interval["interval_coverage"]
        out["interval_mean_width_usd"] = interval["interval_mean_width"]
        return out
    return regression_metrics(y, outputs)


def baseline_metrics(name: str, y_train: pd.Series, y_test: pd.Series) -> dict[str, float]:
    """Metrics of the trivial predictor fitted on ``y_train`` and scored on ``y_test``.

    Classifiers: the training class frequencies for every row (arg-max = majority class).
    Regressors: the training mean; insurance's interval: the training 5 % and 95 % quantiles.
    """
    spec = TABULAR_MODELS[name]
    n = len(y_test)
    if spec.kind == "classifier":
        train = np.asarray(y_train, dtype=object)
        prior = np.array([np.mean(train == c) for c in spec.classes])
        return metrics_from_outputs(name, y_test, np.tile(prior, (n, 1)), threshold=None)
    mean = float(np.mean(y_train))
    if spec.kind == "interval_regressor":
        lo, hi = np.quantile(np.asarray(y_train, dtype=float), [(1 - INTERVAL_LEVEL) / 2, (1 + INTERVAL_LEVEL) / 2])
        return metrics_from_outputs(name, y_test, np.tile([mean, lo, hi], (n, 1)))
    return metrics_from_outputs(name, y_test, np.full(n, mean))


def load_artifact(name: str, artifacts_dir: str | Path) -> tuple[Any, ModelCard]:
    """Check an artifact's sha256 against its card, then unpickle it.

    Raises:
        vitalcheck.cards.ArtifactCheckError: the artifact or card is missing or does not match.

    """
    spec = TABULAR_MODELS[name]
    artifacts_dir = Path(artifacts_dir)
    card = verify_artifact(artifacts_dir / spec.artifact, artifacts_dir / spec.card_file)
    return joblib.load(artifacts_dir / spec.artifact), card


def evaluate_frame(name: str, model: Any, card: ModelCard, X: pd.DataFrame, y: pd.Series) -> dict[str, float]:
    """Metrics of a loaded artifact on given rows, with the card's decision threshold."""
    spec = TABULAR_MODELS[name]
    threshold = card.extra.get("threshold") if spec.kind == "classifier" else None
    return metrics_from_outputs(name, y, predict_outputs(spec, model, X), threshold)


def evaluate(name: str, data: str | Path, artifacts_dir: str | Path) -> dict[str, float]:
    """Score a saved model on every row of a file in the data set's source format.

    Args:
        name: tabular model name.
        data: CSV in the shared data set's format (columns and codes), with the target column.
        artifacts_dir: directory holding the artifact and its card.

    Returns:
        The card's metric names with their values on the file's rows.

    Raises:
        vitalcheck.cards.ArtifactCheckError: artifact/card missing or sha256 mismatch.
        ValueError: the file cannot be parsed, or a class is absent (AUC undefined).

    """
    model, card = load_artifact(name, artifacts_dir)
    X, y = loaders.load(name, data)
    with threadpool_limits(limits=1):
        return evaluate_frame(name, model, card, X, y)


def _headline(name: str, y: np.ndarray, outputs: np.ndarray) -> float:
    """The task's selection metric, computed directly (it runs once per bootstrap resample).

    ROC AUC by the Mann-Whitney rank formula, macro-F1 of the arg-max class, RMSE of the central
    value: the same numbers :func:`metrics_from_outputs` reports, about 50 times faster.
    """
    spec = TABULAR_MODELS[name]
    if spec.kind != "classifier":
        central = outputs[:, 0] if outputs.ndim == 2 else outputs
        return float(np.sqrt(np.mean((np.asarray(y, dtype=np.float64) - central) ** 2)))
    if len(spec.classes) == 2:
        positive = np.asarray(y, dtype=object) == spec.classes[1]
        ranks = rankdata(outputs[:, 1])
        n_pos, n_neg = int(positive.sum()), int((~positive).sum())
        return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
    predicted = np.asarray(spec.classes, dtype=object)[np.argmax(outputs, axis=1)]
    return float(f1_score(np.asarray(y, dtype=object), predicted, labels=list(spec.classes), average="macro"))


def bootstrap_difference(
    name: str, y: pd.Series, served: np.ndarray, reference: np.ndarray, *, n_boot: int = 1000, seed: int = 0
) -> dict[str, Any]:
    """Paired bootstrap of the task's headline metric, served model minus reference, on the same rows.

    The metric is the task's selection metric (ROC AUC, macro-F1 or RMSE). Rows are resampled
    with replacement ``n_boot`` times (classifier resamples missing a class are skipped).

    Returns:
        ``metric``, ``served``, ``reference``, ``difference`` and its percentile ``ci95`` [lo, hi]
        (for RMSE a positive difference is a cost; for the others a negative one is).

    """
    y_arr = np.asarray(y)
    rng = np.random.default_rng(seed)
    diffs = []
    spec = TABULAR_MODELS[name]
    for _ in range(n_boot):
        rows = rng.integers(0, len(y_arr), len(y_arr))
        if spec.kind == "classifier" and len(set(y_arr[rows])) < len(spec.classes):
            continue
        diffs.append(_headline(name, y_arr[rows], served[rows]) - _headline(name, y_arr[rows], reference[rows]))
    a, b = _headline(name, y_arr, served), _headline(name, y_arr, reference)
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    return {
        "metric": TASKS[name].selection,
        "served": a,
        "reference": b,
        "difference": a - b,
        "ci95": [float(lo), float(hi)],
        "n_boot": len(diffs),
    }
