"""Audits of the trained model recorded in its card: source shortcuts and train/test near-duplicates.

The no-tumour slices come from another collection than the tumour slices, and the manifest's
split was not made by patient: these checks measure how much either could flatter the test metrics.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from vitalcheck.imaging import PREPROCESSING, normalize, pil_to_unit
from vitalcheck.predictors.mri import predict_probabilities
from vitalcheck.training.brain_mri.data import CLASSES, PHASH_GROUP_DISTANCE, ImageSet, hamming_min_to, ring_mask
from vitalcheck.training.brain_mri.fit import SEED
from vitalcheck.training.brain_mri.metrics import card_metrics, classification_report


def _rounded_card_metrics(report: dict[str, Any]) -> dict[str, float]:
    return {k: round(float(v), 4) for k, v in card_metrics(report).items()}


def _feature_classifier_scores(name: str, x_train, y_train, x_test, y_test) -> dict[str, float]:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    out: dict[str, float] = {}
    notumor = CLASSES.index("notumor")
    for kind, clf in (
        ("logreg", make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000))),
        ("gbm", HistGradientBoostingClassifier(random_state=SEED, max_iter=200)),
    ):
        clf.fit(x_train, y_train)
        proba = clf.predict_proba(x_test)
        rep = classification_report(y_test, proba)
        out[f"{name}_{kind}_accuracy"] = round(rep["accuracy"], 4)
        out[f"{name}_{kind}_macro_f1"] = round(rep["macro_f1"], 4)
        out[f"{name}_{kind}_tumour_only_macro_f1"] = round(rep["tumour_only_macro_f1"], 4)
        out[f"{name}_{kind}_notumor_vs_tumour_auc"] = round(
            float(roc_auc_score(y_test == notumor, proba[:, notumor])), 4
        )
    return out


def shortcut_checks(session, train: ImageSet, test: ImageSet, manifest: Path, test_proba: np.ndarray) -> dict[str, Any]:
    """Evidence for source shortcuts (Br35H no-tumour slices vs figshare tumour slices).

    1. Classifiers (logistic regression, gradient boosting) fitted on train using only the
       intensity statistics of the image *border* ring (1/16 of the side), and only the
       whole-image intensity histogram (no spatial information), scored on test.
    2. The served model on test images whose inside is blanked (only the border ring kept):
       the share of each class it then predicts; and on test images whose border ring is
       blanked (metrics).
    3. The served model on histogram-equalised test images: metrics, the share of unchanged
       predictions and the share of tumour images then called "notumor".

    Returns:
        A JSON-serialisable dict of the results, with a short note on each.

    """
    out: dict[str, Any] = {}
    out["feature_classifiers"] = {
        **_feature_classifier_scores("border", train.border, train.y, test.border, test.y),
        **_feature_classifier_scores("histogram", train.histogram, train.y, test.histogram, test.y),
    }
    # 2. border only, and everything but the border, through the model
    notumor = CLASSES.index("notumor")
    mask = ring_mask(PREPROCESSING.height, PREPROCESSING.width)
    blanked = np.where(mask[None], test.unit, 0.0).astype(np.float32)
    proba = predict_probabilities(session, normalize(blanked)[:, None])
    pred = proba.argmax(axis=1)
    out["model_on_border_only"] = {
        "accuracy": round(float(np.mean(pred == test.y)), 4),
        "predicted_share": {c: round(float(np.mean(pred == i)), 4) for i, c in enumerate(CLASSES)},
        "notumor_recall": round(float(np.mean(pred[test.y == notumor] == notumor)), 4),
        "tumour_images_predicted_notumor": round(float(np.mean(pred[test.y != notumor] == notumor)), 4),
    }
    inside = np.where(mask[None], 0.0, test.unit).astype(np.float32)
    rep = classification_report(test.y, predict_probabilities(session, normalize(inside)[:, None]))
    out["model_without_border"] = _rounded_card_metrics(rep)
    # 3. histogram equalisation
    root = manifest.parent
    eq = np.empty_like(test.unit)
    for i, rel in enumerate(test.paths):
        with Image.open(root / rel) as img:
            eq[i] = pil_to_unit(ImageOps.equalize(img.convert("L")))
    eq_proba = predict_probabilities(session, normalize(eq)[:, None])
    rep = classification_report(test.y, eq_proba)
    eq_pred = eq_proba.argmax(axis=1)
    out["model_on_histogram_equalised"] = {
        **_rounded_card_metrics(rep),
        "unchanged_predictions": round(float(np.mean(eq_pred == test_proba.argmax(1))), 4),
        "tumour_images_predicted_notumor": round(float(np.mean(eq_pred[test.y != notumor] == notumor)), 4),
        "confusion_matrix": rep["confusion_matrix"],
    }
    out["notes"] = (
        "feature_classifiers: test scores of classifiers that see only intensity statistics of the border ring "
        "(outer 1/16 of each side) or of the whole image (no anatomy); a high notumor-vs-tumour AUC there means "
        "the source collection is recognisable without anatomy. model_on_border_only: the served model with the "
        "inside of every test image blanked; model_without_border: with the border ring blanked. model_on_histogram_equalised: the served model on histogram-equalised "
        "test images (removes intensity-distribution cues)."
    )
    return out


def leakage_report(train: ImageSet, test: ImageSet, test_proba: np.ndarray) -> dict[str, Any]:
    """Near-duplicate overlap between the given test split and train, and metrics without it.

    Returns:
        Share of test images whose nearest train image is within :data:`PHASH_GROUP_DISTANCE`
        bits (and exact-hash duplicates), and the test metrics restricted to the images
        without such a near-duplicate.

    """
    dist = hamming_min_to(test.phash, train.phash)
    near = dist <= PHASH_GROUP_DISTANCE
    out: dict[str, Any] = {
        "phash_distance_threshold": PHASH_GROUP_DISTANCE,
        "test_share_with_near_duplicate_in_train": round(float(near.mean()), 4),
        "test_share_with_identical_hash_in_train": round(float(np.mean(dist == 0)), 4),
        "near_duplicate_share_by_class": {
            c: round(float(near[test.y == i].mean()), 4) for i, c in enumerate(CLASSES) if np.any(test.y == i)
        },
    }
    if (~near).sum() > 0:
        rep = classification_report(test.y[~near], test_proba[~near])
        out["metrics_without_near_duplicates"] = {
            "n_images": int((~near).sum()),
            **_rounded_card_metrics(rep),
        }
    return out
