"""The brain-tumour ONNX artifact, its model card, and the training/evaluation helpers."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
from PIL import Image

from vitalcheck.cards import ArtifactCheckError, ModelCard, sha256_file, verify_artifact
from vitalcheck.catalog import BRAIN_TUMOR
from vitalcheck.imaging import PREPROCESSING, preprocess_pil
from vitalcheck.predictors.mri import (
    GOLDEN_TOLERANCE,
    ImagePredictor,
    load_onnx_session,
    predict_probabilities,
)
from vitalcheck.settings import get_settings
from vitalcheck.training.brain_mri import data, fit, metrics, trainer

SETTINGS = get_settings()
ONNX_FILE = SETTINGS.artifacts_dir / BRAIN_TUMOR.artifact
CARD_FILE = SETTINGS.artifacts_dir / BRAIN_TUMOR.card_file
MANIFEST = SETTINGS.data_dir / BRAIN_TUMOR.dataset / "manifest.csv"
CLASSES = list(BRAIN_TUMOR.classes)

requires_data = pytest.mark.skipif(
    not MANIFEST.is_file(),
    reason=f"brain MRI data set not found at {MANIFEST} (set VITALCHECK_DATA_DIR to the shared datasets folder)",
)


@pytest.fixture(scope="module")
def card() -> ModelCard:
    assert ONNX_FILE.is_file(), (
        f"committed artifact {ONNX_FILE} is missing (python -m vitalcheck.training train --only brain_tumor)"
    )
    return verify_artifact(ONNX_FILE, CARD_FILE)


@pytest.fixture(scope="module")
def session(card) -> ort.InferenceSession:
    return load_onnx_session(
        ONNX_FILE, intra_op_threads=SETTINGS.onnx_intra_op_threads, inter_op_threads=SETTINGS.onnx_inter_op_threads
    )


def _normalised_noise(seed: int, shape) -> np.ndarray:
    x = np.random.default_rng(seed).random(tuple(shape), dtype=np.float32)
    return (x - np.float32(PREPROCESSING.mean)) / np.float32(PREPROCESSING.std)


# ---- the committed artifact and its card ---------------------------------------------------------
def test_artifact_matches_its_card(card):
    assert card.sha256 == sha256_file(ONNX_FILE)
    assert card.name == BRAIN_TUMOR.name and card.artifact == BRAIN_TUMOR.artifact
    assert card.framework == "onnx"
    assert {"torch", "onnx", "onnxruntime", "numpy", "pillow", "python"} <= set(card.framework_versions)
    assert ONNX_FILE.stat().st_size < 5 * 1024 * 1024
    assert card.features == []
    assert card.dataset.rows_train + card.dataset.rows_test == card.dataset.rows_total
    assert "not a medical device" in card.intended_use


@pytest.mark.parametrize(("intra", "inter"), [(1, 1), (2, 1), (3, 2)])
def test_session_uses_configured_threads(card, intra, inter):
    sess = load_onnx_session(ONNX_FILE, intra_op_threads=intra, inter_op_threads=inter)
    options = sess.get_session_options()
    assert options.intra_op_num_threads == intra
    assert options.inter_op_num_threads == inter
    assert options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    assert sess.get_providers() == ["CPUExecutionProvider"]


def test_thread_counts_must_be_positive(card):
    with pytest.raises(ValueError):
        load_onnx_session(ONNX_FILE, intra_op_threads=0, inter_op_threads=1)


def test_onnx_io_agrees_with_spec_and_card(card, session):
    (inp,) = session.get_inputs()
    (out,) = session.get_outputs()
    assert inp.type == "tensor(float)"
    assert not isinstance(inp.shape[0], int), "the batch axis must be dynamic"
    assert inp.shape[1:] == [PREPROCESSING.channels, PREPROCESSING.height, PREPROCESSING.width]
    assert out.shape[1:] == [len(CLASSES)]
    assert card.extra["preprocessing"] == PREPROCESSING.as_dict()
    assert card.output["classes"] == CLASSES
    assert card.output["onnx_input"]["shape"][1:] == inp.shape[1:]
    assert card.output["onnx_input"]["name"] == inp.name
    assert card.output["onnx_output"]["name"] == out.name
    for g in card.golden:
        assert g["input"]["shape"] == list(PREPROCESSING.input_shape)


def test_golden_outputs_reproduce(card, session):
    assert len(card.golden) == 3
    for g in card.golden:
        x = _normalised_noise(g["input"]["seed"], g["input"]["shape"])
        got = predict_probabilities(session, x)
        assert got.shape == (1, len(CLASSES))
        np.testing.assert_allclose(got[0], g["output"], atol=GOLDEN_TOLERANCE, rtol=0)
        assert sum(g["output"]) == pytest.approx(1.0, abs=1e-5)


def test_card_records_required_facts(card):
    for m in [
        "accuracy",
        "macro_f1",
        "tumour_only_macro_f1",
        "expected_calibration_error",
        *[f"recall_{c}" for c in CLASSES],
    ]:
        assert 0.0 <= card.metrics[m] <= 1.0, m
        assert m in card.baseline_metrics, m
    assert card.extra["onnx_max_abs_diff"] < 1e-4
    assert card.extra["training_time_s"] < 20 * 60
    cm = np.asarray(card.extra["confusion_matrix"]["matrix"])
    assert cm.shape == (4, 4) and cm.sum() == card.dataset.rows_test
    assert np.trace(cm) / cm.sum() == pytest.approx(card.metrics["accuracy"], abs=1e-6)
    assert "shortcut_checks" in card.extra and "leakage" in card.extra


def test_batch_axis_is_dynamic_and_rows_independent(session):
    batch = np.concatenate([_normalised_noise(s, PREPROCESSING.input_shape) for s in range(10, 15)])
    together = predict_probabilities(session, batch)
    assert together.shape == (5, len(CLASSES))
    np.testing.assert_allclose(together.sum(axis=1), 1.0, atol=1e-9)
    assert (together >= 0).all()
    for i in range(5):
        np.testing.assert_allclose(predict_probabilities(session, batch[i : i + 1])[0], together[i], atol=1e-5)


@pytest.mark.parametrize("shape", [(1, 1, 64, 64), (1, 128, 128), (0, 1, 128, 128), (2, 3, 128, 128)])
def test_predict_probabilities_rejects_bad_shapes(session, shape):
    with pytest.raises(ValueError):
        predict_probabilities(session, np.zeros(shape, dtype=np.float32))


def test_predict_probabilities_rejects_nan(session):
    x = np.zeros(PREPROCESSING.input_shape, dtype=np.float32)
    x[0, 0, 5, 5] = np.nan
    with pytest.raises(ValueError):
        predict_probabilities(session, x)


# ---- the serving predictor --------------------------------------------------------------------
@pytest.fixture
def store(tmp_path, card) -> Path:
    shutil.copy(ONNX_FILE, tmp_path / BRAIN_TUMOR.artifact)
    shutil.copy(CARD_FILE, tmp_path / BRAIN_TUMOR.card_file)
    return tmp_path


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def test_image_predictor_loads_and_predicts(store, card):
    predictor = ImagePredictor.load(store, "vitalcheck-brain-tumor:abc", intra_op_threads=1, inter_op_threads=1)
    assert predictor.info.sha256 == card.sha256 and predictor.info.version == "abc"
    img = Image.fromarray((np.random.default_rng(0).random((200, 180)) * 255).astype(np.uint8))
    p = predictor.predict_bytes(_png(img), max_bytes=SETTINGS.max_upload_bytes, max_pixels=SETTINGS.max_image_pixels)
    assert p.shape == (len(CLASSES),) and p.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(p, predictor.predict_batch(preprocess_pil(img))[0])


def test_tampered_artifact_is_refused(store):
    raw = bytearray((store / BRAIN_TUMOR.artifact).read_bytes())
    raw[-10] ^= 0xFF
    (store / BRAIN_TUMOR.artifact).write_bytes(bytes(raw))
    with pytest.raises(ArtifactCheckError, match="sha256"):
        ImagePredictor.load(store, "t:1", intra_op_threads=1, inter_op_threads=1)


@pytest.mark.parametrize("edit", ["golden", "preprocessing", "classes"])
def test_inconsistent_card_is_refused(store, edit):
    path = store / BRAIN_TUMOR.card_file
    doc = json.loads(path.read_text())
    if edit == "golden":
        doc["golden"][0]["output"][0] += 1e-3
    elif edit == "preprocessing":
        doc["extra"]["preprocessing"]["mean"] += 0.01
    else:
        doc["output"]["classes"] = list(reversed(doc["output"]["classes"]))
    path.write_text(json.dumps(doc))
    with pytest.raises(ArtifactCheckError):
        ImagePredictor.load(store, "t:1", intra_op_threads=1, inter_op_threads=1)


# ---- accuracy on the shared test images -------------------------------------------------------------
@requires_data
def test_accuracy_on_shared_test_images(card):
    result = trainer.evaluate(ONNX_FILE, MANIFEST)
    n_test = int((pd.read_csv(MANIFEST)["split"] == "test").sum())
    assert result["n_images"] == n_test == card.dataset.rows_test
    assert np.asarray(result["confusion_matrix"]).sum() == n_test
    assert result["accuracy"] >= 0.90
    # the card's test metrics are what this graph gives on these images
    for m in ("accuracy", "macro_f1", "tumour_only_macro_f1"):
        assert result[m] == pytest.approx(card.metrics[m], abs=1e-5), m


# ---- helpers (no data needed) -------------------------------------------------------------------
def test_phash_groups_link_near_duplicates_transitively():
    base = np.uint64(0x0F0F_0F0F_0F0F_0F0F)
    hashes = np.array(
        [base, base ^ np.uint64(0b111), base ^ np.uint64(0b111_111), ~base, ~base ^ np.uint64(1)], dtype=np.uint64
    )
    groups = data.phash_groups(hashes, max_distance=3)
    assert groups[0] == groups[1] == groups[2]  # 0-1 and 1-2 differ in 3 bits; 0-2 (6 bits) only through 1
    assert len(set(data.phash_groups(hashes, max_distance=2))) == 4
    assert groups[3] == groups[4] and groups[3] != groups[0]
    assert data.hamming_min_to(hashes[:1], hashes[3:]).tolist() == [64 - 1]


def test_grouped_validation_never_splits_a_group():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(200), rng.integers(1, 6, size=200))
    y = (groups % 4).astype(np.int64)
    val = data.grouped_validation_mask(y, groups, 0.15, seed=1)
    for g in np.unique(groups):
        assert len(set(val[groups == g])) == 1
    for k in range(4):
        n_k = int((y == k).sum())
        assert 0.10 * n_k < val[y == k].sum() <= round(0.15 * n_k)
    np.testing.assert_array_equal(val, data.grouped_validation_mask(y, groups, 0.15, seed=1))


def test_expected_calibration_error():
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    confident_right = np.eye(2)[y]
    assert metrics.expected_calibration_error(confident_right, y) == pytest.approx(0.0)
    confident_wrong = np.eye(2)[1 - y]
    assert metrics.expected_calibration_error(confident_wrong, y) == pytest.approx(1.0)
    # 0.75 confidence, 75 % right: calibrated
    proba = np.tile([0.75, 0.25], (8, 1))
    y2 = np.array([0, 0, 0, 1, 0, 0, 0, 1])
    assert metrics.expected_calibration_error(proba, y2) == pytest.approx(0.0)


def test_classification_report_by_hand():
    # classes: glioma 0, meningioma 1, notumor 2, pituitary 3
    y = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    pred = np.array([0, 1, 1, 2, 2, 2, 3, 0])
    proba = np.full((8, 4), 0.1)
    proba[np.arange(8), pred] = 0.7
    # tumour-only: row 3 (true meningioma, predicted notumor) falls back to its best tumour class
    proba[3] = [0.05, 0.25, 0.6, 0.1]
    rep = metrics.classification_report(y, proba)
    assert rep["accuracy"] == pytest.approx(5 / 8)
    assert rep["recall_glioma"] == 0.5 and rep["recall_notumor"] == 1.0 and rep["recall_pituitary"] == 0.5
    f1 = [2 / 4, 2 / 4, 4 / 5, 2 / 3]  # glioma, meningioma, notumor, pituitary
    assert rep["macro_f1"] == pytest.approx(np.mean(f1))
    # tumour rows: 0→0, 0→1, 1→1, 1→1 (fallback), 3→3, 3→0
    tumour_f1 = [2 / 4, 4 / 5, 2 / 3]
    assert rep["tumour_only_macro_f1"] == pytest.approx(np.mean(tumour_f1))
    assert np.asarray(rep["confusion_matrix"]).sum() == 8


def test_read_manifest_validates(tmp_path):
    good = tmp_path / "m.csv"
    good.write_text("path,label,split\na.png,glioma,train\nb.png,notumor,test\n")
    assert list(data.read_manifest(good, "test")["path"]) == ["b.png"]
    bad = tmp_path / "bad.csv"
    bad.write_text("path,label\na.png,astrocytoma\n")
    with pytest.raises(ValueError, match="astrocytoma"):
        data.read_manifest(bad)
    with pytest.raises(ValueError):
        data.read_manifest(good, "validation")


def _synthetic_dataset(root: Path, per_class_train: int, per_class_test: int) -> Path:
    """Tiny manifest-format data set: a bright blob in a class-specific quadrant on a varied background."""
    rng = np.random.default_rng(7)
    rows = []
    centres = {"glioma": (20, 20), "meningioma": (20, 44), "notumor": (44, 20), "pituitary": (44, 44)}
    yy, xx = np.mgrid[0:64, 0:64]
    for split, n in (("train", per_class_train), ("test", per_class_test)):
        for label, (cy, cx) in centres.items():
            (root / split / label).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                # a random smooth background makes every image's perceptual hash different
                fx, fy, phase = rng.uniform(0.5, 3, size=2).tolist() + [rng.uniform(0, 2 * np.pi)]
                background = 60 + 50 * np.sin(fx * xx / 10 + fy * yy / 10 + phase)
                dy, dx = rng.integers(-4, 5, size=2)
                blob = 150 * np.exp(-((yy - cy - dy) ** 2 + (xx - cx - dx) ** 2) / 30)
                img = background + blob + 10 * rng.random((64, 64))
                rel = f"{split}/{label}/{i}.png"
                Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(root / rel)
                rows.append({"path": rel, "label": label, "split": split, "source": "synthetic"})
    pd.DataFrame(rows).to_csv(root / "manifest.csv", index=False)
    return root / "manifest.csv"


def test_evaluate_reads_paths_relative_to_the_manifest(tmp_path, card):
    manifest = _synthetic_dataset(tmp_path / "set", 1, 2)
    result = trainer.evaluate(ONNX_FILE, manifest)
    assert result["n_images"] == 8 and result["split"] == "test"
    assert result["classes"] == CLASSES
    assert np.asarray(result["confusion_matrix"]).sum() == 8
    everything = trainer.evaluate(ONNX_FILE, manifest, split=None)
    assert everything["n_images"] == 12


@pytest.mark.slow
def test_train_end_to_end_on_a_tiny_data_set(tmp_path):
    pytest.importorskip("torch", reason="PyTorch is in the `cnn` extra: pip install -e '.[cnn]'")
    manifest = _synthetic_dataset(tmp_path / "brain_mri", 14, 4)
    out = tmp_path / "artifacts"
    trainer.train(manifest.parent, out, epochs=2)
    card = verify_artifact(out / BRAIN_TUMOR.artifact, out / BRAIN_TUMOR.card_file)
    assert card.dataset.rows_train == 56 and card.dataset.rows_test == 16
    assert card.extra["onnx_max_abs_diff"] < 1e-4
    predictor = ImagePredictor.load(out, "t:1", intra_op_threads=1, inter_op_threads=1)  # golden + spec checks
    result = trainer.evaluate(out / BRAIN_TUMOR.artifact, manifest)
    assert result["accuracy"] == pytest.approx(card.metrics["accuracy"], abs=1e-6)
    assert predictor.card.sha256 == sha256_file(out / BRAIN_TUMOR.artifact)


def test_equalisation_augmentation_matches_pillow():
    torch = pytest.importorskip("torch")
    from PIL import ImageOps

    rng = np.random.default_rng(3)
    img = np.zeros((96, 96), dtype=np.uint8)
    img[20:80, 15:85] = rng.integers(30, 200, size=(60, 70))
    x = torch.from_numpy(img.astype(np.float32) / 255)[None, None]
    expected = np.asarray(ImageOps.equalize(Image.fromarray(img)), dtype=np.float32) / 255
    np.testing.assert_allclose(fit._equalize(x)[0, 0].numpy(), expected, atol=1e-6)
    constant = torch.full((1, 1, 8, 8), 0.5)
    np.testing.assert_allclose(fit._equalize(constant).numpy(), constant.numpy(), atol=1 / 255)
