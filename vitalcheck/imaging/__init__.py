"""Image handling of the brain-tumour MRI classifier: one preprocessing spec for training and serving.

Serving-safe: numpy and Pillow only (no torch). Split by concern, each module saying why it
exists: :mod:`~vitalcheck.imaging.preprocess` (the spec, :data:`PREPROCESSING`, and steps 2-6,
shared with training), :mod:`~vitalcheck.imaging.decode` (step 1: decoding an upload within
fixed limits), :mod:`~vitalcheck.imaging.headers` (container checks on the raw bytes),
:mod:`~vitalcheck.imaging.screen` (the validity screen, :data:`SLICE_VALIDITY`) and
:mod:`~vitalcheck.imaging.errors` (:class:`ImageRejected`). Import from this package.
"""

from vitalcheck.imaging.decode import MAX_DECODED_BYTES, preprocess_image
from vitalcheck.imaging.errors import RULE_NOT_MRI_SLICE, ImageRejected
from vitalcheck.imaging.headers import MAX_JPEG_SCANS, MAX_METADATA_SEGMENTS
from vitalcheck.imaging.preprocess import PREPROCESSING, PreprocessingSpec, normalize, pil_to_unit, preprocess_pil
from vitalcheck.imaging.screen import (
    SLICE_STATISTICS,
    SLICE_VALIDITY,
    ScreenedImage,
    SliceStats,
    SliceValidity,
    assess_slice,
    check_slice,
    screen_image,
    slice_stats,
)

__all__ = [
    "MAX_DECODED_BYTES",
    "MAX_JPEG_SCANS",
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
