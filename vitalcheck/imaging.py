"""Image preprocessing for the brain-tumour MRI classifier, shared by training and serving.

Serving-safe: depends on numpy and Pillow only (no torch). The one preprocessing spec is
:data:`PREPROCESSING`; training (:mod:`vitalcheck.training.brain_mri`) and the service both
go through :func:`preprocess_pil`, so a served image is turned into exactly the tensor a
training image was turned into.

The pipeline, for one image of any size and mode:

1. (bytes only) reject inputs above ``max_bytes``; accept only JPEG and PNG; walk the chunk
   or marker headers, rejecting more than :data:`MAX_METADATA_SEGMENTS` metadata chunks; open
   the header lazily and reject images whose header claims more than ``max_pixels`` pixels
   or whose decoding needs more than :data:`MAX_DECODED_BYTES` *before* any pixel data is
   decoded (decompression bombs); decode (large JPEGs at 1/2-1/8 scale, see
   :data:`REDUCE_SIDE`), rejecting truncated or corrupt data.
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

Serving also screens each upload before the CNN sees it (:func:`screen_image`): cheap
statistics of the decoded image (:class:`SliceStats`: size, colourfulness, dynamic range, and
mean, spread, background share, roughness, histogram entropy, share of flat-filled pixels and
periodicity of the 128×128 image the CNN sees) are compared with those of the training slices
(:data:`SLICE_VALIDITY`). Images clearly unlike any MRI slice (tiny, near-constant, strongly
coloured, noise-like, mostly bright, too few intensity levels, flat-filled drawings, tiled
pictures) are refused with :data:`RULE_NOT_MRI_SLICE`; images merely outside
the 0.1-99.9 % range of the training slices' statistics are answered with a warning. Training does not
screen (its images are the reference).
"""

from __future__ import annotations

import io
import struct
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

import numpy as np
from PIL import ExifTags, Image, ImageOps, PngImagePlugin, UnidentifiedImageError

__all__ = [
    "MAX_DECODED_BYTES",
    "MAX_METADATA_SEGMENTS",
    "PREPROCESSING",
    "RULE_NOT_MRI_SLICE",
    "SLICE_STATISTICS",
    "SLICE_VALIDITY",
    "ImageRejected",
    "PreprocessingSpec",
    "ScreenedImage",
    "SliceStats",
    "SliceValidity",
    "assess_slice",
    "check_slice",
    "normalize",
    "pil_to_unit",
    "preprocess_image",
    "preprocess_pil",
    "screen_image",
    "slice_stats",
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

T = TypeVar("T")

_RESAMPLE = Image.Resampling.BILINEAR
_HIGH_DEPTH_MODES = frozenset({"I", "I;16", "I;16L", "I;16B", "I;16N", "F"})

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

MAX_METADATA_SEGMENTS = 64
"""Most PNG chunks other than image data (IDAT/fdAT), or JPEG marker segments before the first
scan, an upload may have: Pillow parses each one in Python (500 000 tiny ``tEXt`` chunks cost
about 2 s of CPU), where real images have a few dozen at most."""

_MAX_PNG_CHUNKS = 16_384
"""Most PNG chunks in all (image data included; 20 MiB in libpng's 8 KiB IDAT chunks is 2560)."""

REDUCE_SIDE = 512
"""Images with a side of at least twice this are shrunk along it by an integer factor before the
bilinear resize to 128 px: JPEGs in the decoder (DCT scaling, 1/2 to 1/8, so at least this many
pixels remain), any image by a block mean computed strip by strip (so no full-size grayscale,
float or composited copy is ever made). The result differs from resizing the full image by far
less than 8-bit quantisation; images under 1024 px (all the training slices) are untouched."""

# Text chunks are client data: cap what Pillow decompresses and keeps of them (process-wide;
# Pillow's defaults are 1 MiB per chunk and 64 MiB in all).
PngImagePlugin.MAX_TEXT_CHUNK = min(PngImagePlugin.MAX_TEXT_CHUNK, 1024 * 1024)
PngImagePlugin.MAX_TEXT_MEMORY = min(PngImagePlugin.MAX_TEXT_MEMORY, 1024 * 1024)

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_IMAGE_DATA = frozenset({b"IDAT", b"fdAT"})
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})

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


RULE_IMAGE_REJECTED = "image_rejected"
"""Error type of an upload that is too large, not a JPEG/PNG, or undecodable."""

RULE_NOT_MRI_SLICE = "not_an_mri_slice"
"""Error type of a decodable image that fails the validity screen (:func:`check_slice`)."""


class ImageRejected(ValueError):
    """An uploaded image was refused; ``rule`` says which rule it broke.

    The message is ``"image rejected: <rule>"`` and never contains the image bytes or any
    value computed from the image.

    Attributes:
        rule: short, client-safe description of the broken rule, e.g.
            ``"exceeds 20971520 bytes"``, ``"not a decodable JPEG or PNG image"`` or
            ``"not an MRI slice: noise-like texture (...)"``.
        kind: machine-readable error type: :data:`RULE_IMAGE_REJECTED` (size, format,
            decoding) or :data:`RULE_NOT_MRI_SLICE` (the validity screen).

    """

    def __init__(self, rule: str, kind: str = RULE_IMAGE_REJECTED) -> None:
        super().__init__(f"image rejected: {rule}")
        self.rule = rule
        self.kind = kind


def _sniff_other_format(data: bytes) -> str | None:
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    if data[128:132] == b"DICM":
        return "DICOM"
    for magic, name in _OTHER_FORMATS:
        if data.startswith(magic):
            return name
    return None


def _png_chunks_ok(data: bytes) -> bool:
    """Walk the PNG chunk headers (no CRC, no decompression): False if there are too many chunks."""
    pos, other, total = len(_PNG_SIGNATURE), 0, 0
    while pos + 8 <= len(data):
        (length,) = struct.unpack_from(">I", data, pos)
        kind = data[pos + 4 : pos + 8]
        total += 1
        other += kind not in _PNG_IMAGE_DATA
        if other > MAX_METADATA_SEGMENTS or total > _MAX_PNG_CHUNKS:
            return False
        if kind == b"IEND":
            break
        pos += 12 + length
    return True


def _jpeg_layout(data: bytes) -> tuple[int, int]:
    """Walk the JPEG marker segments up to the first scan: ``(segments, scans)``.

    ``segments`` stops counting just above :data:`MAX_METADATA_SEGMENTS`; ``scans`` counts the
    start-of-scan markers (``FF DA`` cannot occur inside entropy-coded data, where ``FF`` is
    always followed by ``00`` or a restart marker; a thumbnail inside an APP segment is skipped).
    Malformed layouts are left to Pillow (which rejects them).
    """
    pos, segments = 2, 0
    while pos + 4 <= len(data) and segments <= MAX_METADATA_SEGMENTS:
        if data[pos] != 0xFF:
            return segments, 0
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in _JPEG_STANDALONE:
            pos += 2
            continue
        segments += 1
        if marker == 0xDA:
            return segments, 1 + data.count(b"\xff\xda", pos + 2)
        (length,) = struct.unpack_from(">H", data, pos + 2)
        pos += 2 + length
    return segments, 0


def _check_container(data: bytes) -> int:
    """Refuse uploads with too many metadata chunks; return the number of JPEG scans (0 for PNG)."""
    if data.startswith(_PNG_SIGNATURE):
        if not _png_chunks_ok(data):
            raise ImageRejected(f"more than {MAX_METADATA_SEGMENTS} PNG metadata chunks")
        return 0
    if data.startswith(b"\xff\xd8"):
        segments, scans = _jpeg_layout(data)
        if segments > MAX_METADATA_SEGMENTS:
            raise ImageRejected(f"more than {MAX_METADATA_SEGMENTS} JPEG header segments")
        if scans > MAX_JPEG_SCANS:  # each scan of a progressive JPEG is decoded over the whole image
            raise ImageRejected(f"more than {MAX_JPEG_SCANS} JPEG scans")
        return scans
    return 0


MAX_JPEG_SCANS = 64
"""Most scans (SOS markers) of a JPEG: libjpeg's progressive encodings use about 10."""


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
        except (UnidentifiedImageError, *_DECODE_ERRORS):
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


# ---------------------------------------------------------------------------------------------
# Validity screen: is this plausibly a brain MRI slice like the training ones?
# ---------------------------------------------------------------------------------------------
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
    * ``entropy_bits`` below ``min_entropy_bits`` [min 2.01]: too few intensity levels
      (binary masks, line art);
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
    if not stats.entropy_bits >= v.min_entropy_bits:
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
