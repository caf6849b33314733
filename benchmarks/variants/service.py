"""Prototype VitalCheck services for the levers that need a product change.

Each subclasses the shipped ``service.VitalCheck`` (so every model, check, endpoint and the
request guard stay as shipped) and overrides only the single-record endpoints of the benchmarked
risk models (diabetes, stroke, insurance), keeping their routes, request and response bodies:

* :data:`MicroBatched`: the endpoints are ``async`` and go through a
  :class:`~benchmarks.variants.microbatch.MicroBatcher` per model, so concurrent requests are
  scored with one vectorised call (the contributions included);
* :data:`AsyncMethods`: the endpoints are ``async`` and score on the event loop (no thread
  hand-off), to measure sync vs async API methods;
* :data:`FastPath`: every tabular endpoint (single, batch, file) scores with
  :class:`~benchmarks.variants.fastpath.FastTabularPredictor` (one frame, one pipeline call);
* :data:`Recommended`: micro-batching and the fast path together, and the tabular endpoints
  answer with the envelope already serialised (a starlette ``Response``), which BentoML passes
  through: for a pydantic return value BentoML 1.4 first calls ``model_dump()`` on it (only to
  see whether it is a string) and then ``model_dump_json()``, so every answer is dumped twice.
  Serve it with ``BENTOML_CONFIG=benchmarks/configs/recommended.yaml`` for two workers.

Serve with ``bentoml serve benchmarks.variants.service:MicroBatched`` from the
repository root (the benchmark harness does this with its private model store).
"""

import sys
from collections.abc import Sequence

import bentoml
from starlette.responses import Response

import service as shipped
from benchmarks.variants.fastpath import FastTabularPredictor
from benchmarks.variants.microbatch import MicroBatcher
from vitalcheck.api import VitalCheckAPI
from vitalcheck.middleware import RequestGuard
from vitalcheck.schemas.common import BatchEnvelope, Envelope, RiskPrediction
from vitalcheck.schemas.insurance import InsurancePrediction

ROUTES = {
    "diabetes": ("/api/v1/risk/diabetes", RiskPrediction),
    "stroke": ("/api/v1/risk/stroke", RiskPrediction),
    "insurance": ("/api/v1/insurance", InsurancePrediction),
}
"""The single-record endpoints these prototypes replace: route and prediction type."""


def score_many(api: VitalCheckAPI, name: str, records: Sequence) -> list[Envelope]:
    """One envelope per record, exactly as :meth:`VitalCheckAPI.single` answers, from one vectorised call.

    This is the product change the micro-batching lever needs (a method beside ``single``).
    """
    predictor = api.registry.tabular[name]
    predictions = predictor.predict(
        records, moderate=api.settings.risk_moderate_threshold, high=api.settings.risk_high_threshold
    )
    return [
        Envelope(model=predictor.info, prediction=p, warnings=predictor.warnings([r.model_dump()]))
        for r, p in zip(records, predictions, strict=True)
    ]


def as_json(envelope) -> Response:
    """The envelope serialised once, as BentoML would send it (BentoML passes a Response through)."""
    return Response(envelope.model_dump_json(), media_type="application/json")


def _batched_endpoint(name: str, serialised: bool = False):
    route, prediction = ROUTES[name]
    record_model = shipped.INPUT_MODELS[name]

    async def method(self, record: record_model, /) -> Envelope[prediction]:  # type: ignore[valid-type]
        batcher = self.batchers.get(name)
        if batcher is None:
            batcher = self.batchers[name] = MicroBatcher(lambda records: score_many(self.api, name, records))
        envelope = await batcher.submit(record)
        return as_json(envelope) if serialised else envelope

    method.__name__ = name
    method.__doc__ = getattr(shipped.VitalCheck.inner, name).func.__doc__
    return bentoml.api(route=route)(method)


def _serialised_batch_endpoint(name: str):
    route, prediction = ROUTES[name]
    record_model = shipped.INPUT_MODELS[name]
    batch_model = getattr(sys.modules[record_model.__module__], record_model.__name__.replace("Input", "BatchInput"))

    def method(self, batch: batch_model, /) -> BatchEnvelope[prediction]:  # type: ignore[valid-type]
        return as_json(self.api.batch(name, batch.records))

    method.__name__ = f"{name}_batch"
    method.__doc__ = getattr(shipped.VitalCheck.inner, f"{name}_batch").func.__doc__
    return bentoml.api(route=f"{route}/batch")(method)


def _async_endpoint(name: str):
    route, prediction = ROUTES[name]
    record_model = shipped.INPUT_MODELS[name]

    async def method(self, record: record_model, /) -> Envelope[prediction]:  # type: ignore[valid-type]
        return self.api.single(name, record)

    method.__name__ = name
    method.__doc__ = getattr(shipped.VitalCheck.inner, name).func.__doc__
    return bentoml.api(route=route)(method)


@bentoml.service(name="vitalcheck", traffic={"timeout": 30}, labels={"project": "vitalcheck"})
class MicroBatched(shipped.VitalCheck.inner):
    """VitalCheck with micro-batched single-record risk endpoints (prototype)."""

    def __init__(self) -> None:
        super().__init__()
        self.batchers: dict[str, MicroBatcher] = {}

    diabetes = _batched_endpoint("diabetes")
    stroke = _batched_endpoint("stroke")
    insurance = _batched_endpoint("insurance")


@bentoml.service(name="vitalcheck", traffic={"timeout": 30}, labels={"project": "vitalcheck"})
class AsyncMethods(shipped.VitalCheck.inner):
    """VitalCheck with async (event-loop) single-record risk endpoints (prototype)."""

    diabetes = _async_endpoint("diabetes")
    stroke = _async_endpoint("stroke")
    insurance = _async_endpoint("insurance")


def use_fast_path(api: VitalCheckAPI) -> None:
    """Swap every loaded (and already checked) tabular predictor for its fast twin."""
    tabular = api.registry.tabular
    for name in list(tabular):
        tabular[name] = FastTabularPredictor.wrap(tabular[name])  # type: ignore[index]


@bentoml.service(name="vitalcheck", traffic={"timeout": 30}, labels={"project": "vitalcheck"})
class FastPath(shipped.VitalCheck.inner):
    """VitalCheck whose tabular models score with one frame and one pipeline call (prototype)."""

    def __init__(self) -> None:
        super().__init__()
        use_fast_path(self.api)


@bentoml.service(name="vitalcheck", traffic={"timeout": 30}, labels={"project": "vitalcheck"})
class Recommended(shipped.VitalCheck.inner):
    """VitalCheck with micro-batched single-record endpoints and the fast path (prototype)."""

    def __init__(self) -> None:
        super().__init__()
        use_fast_path(self.api)
        self.batchers: dict[str, MicroBatcher] = {}

    diabetes = _batched_endpoint("diabetes", serialised=True)
    stroke = _batched_endpoint("stroke", serialised=True)
    insurance = _batched_endpoint("insurance", serialised=True)
    diabetes_batch = _serialised_batch_endpoint("diabetes")
    stroke_batch = _serialised_batch_endpoint("stroke")
    insurance_batch = _serialised_batch_endpoint("insurance")


for _variant in (MicroBatched, AsyncMethods, FastPath, Recommended):
    _variant.add_asgi_middleware(RequestGuard)
