"""Training and evaluation of the brain-tumour MRI classifier (training only: uses torch).

A compact CNN is trained from scratch on 128×128 grayscale slices preprocessed exactly as
the service preprocesses uploads (:mod:`vitalcheck.imaging`), exported to ONNX with a
dynamic batch axis and a softmax output, and described by a model card.

Protocol (see :func:`vitalcheck.training.brain_mri.trainer.train`):

* Data: ``brain_mri/manifest.csv`` (``path``, ``label``, ``split``; paths relative to the
  manifest's folder). Every image is decoded and preprocessed once, into memory.
* Validation: 15 % of the *train* split, drawn as whole groups of near-identical slices
  (64-bit perceptual hash, Hamming distance ≤ ``PHASH_GROUP_DISTANCE``, connected
  components), because neighbouring slices of one patient are near-duplicates and patient
  ids are not in the data. Used for checkpoint selection and temperature scaling.
* Training: AdamW, one-cycle schedule, class-weighted cross-entropy; augmentation of training
  batches only: flips, small rotations/zooms/shifts, gamma/contrast/brightness jitter, and
  histogram equalisation of a quarter of the images (the intensity histogram alone separates
  the two source collections, so the model is taught not to depend on it). Fixed seeds,
  two torch threads; deterministic for a given thread count.
* Test: the manifest's test split, touched once at the end through the exported ONNX graph
  (what is served). It was *not* made by patient either; the card reports metrics on the
  test images without a near-duplicate in train separately.
* Shortcut checks: the no-tumour slices come from another collection (Br35H); the card
  records how well the image border alone, or the intensity histogram alone, predicts the
  class, how the model answers when the brain is blanked out, and how its predictions move
  when intensity histograms are equalised.

Modules, one per concern: :mod:`.data` (manifest, decoding, perceptual hashes, grouped
validation split), :mod:`.metrics`, :mod:`.network` (architecture, temperature scaling, ONNX
export), :mod:`.fit` (augmentation and the training loop), :mod:`.audits` (shortcut and
leakage checks), :mod:`.trainer` (``train`` and ``evaluate``, the model card).

Run without the project CLI: ``python -m vitalcheck.training.brain_mri train`` /
``python -m vitalcheck.training.brain_mri evaluate --model artifacts/brain_tumor_cnn.onnx``.
"""

from __future__ import annotations

import logging
import os
import sys

# On a shared CPU, OpenMP threads that spin while waiting for a descheduled sibling make
# two-thread training several times slower than one thread; passive waiting avoids that.
# libgomp reads this when torch is first imported, so it must be set before that import:
# here, because importing any module of this package runs this first.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
if "torch" in sys.modules:  # pragma: no cover - depends on the importer
    logging.getLogger(__name__).debug("torch was imported before %s; OMP_WAIT_POLICY may not apply", __name__)
