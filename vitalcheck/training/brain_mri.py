"""Training and evaluation of the brain-tumour MRI classifier (training only: uses torch).

A compact CNN is trained from scratch on 128×128 grayscale slices preprocessed exactly as
the service preprocesses uploads (:mod:`vitalcheck.imaging`), exported to ONNX with a
dynamic batch axis and a softmax output, and described by a model card.

Protocol (see :func:`train`):

* Data: ``brain_mri/manifest.csv`` (``path``, ``label``, ``split``; paths relative to the
  manifest's folder). Every image is decoded and preprocessed once, into memory.
* Validation: 15 % of the *train* split, drawn as whole groups of near-identical slices
  (64-bit perceptual hash, Hamming distance ≤ :data:`PHASH_GROUP_DISTANCE`, connected
  components), because neighbouring slices of one patient are near-duplicates and patient
  ids are not in the data. Used for checkpoint selection and temperature scaling.
* Training: AdamW, one-cycle schedule, class-weighted cross-entropy; augmentation of training
  batches only: flips, small rotations/zooms/shifts, gamma/contrast/brightness jitter, and
  histogram equalisation of a quarter of the images (the intensity histogram alone separates
  the two source collections, so the model is taught not to depend on it). Fixed seeds,
  two torch threads; deterministic for a given thread count.
* Test: the manifest's test split, touched once at the end through the exported ONNX graph
  (what is served). It was *not* made by patient either; the card reports metrics on the
  test images without a near-duplicate in train separately.
* Shortcut checks: the no-tumour slices come from another collection (Br35H); the card
  records how well the image border alone, or the intensity histogram alone, predicts the
  class, how the model answers when the brain is blanked out, and how its predictions move
  when intensity histograms are equalised.

Run without the project CLI: ``python -m vitalcheck.training.brain_mri train`` /
``python -m vitalcheck.training.brain_mri evaluate --model artifacts/brain_tumor_cnn.onnx``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image, ImageOps

from vitalcheck.cards import CardDataset, ModelCard, sha256_file, verify_artifact
from vitalcheck.catalog import BRAIN_TUMOR
from vitalcheck.imaging import PREPROCESSING, normalize, pil_to_unit
from vitalcheck.predictors.mri import (
    INPUT_NAME,
    OUTPUT_NAME,
    golden_input,
    load_onnx_session,
    predict_probabilities,
)

logger = logging.getLogger(__name__)

# On a shared CPU, OpenMP threads that spin while waiting for a descheduled sibling make
# two-thread training several times slower than one thread; passive waiting avoids that.
# libgomp reads this when torch is first imported, so it must be set before that import.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
if "torch" in sys.modules:  # pragma: no cover - depends on the importer
    logger.debug("torch was imported before %s; OMP_WAIT_POLICY may not apply", __name__)

CLASSES: tuple[str, ...] = BRAIN_TUMOR.classes
"""Output class order (catalog): glioma, meningioma, notumor, pituitary."""
TUMOUR_CLASSES: tuple[str, ...] = tuple(c for c in CLASSES if c != "notumor")
DATASET_FOLDER = BRAIN_TUMOR.dataset
MANIFEST = "manifest.csv"

SEED = 20251130
EPOCHS = 24
BATCH_SIZE = 64
LEARNING_RATE = 3e-3
WEIGHT_DECAY = 5e-4
LABEL_SMOOTHING = 0.05
WIDTH = 16
"""Channels of the first stage; stages double it (16, 16, 32, 64, 128, 256)."""
VAL_FRACTION = 0.15
PHASH_GROUP_DISTANCE = 6
"""Images whose 64-bit perceptual hashes differ in at most this many bits are linked into one group."""
TORCH_THREADS = 2
ECE_BINS = 15
BORDER_FRACTION = 1 / 16
"""Width of the border ring used by the shortcut checks, as a fraction of the shorter side."""
MAX_ONNX_BYTES = 5 * 1024 * 1024
ONNX_PARITY_TOLERANCE = 1e-4
GOLDEN_SEEDS = (0, 1, 2)
ONNX_OPSET = 17

# Augmentation ranges (training images only).
AUG_ROTATION_DEG = 12.0
AUG_SCALE = 0.10
AUG_TRANSLATE = 0.06
AUG_GAMMA = (0.7, 1.4)
AUG_CONTRAST = 0.15
AUG_BRIGHTNESS = 0.05
AUG_EQUALIZE = 0.25
"""Share of training images whose intensity histogram is equalised: the histogram alone tells the
no-tumour collection from the tumour one, so the model is taught not to rely on it."""


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------
@dataclass
class ImageSet:
    """Decoded images of one manifest selection.

    Attributes:
        paths: image paths relative to the manifest's folder.
        y: (n,) int64 class indices in :data:`CLASSES` order.
        unit: (n, 128, 128) float32 preprocessed images in [0, 1] (before normalisation).
        phash: (n,) uint64 64-bit perceptual hashes of the decoded images.
        border: (n, k) float32 intensity features of the image border ring (shortcut check).
        histogram: (n, k) float32 whole-image intensity histogram features (shortcut check).

    """

    paths: list[str]
    y: np.ndarray
    unit: np.ndarray
    phash: np.ndarray
    border: np.ndarray
    histogram: np.ndarray

    def __len__(self) -> int:
        return len(self.paths)

    def subset(self, mask: np.ndarray) -> ImageSet:
        """Return the images where ``mask`` is true (boolean array of length n)."""
        idx = np.flatnonzero(mask)
        return ImageSet(
            [self.paths[i] for i in idx],
            self.y[idx],
            self.unit[idx],
            self.phash[idx],
            self.border[idx],
            self.histogram[idx],
        )


def resolve_manifest(data_dir: Path) -> Path:
    """Find ``manifest.csv`` given the shared data directory or the ``brain_mri`` folder itself.

    Raises:
        FileNotFoundError: neither ``data_dir/manifest.csv`` nor ``data_dir/brain_mri/manifest.csv`` exists.

    """
    data_dir = Path(data_dir)
    for candidate in (data_dir / MANIFEST, data_dir / DATASET_FOLDER / MANIFEST):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"no {MANIFEST} in {data_dir} or {data_dir / DATASET_FOLDER}")


def read_manifest(manifest: Path, split: str | None = None) -> pd.DataFrame:
    """Read a manifest in the shared format (``path``, ``label``, optional ``split``).

    Args:
        manifest: the CSV file; ``path`` is relative to its folder.
        split: keep only rows of this split (ignored when the file has no ``split`` column).

    Returns:
        DataFrame with at least ``path`` and ``label`` (str), in file order.

    Raises:
        ValueError: a required column is missing, a label is not one of :data:`CLASSES`, or
            no row is left.

    """
    frame = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    missing = {"path", "label"} - set(frame.columns)
    if missing:
        raise ValueError(f"{manifest} lacks column(s) {sorted(missing)}")
    if split is not None and "split" in frame.columns:
        frame = frame[frame["split"] == split]
    unknown = sorted(set(frame["label"]) - set(CLASSES))
    if unknown:
        raise ValueError(f"{manifest} has labels {unknown} outside {list(CLASSES)}")
    if frame.empty:
        raise ValueError(f"{manifest} has no rows" + (f" of split {split!r}" if split else ""))
    return frame.reset_index(drop=True)


def _phash64(gray: Image.Image) -> int:
    import imagehash

    bits = imagehash.phash(gray).hash.flatten()
    return int(np.packbits(bits).view(">u8")[0])


def _ring_mask(h: int, w: int) -> np.ndarray:
    r = max(1, round(min(h, w) * BORDER_FRACTION))
    mask = np.ones((h, w), dtype=bool)
    mask[r : h - r, r : w - r] = False
    return mask


def _intensity_features(values: np.ndarray) -> np.ndarray:
    """16-bin histogram over 0-255 (fractions), mean, std and fraction of near-black values."""
    hist = np.histogram(values, bins=16, range=(0, 256))[0] / max(1, values.size)
    return np.concatenate([hist, [values.mean() / 255, values.std() / 255, np.mean(values <= 8)]]).astype(np.float32)


def load_images(manifest: Path, split: str | None) -> ImageSet:
    """Decode and preprocess every image of a manifest selection once.

    Args:
        manifest: manifest CSV; image paths are relative to its folder.
        split: split to load (``"train"``, ``"test"``) or None for all rows.

    Returns:
        The :class:`ImageSet` (images in [0, 1], hashes, shortcut-check features).

    Raises:
        ValueError: see :func:`read_manifest`.
        OSError: an image is missing or cannot be decoded.

    """
    frame = read_manifest(manifest, split)
    root = manifest.parent
    n = len(frame)
    unit = np.empty((n, PREPROCESSING.height, PREPROCESSING.width), dtype=np.float32)
    phash = np.empty(n, dtype=np.uint64)
    border, histogram = [], []
    for i, rel in enumerate(frame["path"]):
        with Image.open(root / rel) as img:
            img.load()
            unit[i] = pil_to_unit(img)
            gray = img.convert("L")
        phash[i] = _phash64(gray)
        g = np.asarray(gray, dtype=np.float32)
        border.append(_intensity_features(g[_ring_mask(*g.shape)]))
        histogram.append(_intensity_features(g))
    y = np.array([CLASSES.index(label) for label in frame["label"]], dtype=np.int64)
    return ImageSet(list(frame["path"]), y, unit, phash, np.stack(border), np.stack(histogram))


# ---------------------------------------------------------------------------------------------
# Grouped validation split
# ---------------------------------------------------------------------------------------------
def hamming_min_to(query: np.ndarray, reference: np.ndarray, chunk: int = 1024) -> np.ndarray:
    """For each query hash, the smallest Hamming distance to any reference hash.

    Args:
        query: (n,) uint64 hashes.
        reference: (m,) uint64 hashes, m ≥ 1.
        chunk: query rows per block (bounds memory to chunk × m bytes).

    Returns:
        (n,) int64 distances in [0, 64].

    """
    out = np.empty(len(query), dtype=np.int64)
    for start in range(0, len(query), chunk):
        block = np.bitwise_count(query[start : start + chunk, None] ^ reference[None, :])
        out[start : start + chunk] = block.min(axis=1)
    return out


def phash_groups(hashes: np.ndarray, max_distance: int = PHASH_GROUP_DISTANCE, chunk: int = 1024) -> np.ndarray:
    """Group near-identical images: connected components of "Hamming distance ≤ max_distance".

    Args:
        hashes: (n,) uint64 perceptual hashes.
        max_distance: largest Hamming distance (bits of 64) that links two images.
        chunk: rows per block of the pairwise comparison.

    Returns:
        (n,) int64 group id per image (0 .. n_groups - 1).

    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(hashes)
    rows, cols = [], []
    for start in range(0, n, chunk):
        block = np.bitwise_count(hashes[start : start + chunk, None] ^ hashes[None, :]) <= max_distance
        r, c = np.nonzero(block)
        rows.append(r + start)
        cols.append(c)
    r = np.concatenate(rows)
    c = np.concatenate(cols)
    graph = coo_matrix((np.ones(len(r), dtype=np.int8), (r, c)), shape=(n, n)).tocsr()
    return connected_components(graph, directed=False)[1].astype(np.int64)


def grouped_validation_mask(y: np.ndarray, groups: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Choose whole groups for validation until each class has about ``fraction`` of its images.

    Groups are visited in a seeded random order; a group joins validation if, for every class
    it contains, the class's validation count stays within its target (``fraction`` × class
    count, rounded). No group is split between training and validation.

    Args:
        y: (n,) class indices.
        groups: (n,) group ids (from :func:`phash_groups`).
        fraction: target validation share per class, in (0, 1).
        seed: seed of the group order.

    Returns:
        (n,) boolean mask, true for validation images.

    """
    rng = np.random.default_rng(seed)
    n_classes = int(y.max()) + 1
    target = np.round(np.bincount(y, minlength=n_classes) * fraction)
    taken = np.zeros(n_classes)
    val = np.zeros(len(y), dtype=bool)
    for g in rng.permutation(np.unique(groups)):
        members = groups == g
        counts = np.bincount(y[members], minlength=n_classes)
        if np.all(taken + counts <= target):
            taken += counts
            val |= members
    return val


# ---------------------------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------------------------
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
    out["log_loss"] = float(-np.mean(np.log(np.clip(proba[np.arange(len(y)), y], 1e-12, 1.0))))
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (y, pred), 1)
    out["confusion_matrix"] = cm.tolist()
    return out


def _card_metrics(report: dict[str, Any]) -> dict[str, float]:
    keep = [
        "accuracy",
        "macro_f1",
        *[f"recall_{c}" for c in CLASSES],
        "tumour_only_macro_f1",
        "expected_calibration_error",
    ]
    return {m: round(float(report[m]), 6) for m in keep}


# ---------------------------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------------------------
def build_model(width: int = WIDTH):
    """Build the compact CNN (it returns logits).

    Input (n, 1, 128, 128) → 5×5 stride-2 conv stem (width) → 3×3 conv → max-pool →
    [two 3×3 convs → max-pool] at 2w, 4w, 8w channels → 3×3 conv at 16w → global average
    pool → dropout 0.3 → linear to 4 logits. Every conv is followed by batch norm and ReLU.

    Args:
        width: channels of the stem (16 gives about 0.59 M parameters).

    Returns:
        A ``torch.nn.Module`` mapping (n, 1, H, W) float32 to (n, 4) logits.

    """
    from torch import nn

    def conv(cin: int, cout: int, k: int = 3, stride: int = 1) -> list[nn.Module]:
        return [
            nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        ]

    w = width
    layers: list[nn.Module] = [*conv(1, w, 5, 2), *conv(w, w), nn.MaxPool2d(2)]
    for cin, cout in ((w, 2 * w), (2 * w, 4 * w), (4 * w, 8 * w)):
        layers += [*conv(cin, cout), *conv(cout, cout), nn.MaxPool2d(2)]
    layers += [
        *conv(8 * w, 16 * w),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Dropout(0.3),
        nn.Linear(16 * w, len(CLASSES)),
    ]
    return nn.Sequential(*layers)


def describe_model(width: int = WIDTH) -> str:
    """Describe the architecture in words, with its parameter count."""
    n = sum(p.numel() for p in build_model(width).parameters())
    return (
        f"Compact CNN trained from scratch ({n:,} parameters): 128x128 grayscale input, 5x5 stride-2 conv stem "
        f"({width} ch), 9 further 3x3 convs in 4 stages ({width}-{16 * width} ch, max-pooling), each conv with "
        "batch norm + ReLU, global average pooling, dropout 0.3, linear layer to 4 logits; temperature-scaled "
        "softmax in the ONNX graph"
    )


def _equalize(x):
    """Histogram-equalise each image of a batch in [0, 1] as Pillow's ``ImageOps.equalize`` does (256 levels).

    Args:
        x: (n, 1, H, W) float tensor in [0, 1].

    Returns:
        Tensor of the same shape in [0, 1].
    """
    import torch

    n = x.shape[0]
    q = (x.reshape(n, -1) * 255).round().long().clamp(0, 255)
    hist = torch.zeros(n, 256).scatter_add_(1, q, torch.ones(q.shape))
    top = q.max(dim=1, keepdim=True).values  # Pillow leaves the brightest level's count out
    step = torch.div(q.shape[1] - hist.gather(1, top), 255, rounding_mode="floor")
    before = hist.cumsum(1) - hist  # pixels strictly darker than each level
    lut = torch.div(before + torch.div(step, 2, rounding_mode="floor"), step.clamp(min=1), rounding_mode="floor")
    lut = torch.where(step > 0, lut.clamp(max=255), torch.arange(256.0).expand(n, 256))
    return (lut.gather(1, q) / 255).reshape(x.shape)


def _augment(x, gen):
    """Random equalisation, flip, rotation, scale, shift and intensity jitter of a batch in [0, 1] (training only)."""
    import torch
    import torch.nn.functional as F

    n = x.shape[0]
    equalize = torch.rand(n, generator=gen) < AUG_EQUALIZE
    if equalize.any():
        x = x.clone()
        x[equalize] = _equalize(x[equalize])

    def uniform(lo: float, hi: float):
        return lo + (hi - lo) * torch.rand(n, generator=gen)

    flip = torch.rand(n, generator=gen) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    angle = uniform(-AUG_ROTATION_DEG, AUG_ROTATION_DEG) * math.pi / 180
    inv_scale = 1.0 / uniform(1 - AUG_SCALE, 1 + AUG_SCALE)
    tx = uniform(-2 * AUG_TRANSLATE, 2 * AUG_TRANSLATE)  # grid coordinates span 2 units
    ty = uniform(-2 * AUG_TRANSLATE, 2 * AUG_TRANSLATE)
    cos, sin = torch.cos(angle) * inv_scale, torch.sin(angle) * inv_scale
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    gamma = torch.exp(uniform(math.log(AUG_GAMMA[0]), math.log(AUG_GAMMA[1])))[:, None, None, None]
    x = x.clamp(0, 1) ** gamma
    contrast = uniform(1 - AUG_CONTRAST, 1 + AUG_CONTRAST)[:, None, None, None]
    brightness = uniform(-AUG_BRIGHTNESS, AUG_BRIGHTNESS)[:, None, None, None]
    return (x * contrast + brightness).clamp(0, 1)


def _to_input(unit):
    """Normalise a torch batch in [0, 1] exactly as :func:`vitalcheck.imaging.normalize` does."""
    return (unit - PREPROCESSING.mean) / PREPROCESSING.std


def _logits(model, unit: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Logits of preprocessed images in [0, 1], shape (n, H, W) → (n, 4)."""
    import torch

    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(unit), batch_size):
            x = torch.from_numpy(normalize(unit[start : start + batch_size])[:, None])
            out.append(model(x.contiguous(memory_format=torch.channels_last)).numpy())
    return np.concatenate(out).astype(np.float64)


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """Temperature T > 0 minimising the negative log-likelihood of ``softmax(logits / T)``.

    Grid search over log T in [log 0.25, log 8] (801 points), deterministic.
    """
    grid = np.exp(np.linspace(math.log(0.25), math.log(8.0), 801))
    nll = [-np.mean(np.log(np.clip(_softmax(logits / t)[np.arange(len(y)), y], 1e-12, 1))) for t in grid]
    return float(grid[int(np.argmin(nll))])


@dataclass
class FitResult:
    """What :func:`fit` returns: the chosen network and its training history."""

    model: Any
    best_epoch: int
    history: list[dict[str, float]]
    fit_time_s: float


def fit(
    train: ImageSet,
    val: ImageSet,
    *,
    epochs: int = EPOCHS,
    seed: int = SEED,
    report: Callable[[str], None] | None = None,
) -> FitResult:
    """Train the CNN on ``train``, choosing the epoch with the best validation macro-F1.

    AdamW, one-cycle learning rate (peak :data:`LEARNING_RATE`), class-weighted cross-entropy
    (weights ∝ 1/√frequency) with label smoothing, augmentation of training batches only.

    Args:
        train: training images.
        val: validation images (grouped by perceptual hash, never augmented).
        epochs: passes over ``train``.
        seed: seed of weights, batch order and augmentation.
        report: called with a one-line progress message after every epoch.

    Returns:
        The :class:`FitResult` (network in eval mode, with the best epoch's weights).

    """
    import torch
    from torch import nn

    torch.manual_seed(seed)
    torch.set_num_threads(TORCH_THREADS)
    gen = torch.Generator().manual_seed(seed)
    model = build_model().to(memory_format=torch.channels_last)
    counts = np.bincount(train.y, minlength=len(CLASSES)).astype(np.float64)
    weights = (counts.sum() / counts) ** 0.5
    weights = torch.tensor(weights / weights.mean(), dtype=torch.float32)
    loss_fn = nn.CrossEntropyLoss(weight=weights, label_smoothing=LABEL_SMOOTHING)
    steps = math.ceil(len(train) / BATCH_SIZE)
    opt = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=LEARNING_RATE, total_steps=epochs * steps, pct_start=0.15)
    x_all = torch.from_numpy(train.unit)[:, None]
    y_all = torch.from_numpy(train.y)
    best: tuple[float, float] | None = None
    best_state: dict[str, Any] = {}
    best_epoch = -1
    history: list[dict[str, float]] = []
    t0 = time.perf_counter()
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(len(train), generator=gen)
        total = 0.0
        for start in range(0, len(order), BATCH_SIZE):
            idx = order[start : start + BATCH_SIZE]
            if len(idx) < 2:  # batch norm needs two samples
                continue
            x = _to_input(_augment(x_all[idx], gen)).contiguous(memory_format=torch.channels_last)
            loss = loss_fn(model(x), y_all[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        val_proba = _softmax(_logits(model, val.unit))
        rep = classification_report(val.y, val_proba)
        row = {
            "epoch": epoch,
            "train_loss": round(total / len(train), 5),
            "val_log_loss": round(rep["log_loss"], 5),
            "val_accuracy": round(rep["accuracy"], 5),
            "val_macro_f1": round(rep["macro_f1"], 5),
            "elapsed_s": round(time.perf_counter() - t0, 1),
        }
        history.append(row)
        logger.info("brain_tumor epoch %s", json.dumps(row))
        if report is not None:
            report(f"epoch {epoch}/{epochs}: val macro-F1 {rep['macro_f1']:.3f} ({row['elapsed_s']:.0f}s)")
        key = (rep["macro_f1"], -rep["log_loss"])
        if best is None or key > best:
            best, best_epoch = key, epoch
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    fit_time = time.perf_counter() - t0
    model.load_state_dict(best_state)
    model.eval()
    return FitResult(model=model, best_epoch=best_epoch, history=history, fit_time_s=fit_time)


# ---------------------------------------------------------------------------------------------
# Export
# ---------------------------------------------------------------------------------------------
def export_onnx(model, temperature: float, path: Path) -> None:
    """Export ``softmax(model(x) / temperature)`` to ONNX with a dynamic batch axis.

    Input ``image`` float32 (batch, 1, 128, 128); output ``probabilities`` float32 (batch, 4).

    Raises:
        RuntimeError: the file is larger than :data:`MAX_ONNX_BYTES` or fails the ONNX checker.

    """
    import onnx
    import torch
    from torch import nn

    class WithSoftmax(nn.Module):
        def __init__(self, net: nn.Module, t: float) -> None:
            super().__init__()
            self.net = net
            self.register_buffer("inv_t", torch.tensor(1.0 / t, dtype=torch.float32))

        def forward(self, x):
            return torch.softmax(self.net(x) * self.inv_t, dim=1)

    wrapped = WithSoftmax(model, temperature).to(memory_format=torch.contiguous_format).eval()
    dummy = torch.zeros(PREPROCESSING.input_shape, dtype=torch.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the legacy exporter needs no onnxscript
        torch.onnx.export(
            wrapped,
            (dummy,),
            str(path),
            dynamo=False,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            opset_version=ONNX_OPSET,
            do_constant_folding=True,
        )
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    size = path.stat().st_size
    if size > MAX_ONNX_BYTES:
        raise RuntimeError(f"{path} is {size} bytes, above the {MAX_ONNX_BYTES}-byte limit")


def _torch_probabilities(model, temperature: float, unit: np.ndarray) -> np.ndarray:
    return _softmax(_logits(model, unit) / temperature)


# ---------------------------------------------------------------------------------------------
# Shortcut checks
# ---------------------------------------------------------------------------------------------
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
    mask = _ring_mask(PREPROCESSING.height, PREPROCESSING.width)
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
    out["model_without_border"] = {k: round(float(v), 4) for k, v in _card_metrics(rep).items()}
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
        **{k: round(float(v), 4) for k, v in _card_metrics(rep).items()},
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
            **{k: round(float(v), 4) for k, v in _card_metrics(rep).items()},
        }
    return out


# ---------------------------------------------------------------------------------------------
# Public entry points
# ---------------------------------------------------------------------------------------------
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


def _majority_baseline(train_y: np.ndarray, test_y: np.ndarray) -> dict[str, float]:
    prior = np.bincount(train_y, minlength=len(CLASSES)) / len(train_y)
    proba = np.tile(prior, (len(test_y), 1))
    return _card_metrics(classification_report(test_y, proba))


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

    from vitalcheck.training.model_cards import code_revision, dataset_provenance, utc_now, write_card

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
    val_logits = _logits(result.model, val.unit)
    temperature = fit_temperature(val_logits, val.y)
    val_raw = classification_report(val.y, _softmax(val_logits))
    val_cal = classification_report(val.y, _softmax(val_logits / temperature))

    artifact = out_dir / BRAIN_TUMOR.artifact
    export_onnx(result.model, temperature, artifact)
    session = load_onnx_session(artifact, intra_op_threads=TORCH_THREADS, inter_op_threads=1)
    test_batch = normalize(test.unit)[:, None]
    test_proba = predict_probabilities(session, test_batch)
    torch_proba = _torch_probabilities(result.model, temperature, test.unit)
    onnx_diff = float(np.max(np.abs(test_proba - torch_proba)))
    logger.info("brain_tumor: ONNX Runtime vs PyTorch max abs difference %.3g", onnx_diff)
    if not onnx_diff < ONNX_PARITY_TOLERANCE:
        raise RuntimeError(f"ONNX Runtime and PyTorch disagree by {onnx_diff:.3g} (>= {ONNX_PARITY_TOLERANCE})")

    report = classification_report(test.y, test_proba)
    logger.info("brain_tumor test: %s", json.dumps({k: v for k, v in _card_metrics(report).items()}))
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
    card = ModelCard(
        name=BRAIN_TUMOR.name,
        task=BRAIN_TUMOR.task,
        artifact=BRAIN_TUMOR.artifact,
        sha256=sha256_file(artifact),
        framework="onnx",
        framework_versions=_framework_versions(),
        training_code_revision=code_revision(),
        trained_at=utc_now(),
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
        metrics=_card_metrics(report),
        baseline_metrics=_majority_baseline(train_all.y, test.y),
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
            "validation_before_temperature": {
                k: round(float(val_raw[k]), 4)
                for k in ("accuracy", "macro_f1", "log_loss", "expected_calibration_error")
            },
            "validation_after_temperature": {
                k: round(float(val_cal[k]), 4)
                for k in ("accuracy", "macro_f1", "log_loss", "expected_calibration_error")
            },
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


def main(argv: Sequence[str] | None = None) -> None:
    """Command line without the project CLI: ``train`` or ``evaluate``."""
    from vitalcheck.settings import get_settings

    settings = get_settings()
    parser = argparse.ArgumentParser(
        prog="python -m vitalcheck.training.brain_mri", description=__doc__.splitlines()[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_train = sub.add_parser("train")
    p_train.add_argument("--data", type=Path, default=settings.data_dir)
    p_train.add_argument("--out", type=Path, default=settings.artifacts_dir)
    p_train.add_argument("--epochs", type=int, default=EPOCHS)
    p_eval = sub.add_parser("evaluate")
    p_eval.add_argument("--model", type=Path, default=settings.artifacts_dir / BRAIN_TUMOR.artifact)
    p_eval.add_argument("--data", type=Path, default=settings.data_dir / DATASET_FOLDER / MANIFEST)
    p_eval.add_argument("--split", default="test", help="split to score; 'all' for every row")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if args.command == "train":
        train(args.data, args.out, epochs=args.epochs)
    else:
        print(json.dumps(evaluate(args.model, args.data, split=None if args.split == "all" else args.split), indent=2))


if __name__ == "__main__":
    main()
