"""Schemas of the brain-tumour MRI classifier (`POST /api/v1/imaging/brain-tumor`).

The request is a multipart upload with one field, ``image`` (a JPEG or PNG file); the
response is an :class:`~vitalcheck.schemas.common.Envelope` around a
:class:`~vitalcheck.schemas.common.ClassPrediction` with the four classes of
:data:`vitalcheck.catalog.BRAIN_TUMOR`.
"""

from vitalcheck.schemas.common import ClassPrediction

BrainTumorPrediction = ClassPrediction
"""Probabilities of glioma, meningioma, notumor and pituitary, and the predicted class."""
