"""Decoding of an uploaded JPEG or PNG within fixed limits (step 1 of the spec).

An upload is client data: the service must refuse a decompression bomb, a corrupt file or a
header-parsing attack without spending its memory or CPU on it. In order, this rejects inputs
above ``max_bytes``; accepts only JPEG and PNG; walks the chunk or marker headers
(:mod:`vitalcheck.imaging.headers`); opens the header lazily and rejects images whose header
claims more than ``max_pixels`` pixels or whose decoding needs more than
:data:`MAX_DECODED_BYTES`, *before* any pixel data is decoded; then decodes (large JPEGs at
1/2-1/8 scale, see :data:`~vitalcheck.imaging.preprocess.REDUCE_SIDE`), rejecting truncated
or corrupt data. Steps 2-6 are :mod:`vitalcheck.imaging.preprocess`.
"""

from __future__ import annotations

import io
import struct
import warnings
from collections.abc import Callable
from typing import TypeVar

import numpy as np
from PIL import Image, PngImagePlugin, UnidentifiedImageError

from vitalcheck.imaging.errors import ImageRejected
from vitalcheck.imaging.headers import _check_container, _sniff_other_format
from vitalcheck.imaging.preprocess import PREPROCESSING, REDUCE_SIDE, _oriented_resized, _unit_from_resized, normalize

T = TypeVar("T")

MAX_DECODED_BYTES = 40 * 1024 * 1024
"""Default bound on the memory that decoding one upload needs, in bytes, computed from the header.

It counts the decoded image as Pillow holds it (1 byte per pixel for ``L``/``P``/``1``, 2 for
16-bit grayscale, 4 for every multi-band mode, 16-bit RGB(A) included) and, for a JPEG with
more than one scan (progressive), libjpeg's whole-image coefficient buffer (2 bytes per DCT
coefficient of each component, whatever the scaling). Large JPEGs are decoded at 1/2-1/8 scale
(:data:`REDUCE_SIDE`), so their pixels count at that size. 40 MiB admits every grayscale image
up to the 4096×4096 pixel cap (8- or 16-bit PNG: 16 or 32 MiB; progressive JPEG: 32 MiB), any
baseline JPEG, and RGB(A) PNGs up to about 3200×3200; it refuses a 4096×4096 RGB(A) PNG
(64 MiB) or progressive colour JPEG (49 MiB). Every training slice is a 256×256 grayscale
JPEG (64 KiB decoded). Peak memory of a request stays under about 50 MB beyond the upload.
"""

# Text chunks are client data: cap what Pillow decompresses and keeps of them (process-wide;
# Pillow's defaults are 1 MiB per chunk and 64 MiB in all).
PngImagePlugin.MAX_TEXT_CHUNK = min(PngImagePlugin.MAX_TEXT_CHUNK, 1024 * 1024)
PngImagePlugin.MAX_TEXT_MEMORY = min(PngImagePlugin.MAX_TEXT_MEMORY, 1024 * 1024)

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
# What opening an upload may raise: the above and Pillow's "not an image" error.
_OPEN_ERRORS: tuple[type[BaseException], ...] = (UnidentifiedImageError, *_DECODE_ERRORS)


def _bytes_per_pixel(mode: str) -> int:
    """Bytes per pixel of a Pillow image in ``mode`` (multi-band modes use 4)."""
    if mode in ("1", "L", "P"):
        return 1
    if mode.startswith("I;16"):
        return 2
    return 4


def _decoding_bytes(img: Image.Image, full_size: tuple[int, int], scans: int) -> int:
    """Memory that decoding ``img`` needs, in bytes.

    Its pixels as Pillow holds them, plus libjpeg's coefficient buffer for a multi-scan JPEG
    (needed whatever the DCT scaling).
    """
    need = img.width * img.height * _bytes_per_pixel(img.mode)
    layers = getattr(img, "layer", None) if img.format == "JPEG" else None
    if scans > 1 and layers:
        h_max = max(max(h for _, h, _, _ in layers), 1)
        v_max = max(max(v for _, _, v, _ in layers), 1)
        w, h = full_size
        for _, hs, vs, _ in layers:
            need += -(-(w * hs // h_max) // 8) * -(-(h * vs // v_max) // 8) * 64 * 2
    return need


def _tensor_of(img: Image.Image, full_size: tuple[int, int]) -> np.ndarray:
    resized = _oriented_resized(img, PREPROCESSING, full_size)[1]
    return normalize(_unit_from_resized(resized, PREPROCESSING))[None, None, :, :]


def preprocess_image(
    data: bytes, *, max_bytes: int, max_pixels: int, max_decoded_bytes: int = MAX_DECODED_BYTES
) -> np.ndarray:
    """Validate and decode an uploaded JPEG or PNG and turn it into one model input.

    The byte count is checked first, then the format, the number of metadata chunks, the pixel
    count and the memory decoding needs (:data:`MAX_DECODED_BYTES`) from the image header,
    before any pixel data is decoded. This does not apply the validity screen; the service
    calls :func:`screen_image`, which does.

    Args:
        data: the raw uploaded file (bytes, bytearray or memoryview).
        max_bytes: largest accepted upload, in bytes (e.g. ``Settings.max_upload_bytes``).
        max_pixels: largest accepted width × height, in pixels (e.g. ``Settings.max_image_pixels``).
        max_decoded_bytes: most memory decoding may need, in bytes (see :data:`MAX_DECODED_BYTES`).

    Returns:
        float32 array of shape ``(1, 1, 128, 128)`` (:data:`PREPROCESSING`), normalised values
        ``(u - mean) / std`` for per-image min-max-scaled intensities ``u`` in [0, 1].

    Raises:
        TypeError: ``data`` is not bytes-like.
        ValueError: ``max_bytes`` or ``max_pixels`` is not a positive integer.
        ImageRejected: the upload is empty or larger than ``max_bytes`` ("exceeds N bytes"),
            is in another image format ("unsupported image format GIF (accepted: JPEG, PNG)"),
            is not a decodable JPEG or PNG (corrupt, truncated, not an image), has more than
            :data:`MAX_METADATA_SEGMENTS` metadata chunks ("more than 64 PNG metadata chunks"),
            or its header claims more than ``max_pixels`` pixels ("exceeds N pixels") or a
            decoded size above ``max_decoded_bytes`` ("decoding needs more than N bytes").

    """
    return _decode_then(data, max_bytes, max_pixels, max_decoded_bytes, _tensor_of)


def _decode_then(
    data: bytes,
    max_bytes: int,
    max_pixels: int,
    max_decoded_bytes: int,
    then: Callable[[Image.Image, tuple[int, int]], T],
) -> T:
    """Check the limits, decode ``data`` and return ``then(image, full_size)``; see :func:`preprocess_image`."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"image data must be bytes, not {type(data).__name__}")
    if not isinstance(max_bytes, int) or max_bytes < 1:
        raise ValueError("max_bytes must be a positive integer")
    if not isinstance(max_pixels, int) or max_pixels < 1:
        raise ValueError("max_pixels must be a positive integer")
    if not isinstance(max_decoded_bytes, int) or max_decoded_bytes < 1:
        raise ValueError("max_decoded_bytes must be a positive integer")
    data = bytes(data)
    if len(data) > max_bytes:
        raise ImageRejected(f"exceeds {max_bytes} bytes")
    if not data:
        raise ImageRejected(RULE_NOT_IMAGE)
    other = _sniff_other_format(data)
    if other is not None:
        raise ImageRejected(f"unsupported image format {other} (accepted: {', '.join(PREPROCESSING.accepted_formats)})")
    scans = _check_container(data)

    with warnings.catch_warnings():
        # Our own pixel limit is checked below; Pillow's global bomb warning is redundant.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(data), formats=list(PREPROCESSING.accepted_formats))
        except Image.DecompressionBombError:
            # Pillow refuses headers above twice its own limit before decoding anything.
            raise ImageRejected(f"exceeds {max_pixels} pixels") from None
        except _OPEN_ERRORS:
            raise ImageRejected(RULE_NOT_IMAGE) from None
        with img:
            width, height = img.size
            if width < 1 or height < 1:
                raise ImageRejected(RULE_NOT_IMAGE)
            if width * height > max_pixels:
                raise ImageRejected(f"exceeds {max_pixels} pixels")
            try:
                if img.format == "JPEG" and min(width, height) >= 2 * REDUCE_SIDE:
                    img.draft(img.mode, (REDUCE_SIDE, REDUCE_SIDE))  # DCT scaling: decode at 1/2-1/8
                need = _decoding_bytes(img, (width, height), scans)
            except _DECODE_ERRORS:
                raise ImageRejected(RULE_NOT_IMAGE) from None
            if need > max_decoded_bytes:
                raise ImageRejected(f"decoding needs more than {max_decoded_bytes} bytes")
            try:
                img.load()
            except Image.DecompressionBombError:
                raise ImageRejected(f"exceeds {max_pixels} pixels") from None
            except _DECODE_ERRORS:
                raise ImageRejected(RULE_NOT_IMAGE) from None
            try:
                return then(img, (width, height))
            except _DECODE_ERRORS:  # e.g. a malformed EXIF block or a mode without a grayscale conversion
                raise ImageRejected(RULE_NOT_IMAGE) from None
