"""Why an upload was refused: one exception, of two kinds, that the API turns into a client error naming the rule."""

from __future__ import annotations

RULE_IMAGE_REJECTED = "image_rejected"
"""Error type of an upload that is too large, not a JPEG/PNG, or undecodable."""

RULE_NOT_MRI_SLICE = "not_an_mri_slice"
"""Error type of a decodable image that fails the validity screen (:func:`vitalcheck.imaging.check_slice`)."""


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
