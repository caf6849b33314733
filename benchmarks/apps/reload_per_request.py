"""Contender 1, the anti-pattern: the original design, but the model is loaded inside every handler.

Each request unpickles its scikit-learn artifact with ``joblib.load`` (or opens the ONNX graph in
a new ``InferenceSession``), then answers exactly as :mod:`benchmarks.apps.original_design` does:
the request model validates the body, the record(s) become a DataFrame and the pickle's
``predict_proba`` / ``predict`` is called once (:func:`~benchmarks.apps.common.pickle_answers`),
no explanation. It does none of VitalCheck's checks (no sha256, no golden outputs): this is only
the cost of loading in the request path.

Run: ``uvicorn benchmarks.apps.reload_per_request:app --host 127.0.0.1 --port 8001``
"""

from benchmarks.apps.common import BATCH_MODELS, INPUT_MODELS, MRI_ROUTE, ROUTES, pickle_answers, spooled_to_path

# isort: split
from types import SimpleNamespace
from typing import Any

import joblib
from fastapi import FastAPI, UploadFile
from fastapi.responses import PlainTextResponse

from vitalcheck.api import VitalCheckAPI
from vitalcheck.cards import load_card
from vitalcheck.catalog import BRAIN_TUMOR, TABULAR_MODELS
from vitalcheck.predictors.mri import ImagePredictor, load_onnx_session
from vitalcheck.schemas.common import ClassPrediction, Envelope, ModelInfo
from vitalcheck.settings import get_settings

app = FastAPI(title="VitalCheck (reload per request, benchmark contender)", version="1.0.0")


def load_pickle(name: str) -> Any:
    """Unpickle one tabular artifact, now, for this request only."""
    return joblib.load(get_settings().artifacts_dir / TABULAR_MODELS[name].artifact)


def load_mri() -> VitalCheckAPI:
    """Open the ONNX graph in a new session, now, for this request only."""
    settings = get_settings()
    card = load_card(settings.artifacts_dir / BRAIN_TUMOR.card_file)
    session = load_onnx_session(
        settings.artifacts_dir / BRAIN_TUMOR.artifact,
        intra_op_threads=settings.onnx_intra_op_threads,
        inter_op_threads=settings.onnx_inter_op_threads,
    )
    info = ModelInfo(name=BRAIN_TUMOR.name, tag=f"{BRAIN_TUMOR.store_name}:local", version="local", sha256=card.sha256)
    predictor = ImagePredictor(card, session, info)
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
    spec, record_model, batch_model = TABULAR_MODELS[name], INPUT_MODELS[name], BATCH_MODELS[name]

    def single(record: record_model) -> dict:  # type: ignore[valid-type]
        return {"prediction": pickle_answers(spec, load_pickle(name), [record])[0]}

    def batch(body: batch_model) -> dict:  # type: ignore[valid-type]
        return {"predictions": pickle_answers(spec, load_pickle(name), body.records)}  # type: ignore[attr-defined]

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
