"""The CNN: its architecture, batched inference, temperature scaling and the ONNX export.

torch and onnx are imported inside the functions, so this module imports without them.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np

from vitalcheck.imaging import PREPROCESSING, normalize
from vitalcheck.predictors.mri import INPUT_NAME, OUTPUT_NAME
from vitalcheck.training.brain_mri.data import CLASSES
from vitalcheck.training.brain_mri.metrics import log_loss

WIDTH = 16
"""Channels of the first stage; stages double it (16, 16, 32, 64, 128, 256)."""
MAX_ONNX_BYTES = 5 * 1024 * 1024
ONNX_OPSET = 17


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


def predict_logits(model, unit: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Logits of preprocessed images in [0, 1], shape (n, H, W) → (n, 4)."""
    import torch

    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(unit), batch_size):
            x = torch.from_numpy(normalize(unit[start : start + batch_size])[:, None])
            out.append(model(x.contiguous(memory_format=torch.channels_last)).numpy())
    return np.concatenate(out).astype(np.float64)


def softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (n, k) logits, shifted by the row maximum for stability."""
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """Temperature T > 0 minimising the negative log-likelihood of ``softmax(logits / T)``.

    Grid search over log T in [log 0.25, log 8] (801 points), deterministic.
    """
    grid = np.exp(np.linspace(math.log(0.25), math.log(8.0), 801))
    nll = [log_loss(softmax(logits / t), y) for t in grid]
    return float(grid[int(np.argmin(nll))])


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
