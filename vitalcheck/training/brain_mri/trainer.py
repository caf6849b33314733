"""The two entry points of the brain-MRI model: :func:`train` (artifact and card) and :func:`evaluate`.

``train`` runs the whole protocol of :mod:`vitalcheck.training.brain_mri` and records every
choice and check in the model card; ``evaluate`` scores an exported graph, as served, on a manifest.
"""

from __future__ import annotations

import json
import logging
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from vitalcheck.cards import CardDataset, verify_artifact
from vitalcheck.catalog import BRAIN_TUMOR
from vitalcheck.imaging import PREPROCESSING, normalize, pil_to_unit
from vitalcheck.predictors.mri import (
    INPUT_NAME,
    OUTPUT_NAME,
    golden_input,
    load_onnx_session,
    predict_probabilities,
)
from vitalcheck.training.brain_mri.audits import leakage_report, shortcut_checks
from vitalcheck.training.brain_mri.data import (
    CLASSES,
    DATASET_FOLDER,
    MANIFEST,
    PHASH_GROUP_DISTANCE,
    grouped_validation_mask,
    load_images,
    phash_groups,
    read_manifest,
    resolve_manifest,
)
from vitalcheck.training.brain_mri.fit import (
    AUG_BRIGHTNESS,
    AUG_CONTRAST,
    AUG_EQUALIZE,
    AUG_GAMMA,
    AUG_ROTATION_DEG,
    AUG_SCALE,
    AUG_TRANSLATE,
    BATCH_SIZE,
    EPOCHS,
    LABEL_SMOOTHING,
    LEARNING_RATE,
    SEED,
    TORCH_THREADS,
    WEIGHT_DECAY,
    fit,
)
from vitalcheck.training.brain_mri.metrics import card_metrics, classification_report, majority_baseline
from vitalcheck.training.brain_mri.network import (
    ONNX_OPSET,
    WIDTH,
    describe_model,
    export_onnx,
    fit_temperature,
    predict_logits,
    softmax,
)

logger = logging.getLogger(__name__)

VAL_FRACTION = 0.15
ONNX_PARITY_TOLERANCE = 1e-4
GOLDEN_SEEDS = (0, 1, 2)
_VALIDATION_METRICS = ("accuracy", "macro_f1", "log_loss", "expected_calibration_error")


def _framework_versions() -> dict[str, str]:
    import onnx
    import onnxruntime
    import PIL
    import torch

    return {
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "numpy": np.__version__,
        "pillow": PIL.__version__,
        "python": platform.python_version(),
    }


def train(
    data_dir: Path,
    out_dir: Path,
    *,
    epochs: int = EPOCHS,
    seed: int = SEED,
    log: Callable[[str], None] | None = None,
) -> None:
    """Train, export and document the brain-tumour classifier.

    Writes ``out_dir/brain_tumor_cnn.onnx`` and ``out_dir/brain_tumor_cnn.card.json``.

    Args:
        data_dir: the shared data directory (holding ``brain_mri/manifest.csv``) or the
            ``brain_mri`` folder itself.
        out_dir: the artifacts directory (created if absent).
        epochs: training epochs (the default is what the committed artifact used).
        seed: seed of the split, weights, batch order and augmentation.
        log: optional progress callback (one short line per step and per epoch), e.g. the CLI's.

    Raises:
        FileNotFoundError: the manifest is missing.
        ValueError: the manifest is malformed, or no grouped validation split can be formed.
        RuntimeError: the ONNX graph is too large, fails the checker, or its outputs differ
            from PyTorch's by more than :data:`ONNX_PARITY_TOLERANCE`.

    """
    import torch

    from vitalcheck.training.model_cards import dataset_provenance, new_card, write_card

    t_start = time.perf_counter()
    torch.set_num_threads(TORCH_THREADS)
    manifest = resolve_manifest(Path(data_dir))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    def step(message: str) -> None:
        if log is not None:
            log(message)

    step("decoding images")
    t0 = time.perf_counter()
    train_all = load_images(manifest, "train")
    test = load_images(manifest, "test")
    decode_s = time.perf_counter() - t0
    logger.info("brain_tumor: decoded %d train + %d test images in %.1f s", len(train_all), len(test), decode_s)
    unit_mean, unit_std = float(train_all.unit.mean()), float(train_all.unit.std())
    if abs(unit_mean - PREPROCESSING.mean) > 0.01 or abs(unit_std - PREPROCESSING.std) > 0.01:
        logger.warning(
            "brain_tumor: training images have mean %.4f / std %.4f, spec says %.4f / %.4f",
            unit_mean,
            unit_std,
            PREPROCESSING.mean,
            PREPROCESSING.std,
        )

    groups = phash_groups(train_all.phash)
    val_mask = grouped_validation_mask(train_all.y, groups, VAL_FRACTION, seed)
    fit_set, val = train_all.subset(~val_mask), train_all.subset(val_mask)
    if len(val) == 0 or len(np.unique(fit_set.y)) < len(CLASSES):
        raise ValueError(
            "cannot form a grouped validation split: the near-duplicate groups are too large for a "
            f"{VAL_FRACTION:.0%} share per class, or a class has no training images"
        )
    group_sizes = np.bincount(groups)
    logger.info(
        "brain_tumor: %d hash groups (largest %d); %d fit / %d validation images",
        len(group_sizes),
        group_sizes.max(),
        len(fit_set),
        len(val),
    )

    result = fit(fit_set, val, epochs=epochs, seed=seed, report=step)
    step("exporting to ONNX and evaluating")
    val_logits = predict_logits(result.model, val.unit)
    temperature = fit_temperature(val_logits, val.y)
    val_raw = classification_report(val.y, softmax(val_logits))
    val_cal = classification_report(val.y, softmax(val_logits / temperature))

    artifact = out_dir / BRAIN_TUMOR.artifact
    export_onnx(result.model, temperature, artifact)
    session = load_onnx_session(artifact, intra_op_threads=TORCH_THREADS, inter_op_threads=1)
    test_batch = normalize(test.unit)[:, None]
    test_proba = predict_probabilities(session, test_batch)
    torch_proba = softmax(predict_logits(result.model, test.unit) / temperature)
    onnx_diff = float(np.max(np.abs(test_proba - torch_proba)))
    logger.info("brain_tumor: ONNX Runtime vs PyTorch max abs difference %.3g", onnx_diff)
    if not onnx_diff < ONNX_PARITY_TOLERANCE:
        raise RuntimeError(f"ONNX Runtime and PyTorch disagree by {onnx_diff:.3g} (>= {ONNX_PARITY_TOLERANCE})")

    report = classification_report(test.y, test_proba)
    logger.info("brain_tumor test: %s", json.dumps({k: v for k, v in card_metrics(report).items()}))
    step("shortcut checks")
    shortcuts = shortcut_checks(session, train_all, test, manifest, test_proba)
    leakage = leakage_report(train_all, test, test_proba)

    golden = [
        {
            "input": {"seed": s, "shape": list(PREPROCESSING.input_shape)},
            "output": [float(p) for p in predict_probabilities(session, golden_input(s))[0]],
        }
        for s in GOLDEN_SEEDS
    ]
    provenance, licence = dataset_provenance(manifest.parent.parent, DATASET_FOLDER)
    n_params = sum(p.numel() for p in result.model.parameters())
    total_s = time.perf_counter() - t_start
    card = new_card(
        BRAIN_TUMOR,
        artifact,
        framework="onnx",
        versions=_framework_versions(),
        estimator=describe_model(),
        candidates={
            f"cnn_w{WIDTH}_128px (best epoch {result.best_epoch})": {
                "val_accuracy": round(val_cal["accuracy"], 4),
                "val_macro_f1": round(val_cal["macro_f1"], 4),
                "val_log_loss": round(val_cal["log_loss"], 4),
                "val_expected_calibration_error": round(val_cal["expected_calibration_error"], 4),
            },
            "majority_class": {
                "val_accuracy": round(float(np.mean(val.y == np.bincount(fit_set.y).argmax())), 4),
            },
        },
        features=[],
        output={
            "classes": list(CLASSES),
            "meaning": "softmax probabilities of the four classes (sum 1), in this order",
            "onnx_input": {
                "name": INPUT_NAME,
                "shape": ["batch", 1, PREPROCESSING.height, PREPROCESSING.width],
                "dtype": "float32",
            },
            "onnx_output": {
                "name": OUTPUT_NAME,
                "shape": ["batch", len(CLASSES)],
                "meaning": "probabilities (temperature-scaled softmax inside the graph)",
            },
        },
        dataset=CardDataset(
            file=f"{DATASET_FOLDER}/{MANIFEST}",
            rows_total=len(train_all) + len(test),
            rows_train=len(train_all),
            rows_test=len(test),
            provenance=provenance,
            licence=licence,
        ),
        split=(
            f"The manifest's own split: {len(train_all)} train / {len(test)} test images (not made by patient). "
            f"Validation: {len(val)} of the train images ({VAL_FRACTION:.0%} per class), drawn as whole groups of "
            f"near-identical slices: 64-bit perceptual hash (imagehash.phash), images linked when their hashes differ "
            f"in at most {PHASH_GROUP_DISTANCE} bits, groups = connected components ({len(group_sizes)} groups, "
            f"largest {int(group_sizes.max())}); used for epoch selection and temperature scaling. The remaining "
            f"{len(fit_set)} images were used for fitting. "
            f"{leakage['test_share_with_near_duplicate_in_train']:.0%} of test images have a near-duplicate in train "
            "(extra.leakage gives the metrics without them)."
        ),
        metrics=card_metrics(report),
        baseline_metrics=majority_baseline(train_all.y, test.y),
        extra={
            "preprocessing": PREPROCESSING.as_dict(),
            "training_images_mean_std": [round(unit_mean, 4), round(unit_std, 4)],
            "training_time_s": round(result.fit_time_s, 1),
            "total_time_s": round(total_s, 1),
            "decode_time_s": round(decode_s, 1),
            "torch_threads": TORCH_THREADS,
            "epochs": epochs,
            "best_epoch": result.best_epoch,
            "history": result.history,
            "hyperparameters": {
                "batch_size": BATCH_SIZE,
                "optimizer": "AdamW",
                "learning_rate_peak": LEARNING_RATE,
                "schedule": "one-cycle (15% warm-up, cosine)",
                "weight_decay": WEIGHT_DECAY,
                "label_smoothing": LABEL_SMOOTHING,
                "class_weights": "proportional to 1/sqrt(class frequency)",
                "seed": seed,
                "augmentation": {
                    "horizontal_flip": 0.5,
                    "rotation_deg": AUG_ROTATION_DEG,
                    "scale": AUG_SCALE,
                    "translate_fraction": AUG_TRANSLATE,
                    "gamma": list(AUG_GAMMA),
                    "contrast": AUG_CONTRAST,
                    "brightness": AUG_BRIGHTNESS,
                    "histogram_equalisation": AUG_EQUALIZE,
                },
            },
            "parameters": int(n_params),
            "onnx_bytes": artifact.stat().st_size,
            "onnx_opset": ONNX_OPSET,
            "onnx_max_abs_diff": onnx_diff,
            "temperature": round(temperature, 4),
            "validation_before_temperature": {k: round(float(val_raw[k]), 4) for k in _VALIDATION_METRICS},
            "validation_after_temperature": {k: round(float(val_cal[k]), 4) for k in _VALIDATION_METRICS},
            "test_log_loss": round(report["log_loss"], 4),
            "confusion_matrix": {
                "rows": "true class",
                "columns": "predicted class",
                "classes": list(CLASSES),
                "matrix": report["confusion_matrix"],
            },
            "shortcut_checks": shortcuts,
            "leakage": leakage,
            "tumour_only_macro_f1_definition": (
                "test images of the three tumour classes only, predicted by arg-max over the three tumour "
                "probabilities; macro-F1 over glioma, meningioma, pituitary (all from one source collection)"
            ),
        },
        golden=golden,
    )
    write_card(card, out_dir / BRAIN_TUMOR.card_file)
    logger.info("brain_tumor: wrote %s and its card in %.0f s (fit %.0f s)", artifact, total_s, result.fit_time_s)


def evaluate(model_path: Path, manifest: Path, *, split: str | None = "test", threads: int = 2) -> dict[str, Any]:
    """Score an exported graph on the images of a manifest in the shared format.

    Args:
        model_path: the ``.onnx`` file. When its card lies beside it, the sha256 is checked first.
        manifest: CSV with ``path`` and ``label`` (and optionally ``split``); paths are
            relative to the manifest's folder.
        split: rows of this split only (default ``"test"``; ignored if the file has no
            ``split`` column); None scores every row.
        threads: ONNX Runtime intra-op threads.

    Returns:
        ``model``, ``manifest``, ``split``, ``n_images``, ``accuracy``, ``macro_f1``,
        ``recall_<class>``, ``tumour_only_macro_f1``, ``expected_calibration_error``,
        ``log_loss``, ``classes`` and ``confusion_matrix`` (rows = true, columns = predicted).

    Raises:
        FileNotFoundError: the model or manifest is missing.
        vitalcheck.cards.ArtifactCheckError: the card beside the model does not match it.
        ValueError: see :func:`read_manifest`.

    """
    model_path, manifest = Path(model_path), Path(manifest)
    if not manifest.is_file():
        raise FileNotFoundError(f"manifest {manifest} does not exist")
    card_path = model_path.with_name(model_path.name.rsplit(".", 1)[0] + ".card.json")
    if card_path.is_file():
        verify_artifact(model_path, card_path)
    session = load_onnx_session(model_path, intra_op_threads=threads, inter_op_threads=1)
    frame = read_manifest(manifest, split)
    root = manifest.parent
    y = np.array([CLASSES.index(label) for label in frame["label"]], dtype=np.int64)
    probs = []
    for start in range(0, len(frame), 256):
        batch = []
        for rel in frame["path"].iloc[start : start + 256]:
            with Image.open(root / rel) as img:
                img.load()
                batch.append(normalize(pil_to_unit(img)))
        probs.append(predict_probabilities(session, np.stack(batch)[:, None]))
    report = classification_report(y, np.concatenate(probs))
    return {
        "model": str(model_path),
        "manifest": str(manifest),
        "split": split if "split" in pd.read_csv(manifest, nrows=0).columns else None,
        "classes": list(CLASSES),
        **report,
    }
