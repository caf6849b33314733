"""Serving of the brain-tumour MRI classifier: an ONNX graph run by ONNX Runtime on the CPU.

Serving-safe: onnxruntime and numpy only (plus :mod:`vitalcheck.imaging`, numpy + Pillow).

The graph (``artifacts/brain_tumor_cnn.onnx``) has one input, ``image``: float32 of shape
``(batch, 1, 128, 128)`` as produced by :func:`vitalcheck.imaging.preprocess_image`, and one
output, ``probabilities``: float32 of shape ``(batch, 4)``, the **softmax probabilities**
(the softmax is part of the graph) in the catalog class order
``vitalcheck.catalog.BRAIN_TUMOR.classes`` = glioma, meningioma, notumor, pituitary.
:func:`predict_probabilities` renormalises them in float64 so each row sums to 1.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from vitalcheck.cards import ArtifactCheckError, ModelCard, verify_artifact
from vitalcheck.catalog import BRAIN_TUMOR
from vitalcheck.imaging import PREPROCESSING, preprocess_image, screen_image
from vitalcheck.schemas.common import ModelInfo

INPUT_NAME = "image"
"""Name of the graph's input."""

OUTPUT_NAME = "probabilities"
"""Name of the graph's output (softmax probabilities, catalog class order)."""

GOLDEN_TOLERANCE = 1e-5
"""Largest absolute difference allowed between a card's golden output and the loaded graph's answer."""


def load_onnx_session(path: str | Path, *, intra_op_threads: int, inter_op_threads: int) -> ort.InferenceSession:
    """Open an ONNX graph for CPU inference.

    Args:
        path: the ``.onnx`` file.
        intra_op_threads: threads used inside one operator (e.g. ``Settings.onnx_intra_op_threads``), ≥ 1.
        inter_op_threads: threads used across independent operators (``Settings.onnx_inter_op_threads``), ≥ 1.

    Returns:
        An ``InferenceSession`` on the CPU execution provider, all graph optimisations enabled,
        sequential execution mode (parallel when ``inter_op_threads`` > 1).

    Raises:
        ValueError: a thread count is below 1.
        FileNotFoundError: ``path`` does not exist.
        onnxruntime.capi.onnxruntime_pybind11_state.Fail (a RuntimeError): the file is not a valid ONNX graph.

    """
    if intra_op_threads < 1 or inter_op_threads < 1:
        raise ValueError("ONNX Runtime thread counts must be at least 1")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ONNX graph {path} does not exist")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = int(intra_op_threads)
    options.inter_op_num_threads = int(inter_op_threads)
    options.execution_mode = (
        ort.ExecutionMode.ORT_PARALLEL if inter_op_threads > 1 else ort.ExecutionMode.ORT_SEQUENTIAL
    )
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def predict_probabilities(session: ort.InferenceSession, batch: np.ndarray) -> np.ndarray:
    """Class probabilities for a batch of preprocessed images.

    Args:
        session: a session from :func:`load_onnx_session`.
        batch: float array of shape ``(n, 1, 128, 128)`` (``n`` ≥ 1), each image as returned
            by :func:`vitalcheck.imaging.preprocess_image` (stack or concatenate them).

    Returns:
        float64 array of shape ``(n, 4)``: softmax probabilities in the order glioma,
        meningioma, notumor, pituitary; every row sums to 1.

    Raises:
        ValueError: ``batch`` does not have shape ``(n, 1, 128, 128)``, is empty, or holds
            non-finite values; or the graph's output is not ``(n, 4)`` probabilities.

    """
    batch = np.asarray(batch)
    expected = PREPROCESSING.input_shape[1:]
    if batch.ndim != 4 or batch.shape[1:] != expected or batch.shape[0] < 1:
        raise ValueError(f"batch must have shape (n, {', '.join(map(str, expected))}) with n >= 1, not {batch.shape}")
    batch = np.ascontiguousarray(batch, dtype=np.float32)
    if not np.isfinite(batch).all():
        raise ValueError("batch holds non-finite values")
    input_name = session.get_inputs()[0].name
    (out,) = session.run(None, {input_name: batch})
    probs = np.asarray(out, dtype=np.float64)
    n_classes = len(BRAIN_TUMOR.classes)
    if probs.shape != (batch.shape[0], n_classes) or not np.isfinite(probs).all() or (probs < 0).any():
        raise ValueError(f"the graph returned {probs.shape} values that are not probabilities of {n_classes} classes")
    return probs / probs.sum(axis=1, keepdims=True)


def golden_input(seed: int, shape: tuple[int, ...] | list[int] = PREPROCESSING.input_shape) -> np.ndarray:
    """Return the synthetic golden input of a model card: uniform noise in [0, 1), normalised per the spec.

    Args:
        seed: seed of ``numpy.random.default_rng``.
        shape: tensor shape, ``(1, 1, 128, 128)`` by default.

    Returns:
        float32 array ``(numpy.random.default_rng(seed).random(shape, dtype=float32) - mean) / std``.

    """
    x = np.random.default_rng(seed).random(tuple(shape), dtype=np.float32)
    return ((x - np.float32(PREPROCESSING.mean)) / np.float32(PREPROCESSING.std)).astype(np.float32)


def check_golden(session: ort.InferenceSession, card: ModelCard, tolerance: float = GOLDEN_TOLERANCE) -> float:
    """Re-run the card's golden inputs and compare with the recorded outputs.

    Args:
        session: the loaded graph.
        card: its model card (``golden`` entries ``{"input": {"seed", "shape"}, "output": [4 floats]}``).
        tolerance: largest allowed absolute difference.

    Returns:
        The largest absolute difference found.

    Raises:
        ArtifactCheckError: the card has no golden entries or a difference exceeds ``tolerance``.

    """
    if not card.golden:
        raise ArtifactCheckError(f"model card of {card.artifact} has no golden records")
    worst = 0.0
    for entry in card.golden:
        x = golden_input(int(entry["input"]["seed"]), entry["input"]["shape"])
        got = predict_probabilities(session, x)[0]
        worst = max(worst, float(np.max(np.abs(got - np.asarray(entry["output"], dtype=np.float64)))))
    if not worst <= tolerance:
        raise ArtifactCheckError(
            f"artifact {card.artifact} no longer reproduces its golden outputs "
            f"(max abs difference {worst:.3g} > {tolerance:g}): library drift?"
        )
    return worst


class ImagePredictor:
    """The loaded brain-tumour graph, its card and its model-store identity.

    Args:
        card: validated model card.
        session: ONNX Runtime session of the graph.
        info: model-store identity returned in responses.

    """

    def __init__(self, card: ModelCard, session: ort.InferenceSession, info: ModelInfo) -> None:
        self.card = card
        self.session = session
        self.info = info

    @classmethod
    def load(cls, directory: Path, tag: str, *, intra_op_threads: int, inter_op_threads: int) -> ImagePredictor:
        """Check and open the graph in ``directory`` (beside ``brain_tumor_cnn.card.json``).

        Checks, in order: the graph's sha256 against the card (before opening it); the card's
        preprocessing spec equals :data:`vitalcheck.imaging.PREPROCESSING`; the graph's input
        is ``(batch, 1, 128, 128)``; its class order equals the catalog's; the card's golden
        outputs reproduce within :data:`GOLDEN_TOLERANCE`.

        Args:
            directory: folder holding the artifact and its card.
            tag: model-store tag (``vitalcheck-brain-tumor:<version>``).
            intra_op_threads: ONNX Runtime intra-op threads.
            inter_op_threads: ONNX Runtime inter-op threads.

        Raises:
            ArtifactCheckError: any check fails; the message names the artifact.

        """
        directory = Path(directory)
        artifact = directory / BRAIN_TUMOR.artifact
        card = verify_artifact(artifact, directory / BRAIN_TUMOR.card_file)
        if card.extra.get("preprocessing") != PREPROCESSING.as_dict():
            raise ArtifactCheckError(
                f"artifact {artifact} was trained with another preprocessing spec than vitalcheck.imaging.PREPROCESSING"
            )
        if list(card.output.get("classes", [])) != list(BRAIN_TUMOR.classes):
            raise ArtifactCheckError(
                f"artifact {artifact} has class order {card.output.get('classes')}, not the catalog's"
            )
        try:
            session = load_onnx_session(artifact, intra_op_threads=intra_op_threads, inter_op_threads=inter_op_threads)
        except Exception as exc:  # any ONNX Runtime failure refuses the start
            raise ArtifactCheckError(f"artifact {artifact} could not be opened: {type(exc).__name__}: {exc}") from exc
        shape = list(session.get_inputs()[0].shape)
        if len(shape) != 4 or shape[1:] != list(PREPROCESSING.input_shape[1:]):
            raise ArtifactCheckError(f"artifact {artifact} takes input {shape}, not (batch, 1, 128, 128)")
        check_golden(session, card)
        info = ModelInfo(name=BRAIN_TUMOR.name, tag=tag, version=tag.split(":")[-1], sha256=card.sha256)
        return cls(card, session, info)

    def predict_batch(self, batch: np.ndarray) -> np.ndarray:
        """Probabilities for preprocessed images; see :func:`predict_probabilities`."""
        return predict_probabilities(self.session, batch)

    def classify_upload(self, data: bytes, *, max_bytes: int, max_pixels: int) -> tuple[np.ndarray, list[str]]:
        """Validate, screen, preprocess and classify one uploaded JPEG or PNG (what the service does).

        Unlike :meth:`predict_bytes`, applies the validity screen
        (:func:`vitalcheck.imaging.screen_image`) before the CNN.

        Args:
            data: the uploaded file.
            max_bytes: largest accepted upload, in bytes.
            max_pixels: largest accepted width × height, checked before decoding.

        Returns:
            ``(probabilities, warnings)``: float64 array of shape ``(4,)`` (glioma, meningioma,
            notumor, pituitary; sum 1) and the screen's warnings (empty for a typical slice).

        Raises:
            vitalcheck.imaging.ImageRejected: the upload breaks a rule of
                :func:`vitalcheck.imaging.preprocess_image` (``kind`` ``"image_rejected"``)
                or fails the screen (``kind`` ``"not_an_mri_slice"``).

        """
        screened = screen_image(data, max_bytes=max_bytes, max_pixels=max_pixels)
        return self.predict_batch(screened.tensor)[0], screened.warnings

    def predict_bytes(self, data: bytes, *, max_bytes: int, max_pixels: int) -> np.ndarray:
        """Validate, preprocess and classify one uploaded JPEG or PNG, without the validity screen.

        Args:
            data: the uploaded file.
            max_bytes: largest accepted upload, in bytes.
            max_pixels: largest accepted width × height, checked before decoding.

        Returns:
            float64 array of shape ``(4,)``: probabilities of glioma, meningioma, notumor,
            pituitary (sum 1).

        Raises:
            vitalcheck.imaging.ImageRejected: the upload breaks a rule (see
                :func:`vitalcheck.imaging.preprocess_image`).

        """
        return self.predict_batch(preprocess_image(data, max_bytes=max_bytes, max_pixels=max_pixels))[0]
