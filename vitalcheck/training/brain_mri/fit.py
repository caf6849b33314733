"""The training loop of the CNN and the augmentation of its training batches.

Fixed seeds and :data:`TORCH_THREADS` threads: a run is deterministic for a given thread count.
torch is imported inside the functions, so this module imports without it.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from vitalcheck.imaging import PREPROCESSING
from vitalcheck.training.brain_mri.data import CLASSES, ImageSet
from vitalcheck.training.brain_mri.metrics import classification_report
from vitalcheck.training.brain_mri.network import build_model, predict_logits, softmax

logger = logging.getLogger(__name__)

SEED = 20251130
EPOCHS = 24
BATCH_SIZE = 64
LEARNING_RATE = 3e-3
WEIGHT_DECAY = 5e-4
LABEL_SMOOTHING = 0.05
TORCH_THREADS = 2

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
        val_proba = softmax(predict_logits(model, val.unit))
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
