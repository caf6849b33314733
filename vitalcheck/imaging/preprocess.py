"""The preprocessing spec of the brain-tumour MRI classifier, shared by training and serving.

Serving-safe: numpy and Pillow only (no torch). Training (:mod:`vitalcheck.training.brain_mri`)
and the service both go through :func:`preprocess_pil`, so a served image is turned into exactly
the tensor a training image was turned into. After decoding (:mod:`vitalcheck.imaging.decode`),
for one image of any size and mode:

2. Apply the EXIF orientation tag, if any.
3. Grayscale: 16- and 32-bit grayscale (``I;16*``, ``I``) and float (``F``) images keep
   their full depth; images with an alpha channel or a transparency key are composited onto
   black (the MRI background); everything else goes through Pillow's ``convert("L")``
   (ITU-R 601-2 luma for RGB).
4. (images with a side of 1024 px or more) block-average by an integer factor, strip by strip,
   down to at least 512 px along that side. Resize, keeping the aspect ratio, so that the longer side is 128 px (Pillow bilinear,
   which antialiases when shrinking), and centre it on a 128×128 canvas filled with the
   image's minimum. Square images (all training images are 256×256) are simply resized.
5. Scale per image to [0, 1] by min-max (a constant image becomes all zeros). This makes
   8-bit and 16-bit inputs comparable whatever their bit depth or window.
6. Normalise: ``(x - mean) / std`` with the training-set constants below; return float32
   of shape ``(1, 1, 128, 128)`` (NCHW).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from PIL import ExifTags, Image, ImageOps


@dataclass(frozen=True)
class PreprocessingSpec:
    """The preprocessing contract of the brain-tumour model (see the module docstring).

    Attributes:
        height: output height in pixels.
        width: output width in pixels.
        channels: output channels (1: grayscale).
        layout: tensor layout of the model input.
        dtype: tensor dtype of the model input.
        accepted_formats: image formats :func:`preprocess_image` decodes.
        exif_transpose: whether the EXIF orientation tag is applied.
        grayscale: how colour, alpha and high-bit-depth images become one channel.
        resize: how the image is brought to ``height`` × ``width``.
        interpolation: Pillow resampling filter used by ``resize``.
        intensity_scaling: how intensities are brought to [0, 1].
        mean: subtracted after scaling (mean of the scaled training images).
        std: divided by after subtracting ``mean`` (std of the scaled training images).

    """

    height: int = 128
    width: int = 128
    channels: int = 1
    layout: str = "NCHW"
    dtype: str = "float32"
    accepted_formats: tuple[str, ...] = ("JPEG", "PNG")
    exif_transpose: bool = True
    grayscale: str = (
        "I;16/I/F kept at full depth; alpha or transparency composited onto black; "
        "otherwise Pillow convert('L') (ITU-R 601-2 luma)"
    )
    resize: str = "aspect-preserving, longer side to 128 px, centred on a 128x128 canvas filled with the image minimum"
    interpolation: str = "bilinear"
    intensity_scaling: str = "per-image min-max to [0, 1]; a constant image becomes all zeros"
    # Mean and std of the min-max-scaled 128x128 training images of the brain_mri set
    # (3651 images; computed by vitalcheck.training.brain_mri, which records the values it
    # sees in the model card and warns when they drift from these constants).
    mean: float = 0.2158
    std: float = 0.2238

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        """Shape of one preprocessed image: ``(1, channels, height, width)``."""
        return (1, self.channels, self.height, self.width)

    def as_dict(self) -> dict[str, Any]:
        """Return the spec as a JSON-serialisable dict (tuples become lists), for model cards."""
        d = asdict(self)
        d["accepted_formats"] = list(self.accepted_formats)
        d["input_shape"] = ["batch", self.channels, self.height, self.width]
        return d


PREPROCESSING = PreprocessingSpec()
"""The one preprocessing spec shared by training and serving."""

_RESAMPLE = Image.Resampling.BILINEAR
_HIGH_DEPTH_MODES = frozenset({"I", "I;16", "I;16L", "I;16B", "I;16N", "F"})

REDUCE_SIDE = 512
"""Images with a side of at least twice this are shrunk along it by an integer factor before the
bilinear resize to 128 px: JPEGs in the decoder (DCT scaling, 1/2 to 1/8, so at least this many
pixels remain), any image by a block mean computed strip by strip (so no full-size grayscale,
float or composited copy is ever made). The result differs from resizing the full image by far
less than 8-bit quantisation; images under 1024 px (all the training slices) are untouched."""


def _to_gray_float(img: Image.Image) -> np.ndarray:
    """Return a 2-D float32 array of the image's grayscale intensities (native units)."""
    if img.mode in _HIGH_DEPTH_MODES:
        return np.asarray(img).astype(np.float32)
    if img.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        img = Image.alpha_composite(black, rgba)
    return np.asarray(img.convert("L"), dtype=np.float32)


_STRIP_PIXELS = 1 << 18
_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_SWAPS_SIDES = frozenset({5, 6, 7, 8})


def _reduced_gray(img: Image.Image, fx: int, fy: int) -> np.ndarray:
    """Grayscale (as :func:`_to_gray_float`) block-averaged over ``fx`` × ``fy`` pixels, strip by strip."""
    width, height = img.size
    step = max(1, _STRIP_PIXELS // max(1, width * fy)) * fy
    cols = np.arange(0, width, fx)
    col_n = np.diff(np.append(cols, width))
    out = []
    for top in range(0, height, step):
        strip = _to_gray_float(img.crop((0, top, width, min(height, top + step))))
        rows = np.arange(0, strip.shape[0], fy)
        row_n = np.diff(np.append(rows, strip.shape[0]))
        sums = np.add.reduceat(np.add.reduceat(strip, rows, axis=0, dtype=np.float64), cols, axis=1)
        out.append((sums / np.outer(row_n, col_n)).astype(np.float32))
    return np.concatenate(out, axis=0)


def pil_to_unit(img: Image.Image, spec: PreprocessingSpec = PREPROCESSING) -> np.ndarray:
    """Apply steps 2-5 of the spec: orientation, grayscale, resize, min-max scaling.

    Args:
        img: a decoded Pillow image of any size and mode.
        spec: the preprocessing spec (default: :data:`PREPROCESSING`).

    Returns:
        float32 array of shape ``(spec.height, spec.width)`` with values in [0, 1].

    Raises:
        ValueError: the image has a zero width or height.

    """
    return _unit_from_resized(_oriented_resized(img, spec)[1], spec)


def _oriented_resized(
    img: Image.Image, spec: PreprocessingSpec, full_size: tuple[int, int] | None = None
) -> tuple[Image.Image, np.ndarray, tuple[int, int]]:
    """Steps 2-4 up to the resize.

    Returns the image to sample colour from, its resized grayscale (native units) and the
    oriented size of the full image (``full_size`` is the size before a JPEG draft, if any).
    Images with a side of at least ``2 * REDUCE_SIDE`` pixels are block-averaged first.
    """
    if img.width < 1 or img.height < 1:
        raise ValueError("image has zero width or height")
    w, h = full_size or img.size
    fx, fy = max(1, img.width // REDUCE_SIDE), max(1, img.height // REDUCE_SIDE)
    if max(fx, fy) < 2:
        if spec.exif_transpose:
            before = img.size
            img = ImageOps.exif_transpose(img)
            if img.size != before:
                w, h = h, w
        gray = _to_gray_float(img)
    else:
        gray = _reduced_gray(img, fx, fy)
        orientation = img.getexif().get(ExifTags.Base.Orientation, 1) if spec.exif_transpose else 1
        if orientation in _ORIENTATION:
            gray = np.asarray(Image.fromarray(gray).transpose(_ORIENTATION[orientation]), dtype=np.float32)
            if orientation in _SWAPS_SIDES:
                w, h = h, w
    scale = min(spec.width / w, spec.height / h)
    new_w = min(spec.width, max(1, round(w * scale)))
    new_h = min(spec.height, max(1, round(h * scale)))
    resized = np.asarray(Image.fromarray(gray).resize((new_w, new_h), _RESAMPLE), dtype=np.float32)
    return img, resized, (w, h)


def _unit_from_resized(resized: np.ndarray, spec: PreprocessingSpec) -> np.ndarray:
    """Steps 4-5 after the resize: centre on the canvas, min-max scale to [0, 1]."""
    new_h, new_w = resized.shape
    lo = float(resized.min())
    hi = float(resized.max())
    if (new_w, new_h) == (spec.width, spec.height):
        canvas = resized
    else:
        canvas = np.full((spec.height, spec.width), lo, dtype=np.float32)
        top = (spec.height - new_h) // 2
        left = (spec.width - new_w) // 2
        canvas[top : top + new_h, left : left + new_w] = resized
    if not np.isfinite(lo) or not np.isfinite(hi) or hi <= lo:
        return np.zeros((spec.height, spec.width), dtype=np.float32)
    unit = (canvas - lo) / (hi - lo)
    return np.clip(unit, 0.0, 1.0).astype(np.float32, copy=False)


def normalize(unit: np.ndarray, spec: PreprocessingSpec = PREPROCESSING) -> np.ndarray:
    """Apply step 6 of the spec: ``(unit - mean) / std``.

    Args:
        unit: array of any shape with values in [0, 1] (as from :func:`pil_to_unit`).
        spec: the preprocessing spec (default: :data:`PREPROCESSING`).

    Returns:
        float32 array of the same shape.

    """
    return ((np.asarray(unit, dtype=np.float32) - np.float32(spec.mean)) / np.float32(spec.std)).astype(
        np.float32, copy=False
    )


def preprocess_pil(img: Image.Image, spec: PreprocessingSpec = PREPROCESSING) -> np.ndarray:
    """Turn a decoded Pillow image into one model input (steps 2-6 of the spec).

    Training calls this (through :func:`pil_to_unit` and :func:`normalize`, with augmentation
    in between) and serving calls it through :func:`preprocess_image`.

    Args:
        img: a decoded Pillow image of any size and mode.
        spec: the preprocessing spec (default: :data:`PREPROCESSING`).

    Returns:
        float32 array of shape ``(1, 1, spec.height, spec.width)``; values are
        ``(u - spec.mean) / spec.std`` for ``u`` in [0, 1].

    Raises:
        ValueError: the image has a zero width or height.

    """
    return normalize(pil_to_unit(img, spec), spec)[None, None, :, :]
