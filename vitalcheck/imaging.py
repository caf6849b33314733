"""Image preprocessing for the brain-tumour MRI classifier, shared by training and serving.

Serving-safe: depends on numpy and Pillow only (no torch). The one preprocessing spec is
:data:`PREPROCESSING`; training (:mod:`vitalcheck.training.brain_mri`) and the service both
go through :func:`preprocess_pil`, so a served image is turned into exactly the tensor a
training image was turned into.

The pipeline, for one image of any size and mode:

1. (bytes only) reject inputs above ``max_bytes``; open the header lazily, accepting only
   JPEG and PNG; reject images whose header claims more than ``max_pixels`` pixels
   *before* any pixel data is decoded (decompression bombs); decode fully, rejecting
   truncated or corrupt data.
2. Apply the EXIF orientation tag, if any.
3. Grayscale: 16- and 32-bit grayscale (``I;16*``, ``I``) and float (``F``) images keep
   their full depth; images with an alpha channel or a transparency key are composited onto
   black (the MRI background); everything else goes through Pillow's ``convert("L")``
   (ITU-R 601-2 luma for RGB).
4. Resize, keeping the aspect ratio, so that the longer side is 128 px (Pillow bilinear,
   which antialiases when shrinking), and centre it on a 128×128 canvas filled with the
   image's minimum. Square images (all training images are 256×256) are simply resized.
5. Scale per image to [0, 1] by min-max (a constant image becomes all zeros). This makes
   8-bit and 16-bit inputs comparable whatever their bit depth or window.
6. Normalise: ``(x - mean) / std`` with the training-set constants below; return float32
   of shape ``(1, 1, 128, 128)`` (NCHW).
"""

from __future__ import annotations

import io
import struct
import warnings
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = [
    "PREPROCESSING",
    "ImageRejected",
    "PreprocessingSpec",
    "normalize",
    "pil_to_unit",
    "preprocess_image",
    "preprocess_pil",
]


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

RULE_NOT_IMAGE = "not a decodable JPEG or PNG image"
# What Pillow raises on corrupt, truncated or malformed input.
_DECODE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    TypeError,
    KeyError,
    IndexError,
    struct.error,
    MemoryError,
)

# Magic numbers of common image formats that are recognised but not accepted.
_OTHER_FORMATS: tuple[tuple[bytes, str], ...] = (
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"),
    (b"\xff\x4f\xff\x51", "JPEG 2000"),
    (b"DICM", "DICOM"),
)


class ImageRejected(ValueError):
    """An uploaded image was refused; ``rule`` says which rule it broke.

    The message is ``"image rejected: <rule>"`` and never contains the image bytes.

    Attributes:
        rule: short, client-safe description of the broken rule, e.g.
            ``"exceeds 20971520 bytes"`` or ``"not a decodable JPEG or PNG image"``.

    """

    def __init__(self, rule: str) -> None:
        super().__init__(f"image rejected: {rule}")
        self.rule = rule


def _sniff_other_format(data: bytes) -> str | None:
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    if data[128:132] == b"DICM":
        return "DICOM"
    for magic, name in _OTHER_FORMATS:
        if data.startswith(magic):
            return name
    return None


def _to_gray_float(img: Image.Image) -> np.ndarray:
    """Return a 2-D float32 array of the image's grayscale intensities (native units)."""
    if img.mode in _HIGH_DEPTH_MODES:
        return np.asarray(img).astype(np.float32)
    if img.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        img = Image.alpha_composite(black, rgba)
    return np.asarray(img.convert("L"), dtype=np.float32)


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
    if img.width < 1 or img.height < 1:
        raise ValueError("image has zero width or height")
    if spec.exif_transpose:
        img = ImageOps.exif_transpose(img)
    gray = _to_gray_float(img)
    h, w = gray.shape
    scale = min(spec.width / w, spec.height / h)
    new_w = min(spec.width, max(1, round(w * scale)))
    new_h = min(spec.height, max(1, round(h * scale)))
    resized = np.asarray(Image.fromarray(gray).resize((new_w, new_h), _RESAMPLE), dtype=np.float32)
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


def preprocess_image(data: bytes, *, max_bytes: int, max_pixels: int) -> np.ndarray:
    """Validate and decode an uploaded JPEG or PNG and turn it into one model input.

    The byte count is checked first, then the format and the pixel count from the image
    header, before any pixel data is decoded.

    Args:
        data: the raw uploaded file (bytes, bytearray or memoryview).
        max_bytes: largest accepted upload, in bytes (e.g. ``Settings.max_upload_bytes``).
        max_pixels: largest accepted width × height, in pixels (e.g. ``Settings.max_image_pixels``).

    Returns:
        float32 array of shape ``(1, 1, 128, 128)`` (:data:`PREPROCESSING`), normalised values
        ``(u - mean) / std`` for per-image min-max-scaled intensities ``u`` in [0, 1].

    Raises:
        TypeError: ``data`` is not bytes-like.
        ValueError: ``max_bytes`` or ``max_pixels`` is not a positive integer.
        ImageRejected: the upload is empty or larger than ``max_bytes`` ("exceeds N bytes"),
            is in another image format ("unsupported image format GIF (accepted: JPEG, PNG)"),
            is not a decodable JPEG or PNG (corrupt, truncated, not an image), or its header
            claims more than ``max_pixels`` pixels ("exceeds N pixels").

    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"image data must be bytes, not {type(data).__name__}")
    if not isinstance(max_bytes, int) or max_bytes < 1:
        raise ValueError("max_bytes must be a positive integer")
    if not isinstance(max_pixels, int) or max_pixels < 1:
        raise ValueError("max_pixels must be a positive integer")
    data = bytes(data)
    if len(data) > max_bytes:
        raise ImageRejected(f"exceeds {max_bytes} bytes")
    if not data:
        raise ImageRejected(RULE_NOT_IMAGE)
    other = _sniff_other_format(data)
    if other is not None:
        raise ImageRejected(f"unsupported image format {other} (accepted: {', '.join(PREPROCESSING.accepted_formats)})")

    with warnings.catch_warnings():
        # Our own pixel limit is checked below; Pillow's global bomb warning is redundant.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(data), formats=list(PREPROCESSING.accepted_formats))
        except Image.DecompressionBombError:
            # Pillow refuses headers above twice its own limit before decoding anything.
            raise ImageRejected(f"exceeds {max_pixels} pixels") from None
        except (UnidentifiedImageError, *_DECODE_ERRORS):
            raise ImageRejected(RULE_NOT_IMAGE) from None
        with img:
            width, height = img.size
            if width < 1 or height < 1:
                raise ImageRejected(RULE_NOT_IMAGE)
            if width * height > max_pixels:
                raise ImageRejected(f"exceeds {max_pixels} pixels")
            try:
                img.load()
            except Image.DecompressionBombError:
                raise ImageRejected(f"exceeds {max_pixels} pixels") from None
            except _DECODE_ERRORS:
                raise ImageRejected(RULE_NOT_IMAGE) from None
            try:
                return preprocess_pil(img)
            except _DECODE_ERRORS:  # e.g. a malformed EXIF block or a mode without a grayscale conversion
                raise ImageRejected(RULE_NOT_IMAGE) from None
