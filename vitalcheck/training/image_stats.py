"""Reproducible derivation of the MRI validity screen's thresholds (numpy, pandas and Pillow only).

:data:`vitalcheck.imaging.SLICE_VALIDITY` holds the thresholds that serving applies to each
uploaded image (:func:`vitalcheck.imaging.screen_image`). This module recomputes, from the
shared data, the statistics they were measured on::

    python -m vitalcheck.training image-stats [--data-dir DIR] [--out FILE.json]

It computes :func:`vitalcheck.imaging.slice_stats` (the function serving uses) for every slice
of the manifest, prints the quantiles of each statistic over the **train** split, the central
range derived from them (:func:`central_range`: the recorded quantiles, 0.1-99.9 %, rounded outwards),
whether that range equals the recorded one, and how the recorded screen treats the train and
the test slices (refused, warned) with its cost per image. The test split is only evaluated,
never used to choose a threshold. The CNN is not retrained.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypedDict

import numpy as np
import pandas as pd
from PIL import Image

from vitalcheck.imaging import (
    SLICE_STATISTICS,
    SLICE_VALIDITY,
    SliceStats,
    SliceValidity,
    assess_slice,
    preprocess_image,
    screen_image,
    slice_stats,
)

QUANTILES: tuple[float, ...] = (0.0, 0.1, 0.5, 1.0, 50.0, 99.0, 99.5, 99.9, 100.0)
"""Quantiles (percent) reported for each statistic."""

DECIMALS = 3
"""The central range is rounded outwards to this many decimals."""

ONE_SIDED_LOW: frozenset[str] = frozenset({"relative_range"})
"""Statistics whose central range has only a lower bound (their upper end is the physical one)."""

ONE_SIDED_HIGH: frozenset[str] = frozenset({"flat_share", "periodicity"})
"""Statistics whose central range has only an upper bound (its lower end is the physical 0)."""


class _Limits(TypedDict):
    """The size limits passed to :func:`preprocess_image` and :func:`screen_image`."""

    max_bytes: int
    max_pixels: int


_LIMITS: _Limits = {"max_bytes": 1 << 30, "max_pixels": 1 << 30}


def resolve_manifest(data_dir: Path) -> Path:
    """``data_dir/brain_mri/manifest.csv`` or ``data_dir/manifest.csv``.

    Raises:
        FileNotFoundError: neither exists.

    """
    data_dir = Path(data_dir)
    for candidate in (data_dir / "brain_mri" / "manifest.csv", data_dir / "manifest.csv"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"no brain_mri/manifest.csv in {data_dir}")


def collect(manifest: Path, split: str | None = None) -> pd.DataFrame:
    """Validity statistics of every slice of a manifest selection.

    Args:
        manifest: the brain_mri ``manifest.csv`` (``path`` relative to its folder, ``label``, ``split``).
        split: ``"train"``, ``"test"`` or None for all rows.

    Returns:
        One row per image: ``path``, ``label``, ``split`` and one column per :class:`SliceStats` field.

    """
    frame = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    if split is not None:
        frame = frame[frame["split"] == split]
    rows = []
    for rel in frame["path"]:
        with Image.open(manifest.parent / rel) as img:
            img.load()
            rows.append(asdict(slice_stats(img)))
    stats = pd.DataFrame(rows, index=frame.index, columns=list(SLICE_STATISTICS))
    return pd.concat([frame[["path", "label", "split"]], stats], axis=1).reset_index(drop=True)


def quantile_table(stats: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Each statistic's :data:`QUANTILES` (keys like ``"q0.5"``) over the given rows."""
    return {name: {f"q{q:g}": float(np.percentile(stats[name], q)) for q in QUANTILES} for name in SLICE_STATISTICS}


def central_range(stats: pd.DataFrame, quantiles: tuple[float, float] = SLICE_VALIDITY.central_quantiles):
    """The warning tier's central range: per statistic, its quantiles rounded outwards.

    Args:
        stats: rows of :func:`collect` (the train split).
        quantiles: lower and upper quantile, percent.

    Returns:
        Tuple of ``(name, low, high)`` in the order of :data:`SliceValidity.central`; ``high``
        is infinite for :data:`ONE_SIDED_LOW` statistics, ``low`` is 0 for :data:`ONE_SIDED_HIGH` ones.

    """
    scale = 10**DECIMALS
    out = []
    for name, _, _ in SLICE_VALIDITY.central:
        lo = math.floor(float(np.percentile(stats[name], quantiles[0])) * scale) / scale
        hi = math.ceil(float(np.percentile(stats[name], quantiles[1])) * scale) / scale
        out.append((name, 0.0 if name in ONE_SIDED_HIGH else lo, math.inf if name in ONE_SIDED_LOW else hi))
    return tuple(out)


def screen_counts(stats: pd.DataFrame, validity: SliceValidity = SLICE_VALIDITY) -> dict[str, Any]:
    """How the screen treats the given rows: counts refused (by rule) and warned (by reason)."""
    refused: Counter[str] = Counter()
    warned: Counter[str] = Counter()
    n_warned = 0
    for record in stats[list(SLICE_STATISTICS)].to_dict("records"):
        refusal, reasons = assess_slice(SliceStats(**record), validity)
        if refusal is not None:
            refused[refusal] += 1
        elif reasons:
            n_warned += 1
            warned.update(reasons)
    return {
        "n": len(stats),
        "refused": sum(refused.values()),
        "refused_by_rule": dict(refused),
        "warned": n_warned,
        "warned_by_reason": dict(warned),
    }


def cost_ms(manifest: Path, paths: list[str]) -> dict[str, float]:
    """Mean milliseconds per upload of :func:`screen_image` and of :func:`preprocess_image` (no screen)."""
    blobs = [(manifest.parent / p).read_bytes() for p in paths]
    t0 = time.perf_counter()
    for data in blobs:
        preprocess_image(data, **_LIMITS)
    t1 = time.perf_counter()
    for data in blobs:
        screen_image(data, **_LIMITS)
    t2 = time.perf_counter()
    n = max(1, len(blobs))
    plain, screened = (t1 - t0) / n * 1e3, (t2 - t1) / n * 1e3
    return {"preprocess_ms": plain, "screen_ms": screened, "screen_overhead_ms": screened - plain}


def report(data_dir: Path) -> dict[str, Any]:
    """The full derivation and evaluation (see the module docstring), as a JSON-serialisable dict."""
    manifest = resolve_manifest(data_dir)
    everything = collect(manifest)
    train = everything[everything["split"] == "train"]
    test = everything[everything["split"] == "test"]
    derived = central_range(train)
    return {
        "reference": f"{manifest} train split ({len(train)} slices)",
        "statistics": SLICE_STATISTICS,
        "train_quantiles": quantile_table(train),
        "derived_central": {name: [lo, hi if math.isfinite(hi) else None] for name, lo, hi in derived},
        "recorded": SLICE_VALIDITY.as_dict(),
        "recorded_central_matches": derived == SLICE_VALIDITY.central,
        "screen": {"train": screen_counts(train), "test": screen_counts(test)},
        "cost_test_split": cost_ms(manifest, list(test["path"])),
    }
