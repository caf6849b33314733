"""Contender 1, the anti-pattern: a minimal FastAPI app that loads the model inside every handler.

Each request unpickles its scikit-learn pipeline with ``joblib.load`` (or opens the ONNX graph in
a new ``InferenceSession``) and reads the model card that the contributions need, then runs the
same :class:`~vitalcheck.api.VitalCheckAPI` code as VitalCheck. It does none of VitalCheck's
checks (no sha256, no golden outputs): this is only the cost of loading in the request path.

Run: ``uvicorn benchmarks.apps.reload_per_request:app --host 127.0.0.1 --port 8001``
"""

from benchmarks.apps.common import BATCH_MODELS, INPUT_MODELS, MRI_ROUTE, ROUTES, spooled_to_path

# isort: split
from types import SimpleNamespace
from typing import Any

import joblib
from fastapi import FastAPI, UploadFile
from fastapi.responses import PlainTextResponse

from vitalcheck.api import VitalCheckAPI
from vitalcheck.cards import load_card
from vitalcheck.catalog import BRAIN_TUMOR, MODELS
from vitalcheck.predictors.mri import ImagePredictor, load_onnx_session
from vitalcheck.predictors.tabular import TabularPredictor
from vitalcheck.schemas.common import BatchEnvelope, ClassPrediction, Envelope, ModelInfo, RiskPrediction
from vitalcheck.schemas.insurance import InsurancePrediction
from vitalcheck.settings import get_settings

PREDICTIONS: dict[str, Any] = {"diabetes": RiskPrediction, "stroke": RiskPrediction, "insurance": InsurancePrediction}

app = FastAPI(title="VitalCheck (reload per request, benchmark contender)", version="1.0.0")


def _info(name: str, sha256: str) -> ModelInfo:
    tag = f"{MODELS[name].store_name}:local"
    return ModelInfo(name=name, tag=tag, version="local", sha256=sha256)


def load_tabular(name: str) -> VitalCheckAPI:
    """Unpickle one pipeline and read its card, now, for this request only."""
    settings, spec = get_settings(), MODELS[name]
    card = load_card(settings.artifacts_dir / spec.card_file)
    estimator = joblib.load(settings.artifacts_dir / spec.artifact)
    predictor = TabularPredictor(spec, card, estimator, _info(name, card.sha256))
    return VitalCheckAPI(SimpleNamespace(tabular={name: predictor}), settings, {})  # type: ignore[arg-type]


def load_mri() -> VitalCheckAPI:
    """Open the ONNX graph in a new session, now, for this request only."""
    settings = get_settings()
    card = load_card(settings.artifacts_dir / BRAIN_TUMOR.card_file)
    session = load_onnx_session(
        settings.artifacts_dir / BRAIN_TUMOR.artifact,
        intra_op_threads=settings.onnx_intra_op_threads,
        inter_op_threads=settings.onnx_inter_op_threads,
    )
    predictor = ImagePredictor(card, session, _info(BRAIN_TUMOR.name, card.sha256))
    return VitalCheckAPI(SimpleNamespace(brain_tumor=predictor), settings, {})  # type: ignore[arg-type]


@app.get("/livez", response_class=PlainTextResponse)
def livez() -> str:
    """Trivial endpoint: HTTP and framework cost only."""
    return "ok"


@app.get("/readyz", response_class=PlainTextResponse)
def readyz() -> str:
    """Always ready: nothing is loaded at start-up."""
    return "ok"


def _add_tabular_routes(name: str) -> None:
    record_model, batch_model, prediction = INPUT_MODELS[name], BATCH_MODELS[name], PREDICTIONS[name]

    def single(record: record_model) -> Envelope[prediction]:  # type: ignore[valid-type]
        return load_tabular(name).single(name, record)

    def batch(body: batch_model) -> BatchEnvelope[prediction]:  # type: ignore[valid-type]
        return load_tabular(name).batch(name, body.records)  # type: ignore[attr-defined]

    app.post(ROUTES[name], name=name)(single)
    app.post(f"{ROUTES[name]}/batch", name=f"{name}_batch")(batch)


for _name in ROUTES:
    _add_tabular_routes(_name)


@app.post(MRI_ROUTE)
def brain_tumor(image: UploadFile) -> Envelope[ClassPrediction]:
    """Classify one uploaded MRI slice with a graph opened for this request."""
    path = spooled_to_path(image)
    try:
        return load_mri().brain_tumor(path)
    finally:
        path.unlink(missing_ok=True)
