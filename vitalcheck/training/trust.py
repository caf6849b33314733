"""The clinical-trust facts of a trained model: constraints, recalibration, calibration, out-of-distribution rate.

Everything here is measured on the training part (out-of-fold) or the test split and goes into
the model card's ``extra`` (and from there into ``MODEL_CARDS.md`` and ``POST /api/v1/models``).
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import logit
from sklearn.pipeline import Pipeline

from vitalcheck.catalog import DIRECTION_SOURCES, ModelSpec
from vitalcheck.training.calibration import (
    P_CLIP,
    binary_calibration,
    fit_logit_recalibration,
    multiclass_calibration,
    recalibration_helps,
    reliability_diagram_png,
)
from vitalcheck.training.pipelines import SEED

SHIFTED_ROWS_NOTE = (
    "test rows with every column permuted independently across rows: each value stays inside the data's range "
    "and marginal distribution, but the combinations are not those of real records"
)


def constraints(spec: ModelSpec) -> list[dict[str, Any]]:
    """The catalog's expected directions with their sources, for the card."""
    out: list[dict[str, Any]] = []
    for f in spec.features:
        if f.direction:
            out.append(
                {
                    "feature": f.name,
                    "direction": "increasing" if f.direction > 0 else "decreasing",
                    "source": DIRECTION_SOURCES[f.direction_source],
                }
            )
        for category, sign in f.category_directions:
            out.append(
                {
                    "feature": f.name,
                    "category": category,
                    "direction": "increasing" if sign > 0 else "decreasing",
                    "source": DIRECTION_SOURCES[f.direction_source],
                }
            )
    return out


def maybe_recalibrate(model: Pipeline, y_train: pd.Series, oof: np.ndarray, positive: str) -> dict[str, Any]:
    """Recalibrate a binary model's log-odds where the out-of-fold slope interval excludes 1 and it helps.

    ``oof`` are the chosen candidate's out-of-fold probabilities on the training part (n, 2);
    "helps" means a lower log loss on folds not used to fit the recalibration. The fitted
    slope/intercept are applied to the final model (``a·log-odds + b``), which keeps its
    explanations exact (they scale by ``a``).
    """
    y01 = (np.asarray(y_train, dtype=object) == positive).astype(float)
    p = np.clip(oof[:, 1], P_CLIP, 1 - P_CLIP)
    before = binary_calibration(y01, p, seed=SEED)
    z = logit(p)
    check = recalibration_helps(z, y01, seed=SEED)
    decided = not before["slope_ci_contains_1"] and bool(check["helps"])
    facts: dict[str, Any] = {
        "out_of_fold_calibration": before,
        "recalibration_check": check,
        "recalibrated": decided,
    }
    if decided:
        a, b = fit_logit_recalibration(z, y01)
        model.set_params(model__logit_slope=a, model__logit_intercept=b)
        facts["recalibration"] = {
            "logit_slope": a,
            "logit_intercept": b,
            "fitted_on": "out-of-fold training predictions",
        }
    return facts


def calibration(spec: ModelSpec, y_test: pd.Series, proba: np.ndarray, png: Path) -> dict[str, Any]:
    """Test-split calibration (slope, intercept, 95 % bootstrap intervals, ECE, Brier) and the diagram.

    Writes the reliability diagram to ``png`` and returns the figures plus the PNG (base64).
    """
    labels = np.asarray(y_test, dtype=object)
    if len(spec.classes) == 2:
        y01 = (labels == spec.classes[1]).astype(float)
        report = binary_calibration(y01, proba[:, 1], seed=SEED)
        curves = {spec.classes[1]: (y01, proba[:, 1])}
    else:
        report = multiclass_calibration(labels, proba, spec.classes, seed=SEED)
        curves = {c: ((labels == c).astype(float), proba[:, k]) for k, c in enumerate(spec.classes)}
    reliability_diagram_png(png, curves, f"{spec.name}: reliability on the test split (n={len(labels)})")
    return {
        "test_split": report,
        "reliability_diagram": png.name,
        "reliability_diagram_png_base64": base64.b64encode(png.read_bytes()).decode("ascii"),
    }


def out_of_distribution(model: Pipeline, X_train: pd.DataFrame, X_test: pd.DataFrame) -> dict[str, Any]:
    """Rate of records above the training rows' 99th percentile: on the test split and on shifted rows."""
    encode, domain = model.named_steps["preprocess"], model.named_steps["domain"]
    rng = np.random.default_rng(SEED)
    shifted = X_test.copy()
    for column in shifted.columns:
        shifted[column] = shifted[column].to_numpy()[rng.permutation(len(shifted))]
    return {
        "method": "squared Mahalanobis distance (Ledoit-Wolf shrinkage) in the standardised preprocessed space with "
        "missing-value indicators, as a percentile of the training rows' own distances",
        "warning_above_percentile": 99,
        "training_rate": float(np.mean(domain.unusual(encode.transform(X_train)))),
        "test_rate": float(np.mean(domain.unusual(encode.transform(X_test)))),
        "shifted_rate": float(np.mean(domain.unusual(encode.transform(shifted)))),
        "shifted_rows": SHIFTED_ROWS_NOTE,
        "rows_test": len(X_test),
    }


def explanation_method(spec: ModelSpec) -> dict[str, str]:
    """How explanations are computed and on which scale (card and API)."""
    if spec.kind == "classifier":
        scale = (
            "log-odds of the positive class"
            if len(spec.classes) == 2
            else "softmax score (log-odds up to a per-record constant) of each class"
        )
    else:
        scale = spec.target_unit
    return {
        "method": "exact interventional SHAP values of the additive model's terms (one-hot columns summed back to their "
        "field; a two-field term split by its two-player Shapley value)",
        "scale": scale,
        "baseline": "the mean model output over the training rows",
        "identity": "base_value + sum(contributions) = output_value (to 1e-9)",
    }
