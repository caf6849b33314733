"""Contender 2, the original design: FastAPI, everything loaded once in the lifespan, handed over with ``Depends``.

As described in ``shared/ORIGINAL_DESIGN.md``: the lifespan hook builds the registry before the
first request and keeps it on ``app.state``; a dependency function hands it to each route; a load
failure stops start-up. Here the registry is VitalCheck's own :class:`~vitalcheck.registry.Registry`
(same checks: sha256, library versions, golden outputs) read from the artifacts folder, and the
routes call the same :class:`~vitalcheck.api.VitalCheckAPI`, so the only difference from VitalCheck
is the serving stack (FastAPI + uvicorn instead of BentoML). Sync routes, one uvicorn worker.

Run: ``uvicorn benchmarks.apps.original_design:app --host 127.0.0.1 --port 8002``
"""

from benchmarks.apps.common import BATCH_MODELS, INPUT_MODELS, MRI_ROUTE, ROUTES, spooled_to_path

# isort: split
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request, UploadFile
from fastapi.responses import PlainTextResponse

from vitalcheck.api import VitalCheckAPI
from vitalcheck.catalog import MODELS
from vitalcheck.registry import Registry, StoredArtifact
from vitalcheck.schemas.common import BatchEnvelope, ClassPrediction, Envelope, RiskPrediction
from vitalcheck.schemas.insurance import InsurancePrediction
from vitalcheck.settings import get_settings

PREDICTIONS: dict[str, Any] = {"diabetes": RiskPrediction, "stroke": RiskPrediction, "insurance": InsurancePrediction}
"""Prediction type of each benchmarked tabular route."""


def load_api() -> VitalCheckAPI:
    """Load and check all eight models and both tables from the artifacts folder (no model store)."""
    settings = get_settings()
    locations = {
        name: StoredArtifact(settings.artifacts_dir, f"{spec.store_name}:local") for name, spec in MODELS.items()
    }
    registry = Registry.load(locations, settings.reference_dir, settings)
    return VitalCheckAPI(registry, settings, INPUT_MODELS)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Load everything before the first request; a failure stops start-up (uvicorn exits)."""
    app.state.api = load_api()
    yield


def get_api(request: Request) -> VitalCheckAPI:
    """The dependency that hands the loaded registry (behind its API object) to each route."""
    return request.app.state.api


LoadedAPI = Annotated[VitalCheckAPI, Depends(get_api)]

app = FastAPI(title="VitalCheck API (original design, benchmark contender)", version="1.0.0", lifespan=lifespan)


@app.get("/livez", response_class=PlainTextResponse)
def livez() -> str:
    """Trivial endpoint: HTTP and framework cost only."""
    return "ok"


@app.get("/readyz", response_class=PlainTextResponse)
def readyz(api: LoadedAPI) -> str:
    """Ready once the lifespan has loaded the registry (uvicorn serves nothing before that)."""
    return "ok"


def _add_tabular_routes(name: str) -> None:
    record_model, batch_model, prediction = INPUT_MODELS[name], BATCH_MODELS[name], PREDICTIONS[name]

    def single(record: record_model, api: LoadedAPI) -> Envelope[prediction]:  # type: ignore[valid-type]
        return api.single(name, record)

    def batch(body: batch_model, api: LoadedAPI) -> BatchEnvelope[prediction]:  # type: ignore[valid-type]
        return api.batch(name, body.records)  # type: ignore[attr-defined]

    app.post(ROUTES[name], name=name)(single)
    app.post(f"{ROUTES[name]}/batch", name=f"{name}_batch")(batch)


for _name in ROUTES:
    _add_tabular_routes(_name)


@app.post(MRI_ROUTE)
def brain_tumor(image: UploadFile, api: LoadedAPI) -> Envelope[ClassPrediction]:
    """Classify one uploaded MRI slice with the ONNX graph loaded at start-up."""
    path = spooled_to_path(image)
    try:
        return api.brain_tumor(path)
    finally:
        path.unlink(missing_ok=True)
