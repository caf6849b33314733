"""Contender 2, the original design (issue #14's baseline): a FastAPI singleton calling the pickles.

As described in ``shared/ORIGINAL_DESIGN.md``: the lifespan hook loads every model once, before
the first request, and keeps the registry on ``app.state``; a dependency function hands it to each
route; a load failure stops start-up. The registry holds what ``joblib.load`` returns for each of
the seven tabular pickles in the artifacts folder (no compiled form, no checks) and the ONNX
brain-tumour graph. Each sync route validates its JSON body with the task's request model, builds a
DataFrame of the record(s) and calls the pickle's ``predict_proba`` / ``predict`` once
(:func:`~benchmarks.apps.common.pickle_answers`): the answer is the prediction alone, no
contributions or explanation (issue #14: "FastAPI singleton calling the pickle on a DataFrame, as
the original article does"). The MRI upload goes through VitalCheck's own image path
(:meth:`~vitalcheck.api.VitalCheckAPI.brain_tumor`, unchanged by issue #14). One uvicorn worker.

Run: ``uvicorn benchmarks.apps.original_design:app --host 127.0.0.1 --port 8002``
"""

from benchmarks.apps.common import BATCH_MODELS, INPUT_MODELS, MRI_ROUTE, ROUTES, pickle_answers, spooled_to_path

# isort: split
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Annotated, Any

import joblib
from fastapi import Depends, FastAPI, Request, UploadFile
from fastapi.responses import PlainTextResponse

from vitalcheck.api import VitalCheckAPI
from vitalcheck.catalog import BRAIN_TUMOR, TABULAR_MODELS
from vitalcheck.predictors.mri import ImagePredictor
from vitalcheck.schemas.common import ClassPrediction, Envelope
from vitalcheck.settings import get_settings


@dataclass(frozen=True)
class OriginalRegistry:
    """Everything the original design loads once.

    Attributes:
        pipelines: catalog name → the unpickled artifact (a Pipeline; insurance: the tuple
            ``(central, lower, upper)``).
        imaging: VitalCheck's API object around the ONNX image predictor only (its ``brain_tumor``).

    """

    pipelines: dict[str, Any]
    imaging: VitalCheckAPI


def load_all() -> OriginalRegistry:
    """Unpickle every tabular artifact and open the ONNX graph, from the artifacts folder."""
    settings = get_settings()
    pipelines = {name: joblib.load(settings.artifacts_dir / spec.artifact) for name, spec in TABULAR_MODELS.items()}
    predictor = ImagePredictor.load(
        settings.artifacts_dir,
        f"{BRAIN_TUMOR.store_name}:local",
        intra_op_threads=settings.onnx_intra_op_threads,
        inter_op_threads=settings.onnx_inter_op_threads,
    )
    imaging = VitalCheckAPI(SimpleNamespace(brain_tumor=predictor), settings, {})  # type: ignore[arg-type]
    return OriginalRegistry(pipelines=pipelines, imaging=imaging)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Load everything before the first request; a failure stops start-up (uvicorn exits)."""
    app.state.registry = load_all()
    yield


def get_registry(request: Request) -> OriginalRegistry:
    """The dependency that hands the loaded registry to each route."""
    return request.app.state.registry


Loaded = Annotated[OriginalRegistry, Depends(get_registry)]

app = FastAPI(title="VitalCheck API (original design, benchmark contender)", version="1.0.0", lifespan=lifespan)


@app.get("/livez", response_class=PlainTextResponse)
def livez() -> str:
    """Trivial endpoint: HTTP and framework cost only."""
    return "ok"


@app.get("/readyz", response_class=PlainTextResponse)
def readyz(registry: Loaded) -> str:
    """Ready once the lifespan has loaded the registry (uvicorn serves nothing before that)."""
    return "ok"


def _add_tabular_routes(name: str) -> None:
    spec, record_model, batch_model = TABULAR_MODELS[name], INPUT_MODELS[name], BATCH_MODELS[name]

    def single(record: record_model, registry: Loaded) -> dict:  # type: ignore[valid-type]
        return {"prediction": pickle_answers(spec, registry.pipelines[name], [record])[0]}

    def batch(body: batch_model, registry: Loaded) -> dict:  # type: ignore[valid-type]
        return {"predictions": pickle_answers(spec, registry.pipelines[name], body.records)}  # type: ignore[attr-defined]

    app.post(ROUTES[name], name=name)(single)
    app.post(f"{ROUTES[name]}/batch", name=f"{name}_batch")(batch)


for _name in ROUTES:
    _add_tabular_routes(_name)


@app.post(MRI_ROUTE)
def brain_tumor(image: UploadFile, registry: Loaded) -> Envelope[ClassPrediction]:
    """Classify one uploaded MRI slice with the ONNX graph loaded at start-up."""
    path = spooled_to_path(image)
    try:
        return registry.imaging.brain_tumor(path)
    finally:
        path.unlink(missing_ok=True)
