"""Prototype VitalCheck services for the levers that need a product change.

Each subclasses the shipped ``service.VitalCheck`` (so every model, check, endpoint and the
request guard stay as shipped) and overrides only the single-record endpoints of the benchmarked
risk models (diabetes, stroke, insurance), keeping their routes, request and response bodies:

* :data:`MicroBatched`: the endpoints are ``async`` and go through a
  :class:`~benchmarks.variants.microbatch.MicroBatcher` per model, so concurrent requests are
  scored with one vectorised call (the contributions included);
* :data:`AsyncMethods`: the endpoints are ``async`` and score on the event loop (no thread
  hand-off), to measure sync vs async API methods.

Serve with ``bentoml serve benchmarks.variants.service:MicroBatched`` from the
repository root (the benchmark harness does this with its private model store).
"""

from __future__ import annotations

from collections.abc import Sequence

import bentoml

import service as shipped
from benchmarks.variants.microbatch import MicroBatcher
from vitalcheck.api import VitalCheckAPI
from vitalcheck.middleware import RequestGuard
from vitalcheck.schemas.common import Envelope, RiskPrediction
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


def _batched_endpoint(name: str):
    route, prediction = ROUTES[name]
    record_model = shipped.INPUT_MODELS[name]

    async def method(self, record: record_model, /) -> Envelope[prediction]:  # type: ignore[valid-type]
        batcher = self.batchers.get(name)
        if batcher is None:
            batcher = self.batchers[name] = MicroBatcher(lambda records: score_many(self.api, name, records))
        return await batcher.submit(record)

    method.__name__ = name
    method.__doc__ = getattr(shipped.VitalCheck.inner, name).func.__doc__
    return bentoml.api(route=route)(method)


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


MicroBatched.add_asgi_middleware(RequestGuard)
AsyncMethods.add_asgi_middleware(RequestGuard)
