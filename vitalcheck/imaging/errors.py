"""Why an upload was refused: :class:`ImageRejected`, of two kinds (defined with every error class in :mod:`vitalcheck.errors`).

The API answers it as :class:`vitalcheck.errors.InvalidInput` (400) at ``loc: ["image"]``, type ``kind``.
"""

from vitalcheck.errors import RULE_IMAGE_REJECTED, RULE_NOT_MRI_SLICE, ImageRejected

__all__ = ["RULE_IMAGE_REJECTED", "RULE_NOT_MRI_SLICE", "ImageRejected"]
