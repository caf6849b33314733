"""The validity screen: is an upload plausibly a brain MRI slice like the training ones?

The CNN answers confidently for any image, so serving screens each upload before the CNN sees
it (:func:`screen_image`): cheap statistics of the decoded image (:class:`SliceStats`: size,
colourfulness, dynamic range, and mean, spread, background share, roughness, histogram entropy,
share of flat-filled pixels and periodicity of the 128×128 image the CNN sees) are compared with
those of the training slices (:data:`SLICE_VALIDITY`). Images clearly unlike any MRI slice
(tiny, near-constant, strongly coloured, noise-like, mostly bright, too few intensity levels,
flat-filled drawings, tiled pictures) are refused with :data:`RULE_NOT_MRI_SLICE`; images merely
outside the 0.1-99.9 % range of the training slices' statistics are answered with a warning.
Training does not screen (its images are the reference).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from PIL import Image

from vitalcheck.imaging.decode import MAX_DECODED_BYTES, _decode_then
from vitalcheck.imaging.errors import RULE_NOT_MRI_SLICE, ImageRejected
from vitalcheck.imaging.preprocess import (
    _HIGH_DEPTH_MODES,
    PREPROCESSING,
    PreprocessingSpec,
    _oriented_resized,
    _unit_from_resized,
    normalize,
)

SLICE_STATISTICS: dict[str, str] = {
    "width": "width in pixels, after the EXIF orientation",
    "height": "height in pixels, after the EXIF orientation",
    "colourfulness": "mean of |R-G|, |G-B|, |B-R| over the pixels, 0-255 scale, on a nearest-neighbour "
    "sample of at most 128x128 pixels (0 for grayscale modes)",
    "relative_range": "(max - min) / max(|max|, |min|) of the resized grayscale in native units "
    "(0: constant; independent of bit depth)",
    "mean": "mean of the 128x128 min-max-scaled image the CNN sees (step 5)",
    "std": "standard deviation of that image",
    "dark_fraction": "share of that image's pixels at or below 0.1 (the near-black background)",
    "roughness": "mean absolute difference between horizontally and vertically neighbouring pixels "
    "of that image, divided by its std (about 1.13 for white noise; 0 for a constant image)",
    "entropy_bits": "Shannon entropy, in bits, of that image's 64-bin histogram over [0, 1]",
    "flat_share": "share of the horizontally and vertically neighbouring pixel pairs of that image, both above "
    "0.1 (foreground), that differ by less than 1/512: flat-filled plateaus (drawings, synthetic shapes) "
    "give high values, MRI tissue texture low ones (0 without foreground)",
    "source_levels": "distinct gray levels of the decoded image itself, before any resizing (sampled "
    "nearest-neighbour to at most about 512x512 pixels): a bi-level or dithered image has 2",
    "periodicity": "largest circular autocorrelation of that image (mean removed, divided by its variance) "
    "at shifts of at least 20 px along either axis: about 1 for a tiled or repeated picture (0 if constant)",
}
"""What each :class:`SliceStats` field measures (the documented validity statistics)."""

_STAT_LABELS: dict[str, str] = {
    "relative_range": "dynamic range",
    "mean": "mean intensity",
    "std": "intensity spread",
    "dark_fraction": "background share",
    "roughness": "texture roughness",
    "entropy_bits": "histogram entropy",
    "flat_share": "flat-filled regions",
    "periodicity": "repeating pattern",
}
"""Client-facing names of the statistics checked against the central training range."""

_GRAY_MODES = frozenset({"1", "L", "LA", "La", *_HIGH_DEPTH_MODES})
_DARK_LEVEL = 0.1
_HISTOGRAM_BINS = 64
_FLAT_STEP = 1 / 512
_PERIOD_MIN_SHIFT = 20


@dataclass(frozen=True)
class SliceStats:
    """Cheap statistics of one decoded image (see :data:`SLICE_STATISTICS`)."""

    width: int
    height: int
    colourfulness: float
    relative_range: float
    mean: float
    std: float
    dark_fraction: float
    roughness: float
    entropy_bits: float
    flat_share: float
    periodicity: float
    source_levels: int

    @property
    def short_side(self) -> int:
        """The shorter side, in pixels."""
        return min(self.width, self.height)

    @property
    def aspect_ratio(self) -> float:
        """Longer side over shorter side (1 for a square)."""
        return max(self.width, self.height) / max(1, min(self.width, self.height))


def _colourfulness(img: Image.Image, size: tuple[int, int]) -> float:
    """Mean absolute difference between the RGB channels (0-255) on a nearest-neighbour sample."""
    if img.mode in _GRAY_MODES and "transparency" not in img.info:
        return 0.0
    try:
        small = img.resize(size, Image.Resampling.NEAREST)
    except ValueError:  # a mode Pillow cannot resize: convert first
        small = img.convert("RGBA").resize(size, Image.Resampling.NEAREST)
    if small.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in small.info:
        rgba = small.convert("RGBA")
        small = Image.alpha_composite(Image.new("RGBA", rgba.size, (0, 0, 0, 255)), rgba)
    rgb = np.asarray(small.convert("RGB"), dtype=np.int16)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    return float((np.abs(r - g).mean() + np.abs(g - b).mean() + np.abs(b - r).mean()) / 3)


def _flat_share(u: np.ndarray) -> float:
    """Share of neighbouring foreground pixel pairs that are (almost) equal; see :data:`SLICE_STATISTICS`."""
    fg = u > _DARK_LEVEL
    pairs = flat = 0
    for axis in (0, 1):
        a = np.diff(u, axis=axis)
        both = fg[1:, :] & fg[:-1, :] if axis == 0 else fg[:, 1:] & fg[:, :-1]
        pairs += int(both.sum())
        flat += int((np.abs(a[both]) < _FLAT_STEP).sum())
    return flat / pairs if pairs else 0.0


def _periodicity(u: np.ndarray) -> float:
    """Largest circular autocorrelation at shifts of at least ``_PERIOD_MIN_SHIFT`` px (FFT)."""
    z = u - u.mean()
    var = float((z * z).mean())
    if var <= 0:
        return 0.0
    ac = np.fft.irfft2(np.abs(np.fft.rfft2(z)) ** 2, s=z.shape) / (z.size * var)
    dy = np.minimum(np.arange(z.shape[0]), z.shape[0] - np.arange(z.shape[0]))
    dx = np.minimum(np.arange(z.shape[1]), z.shape[1] - np.arange(z.shape[1]))
    far = np.maximum(dy[:, None], dx[None, :]) >= _PERIOD_MIN_SHIFT
    return float(ac[far].max()) if far.any() else 0.0


def _source_levels(img: Image.Image) -> int:
    """Distinct gray levels of a decoded image, before resizing (which would blur a dithered image into many)."""
    step = max(1, int(np.ceil(np.sqrt(img.width * img.height / (512 * 512)))))
    if img.mode in _HIGH_DEPTH_MODES:
        return int(np.unique(np.asarray(img)[::step, ::step]).size)
    if step > 1:
        img = img.resize((max(1, img.width // step), max(1, img.height // step)), Image.Resampling.NEAREST)
    return sum(1 for count in img.convert("L").histogram() if count)


def _stats_of(img: Image.Image, size: tuple[int, int], resized: np.ndarray, unit: np.ndarray) -> SliceStats:
    """Statistics of an image (oriented size ``size``), its resized grayscale and its [0, 1] canvas."""
    lo, hi = float(resized.min()), float(resized.max())
    scale = max(abs(lo), abs(hi))
    relative_range = (hi - lo) / scale if np.isfinite(lo) and np.isfinite(hi) and hi > lo else 0.0
    u = unit.astype(np.float64, copy=False)
    std = float(u.std())
    step = (np.abs(np.diff(u, axis=1)).mean() + np.abs(np.diff(u, axis=0)).mean()) / 2
    hist = np.bincount(np.minimum((u * _HISTOGRAM_BINS).astype(np.int64), _HISTOGRAM_BINS - 1).ravel()) / u.size
    hist = hist[hist > 0]
    return SliceStats(
        width=size[0],
        height=size[1],
        colourfulness=_colourfulness(img, (resized.shape[1], resized.shape[0])),
        relative_range=float(relative_range),
        mean=float(u.mean()),
        std=std,
        dark_fraction=float(np.mean(u <= _DARK_LEVEL)),
        roughness=float(step / std) if std > 0 else 0.0,
        entropy_bits=float(-(hist * np.log2(hist)).sum()),
        flat_share=_flat_share(u),
        periodicity=_periodicity(u),
        source_levels=_source_levels(img),
    )


def _unit_and_stats(
    img: Image.Image, full_size: tuple[int, int] | None = None, spec: PreprocessingSpec = PREPROCESSING
) -> tuple[np.ndarray, SliceStats]:
    oriented, resized, size = _oriented_resized(img, spec, full_size)
    unit = _unit_from_resized(resized, spec)
    return unit, _stats_of(oriented, size, resized, unit)


def slice_stats(img: Image.Image, spec: PreprocessingSpec = PREPROCESSING) -> SliceStats:
    """Compute the validity statistics of a decoded image, exactly as serving does.

    Args:
        img: a decoded Pillow image of any size and mode.
        spec: the preprocessing spec (default: :data:`PREPROCESSING`).

    Returns:
        The :class:`SliceStats` (see :data:`SLICE_STATISTICS`).

    Raises:
        ValueError: the image has a zero width or height.

    """
    return _unit_and_stats(img, None, spec)[1]


@dataclass(frozen=True)
class SliceValidity:
    """Thresholds of the validity screen, measured against the training slices.

    Reference: every *train* slice of ``brain_mri`` (3651 images, all 256×256 8-bit grayscale
    JPEG; the test split was not used to choose anything). Recompute the statistics with
    ``python -m vitalcheck.training image-stats`` (:mod:`vitalcheck.training.image_stats`),
    which prints their quantiles, the central range below and how the screen treats each split.

    Two tiers. **Refused** (HTTP 400, :data:`RULE_NOT_MRI_SLICE`): an image clearly outside
    anything in training, each threshold far beyond the training extreme (given in brackets):

    * shorter side under ``min_side_px`` px [256 px], or aspect ratio above
      ``max_aspect_ratio`` [1];
    * ``relative_range`` below ``min_relative_range`` [min 0.845]: constant or near-constant;
    * ``colourfulness`` above ``max_colourfulness`` [0: all grayscale; a grayscale slice
      saved as colour JPEG measures 0, uniform colour noise about 85];
    * ``entropy_bits`` below ``min_entropy_bits`` [min 2.01], or ``source_levels`` below
      ``min_source_levels`` [min 132]: too few intensity levels (binary masks, line art,
      a dithered bi-level image, whose resized canvas alone looks gray);
    * ``roughness`` above ``max_roughness`` [max 0.498; white noise about 1.13]: noise-like;
    * ``mean`` above ``max_mean`` [max 0.498]: mostly bright, where slices are mostly dark
      background (documents, charts, inverted images);
    * ``flat_share`` above ``max_flat_share`` [max 0.174]: flat-filled shapes (drawings,
      synthetic images; 60 random blurred filled ellipses measure 0.35-0.71);
    * ``periodicity`` above ``max_periodicity`` [max 0.722]: a repeating pattern (a slice tiled
      2×2, 3×3 or 4×4 measures at least 0.98).

    **Warned** (answered, with a warning naming the statistics): shorter side under
    ``warn_min_side_px`` (the CNN's input side: the image is upsampled), aspect ratio above
    ``warn_max_aspect_ratio``, ``colourfulness`` above ``warn_max_colourfulness``, or any
    statistic of ``central`` outside the given range: its ``central_quantiles`` (0.1 and
    99.9 %) over the training slices, rounded outwards to 3 decimals (``relative_range`` has no
    upper bound, ``flat_share`` and ``periodicity`` no lower one). Not 0.5-99.5 %: the six statistics' tails overlap little, so that range warned
    on 3.7 % of the train and 4.4 % of the test slices; 0.1-99.9 % warns on 0.9 % (33) and 1.2 % (7).
    """

    min_side_px: int = 32
    max_aspect_ratio: float = 4.0
    min_relative_range: float = 0.25
    max_colourfulness: float = 16.0
    min_entropy_bits: float = 1.0
    min_source_levels: int = 8
    max_roughness: float = 0.8
    max_mean: float = 0.8
    max_flat_share: float = 0.3
    max_periodicity: float = 0.9
    warn_min_side_px: int = 128
    warn_max_aspect_ratio: float = 1.5
    warn_max_colourfulness: float = 4.0
    central_quantiles: tuple[float, float] = (0.1, 99.9)
    central: tuple[tuple[str, float, float], ...] = (
        ("relative_range", 0.873, float("inf")),
        ("mean", 0.078, 0.481),
        ("std", 0.131, 0.354),
        ("dark_fraction", 0.141, 0.784),
        ("roughness", 0.062, 0.4),
        ("entropy_bits", 2.413, 5.665),
        ("flat_share", 0.0, 0.166),
        ("periodicity", 0.0, 0.722),
    )
    reference: str = "brain_mri train split: 3651 slices, 256x256 8-bit grayscale JPEG"

    def as_dict(self) -> dict[str, Any]:
        """Return the thresholds as a JSON-serialisable dict (``central`` as name → [low, high])."""
        d = asdict(self)
        d["central_quantiles"] = list(self.central_quantiles)
        d["central"] = {name: [lo, hi if np.isfinite(hi) else None] for name, lo, hi in self.central}
        return d


SLICE_VALIDITY = SliceValidity()
"""The validity thresholds used by serving (see :class:`SliceValidity`)."""


def assess_slice(stats: SliceStats, validity: SliceValidity = SLICE_VALIDITY) -> tuple[str | None, list[str]]:
    """Apply the validity thresholds to an image's statistics without raising.

    Args:
        stats: the image's :class:`SliceStats`.
        validity: the thresholds (default: :data:`SLICE_VALIDITY`).

    Returns:
        ``(refusal, reasons)``: the refusal rule of the first failed refusal check (None if
        none failed; the reasons are then empty when the image is refused), and the reasons
        for a warning, e.g. ``["shorter side under 128 px", "background share"]``.

    """
    v = validity
    if stats.short_side < v.min_side_px:
        return f"not an MRI slice: shorter side under {v.min_side_px} px", []
    if stats.aspect_ratio > v.max_aspect_ratio:
        return f"not an MRI slice: aspect ratio above {v.max_aspect_ratio:g}:1", []
    if not stats.relative_range >= v.min_relative_range:
        return "not an MRI slice: constant or near-constant intensity", []
    if not stats.colourfulness <= v.max_colourfulness:
        return "not an MRI slice: strongly coloured (MRI slices are grayscale)", []
    if not stats.entropy_bits >= v.min_entropy_bits or stats.source_levels < v.min_source_levels:
        return "not an MRI slice: too few intensity levels", []
    if not stats.roughness <= v.max_roughness:
        return "not an MRI slice: noise-like texture", []
    if not stats.mean <= v.max_mean:
        return "not an MRI slice: mostly bright (MRI slices are mostly dark background)", []
    if not stats.flat_share <= v.max_flat_share:
        return "not an MRI slice: flat-filled shapes (a drawing or synthetic image)", []
    if not stats.periodicity <= v.max_periodicity:
        return "not an MRI slice: repeating pattern (tiled or collage image)", []
    reasons = []
    if stats.short_side < v.warn_min_side_px:
        reasons.append(f"shorter side under {v.warn_min_side_px} px")
    if stats.aspect_ratio > v.warn_max_aspect_ratio:
        reasons.append(f"aspect ratio above {v.warn_max_aspect_ratio:g}:1")
    if stats.colourfulness > v.warn_max_colourfulness:
        reasons.append("colour, where the training slices are grayscale")
    reasons.extend(_STAT_LABELS[name] for name, lo, hi in v.central if not lo <= getattr(stats, name) <= hi)
    return None, reasons


def check_slice(stats: SliceStats, validity: SliceValidity = SLICE_VALIDITY) -> list[str]:
    """Apply the validity screen to an image's statistics.

    Args:
        stats: the image's :class:`SliceStats`.
        validity: the thresholds (default: :data:`SLICE_VALIDITY`).

    Returns:
        The warnings for an image that is answered: empty, or one string
        ``"image: unlike the training MRI slices (<reasons>); the prediction may be unreliable"``.
        They name the checks concerned, never a value measured on the image.

    Raises:
        ImageRejected: with ``kind`` :data:`RULE_NOT_MRI_SLICE` and a rule naming the first
            failed check, when the image is clearly not an MRI slice.

    """
    refusal, reasons = assess_slice(stats, validity)
    if refusal is not None:
        raise ImageRejected(refusal, kind=RULE_NOT_MRI_SLICE)
    if not reasons:
        return []
    labels = set(_STAT_LABELS.values())
    parts = [r for r in reasons if r not in labels]
    outside = [r for r in reasons if r in labels]
    if outside:
        lo_q, hi_q = validity.central_quantiles
        parts.append(f"{', '.join(outside)} outside the {lo_q:g}-{hi_q:g} % range of the training slices")
    return [f"image: unlike the training MRI slices ({'; '.join(parts)}); the prediction may be unreliable"]


@dataclass(frozen=True)
class ScreenedImage:
    """An upload that passed the validity screen.

    Attributes:
        tensor: the model input, as from :func:`preprocess_image`.
        stats: its validity statistics.
        warnings: the screen's warnings (see :func:`check_slice`).

    """

    tensor: np.ndarray
    stats: SliceStats
    warnings: list[str]


def screen_image(
    data: bytes,
    *,
    max_bytes: int,
    max_pixels: int,
    max_decoded_bytes: int = MAX_DECODED_BYTES,
    validity: SliceValidity = SLICE_VALIDITY,
) -> ScreenedImage:
    """Validate, decode and screen an upload, and turn it into one model input.

    Does what :func:`preprocess_image` does (same limits, same tensor), then applies
    :func:`check_slice` to the image's :class:`SliceStats` (about 1 ms for an MRI slice).

    Args:
        data: the raw uploaded file.
        max_bytes: largest accepted upload, in bytes.
        max_pixels: largest accepted width × height, in pixels.
        max_decoded_bytes: most memory decoding may need (default :data:`MAX_DECODED_BYTES`).
        validity: the screen's thresholds (default: :data:`SLICE_VALIDITY`).

    Returns:
        The :class:`ScreenedImage` (tensor, statistics, warnings).

    Raises:
        TypeError, ValueError: see :func:`preprocess_image`.
        ImageRejected: as :func:`preprocess_image` (``kind`` :data:`RULE_IMAGE_REJECTED`), or
            the image fails the screen (``kind`` :data:`RULE_NOT_MRI_SLICE`).

    """
    unit, stats = _decode_then(data, max_bytes, max_pixels, max_decoded_bytes, _unit_and_stats)
    found = check_slice(stats, validity)
    return ScreenedImage(normalize(unit)[None, None, :, :], stats, found)
