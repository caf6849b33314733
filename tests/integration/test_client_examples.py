"""Every Python block of docs/CLIENT.md, run against `bentoml serve` (token on), must return real predictions.

Each block is executed as written, with only the server URL (``http://localhost:3000``) and
the data directory (``../shared/datasets``) substituted; the token reaches the examples
through ``VITALCHECK_API_TOKEN``, which the test session sets (tests/conftest.py). Every
client call is recorded (``HTTPClient.call`` is wrapped), so the tests can check that each
block called the server, that each answer is a real prediction of the endpoint called, and
that the page covers every endpoint with both the synchronous and the asynchronous client.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import API_TOKEN
from tests.utils.serving import Served
from vitalcheck.catalog import BRAIN_TUMOR, TABULAR_MODELS

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "CLIENT.md"
TEXT = DOC.read_text()
BLOCKS = re.findall(r"^```python\n(.*?)^```", TEXT, re.S | re.M)
TITLES = [re.findall(r"^### (.+)$", TEXT[: TEXT.index(block)], re.M)[-1] for block in BLOCKS]
"""The heading each block stands under."""
SINGLE = set(TABULAR_MODELS)
OTHER = {"brain_tumor", "fitbit_percentiles", "hospital_analytics", "models"}


@dataclass
class Call:
    client: str  # SyncHTTPClient or AsyncHTTPClient
    endpoint: str
    kwargs: dict
    result: Any = None
    error: Exception | None = None


@dataclass
class Run:
    calls: list[Call] = field(default_factory=list)
    error: BaseException | None = None
    output: str = ""
    seconds: float = 0.0


def recording(original, calls: list[Call]):
    """A replacement for ``HTTPClient.call`` that records each call and its answer (sync and async)."""

    def call(self, name, /, *args, **kwargs):
        entry = Call(type(self).__name__, name, kwargs)
        calls.append(entry)
        try:
            result = original(self, name, *args, **kwargs)
        except Exception as exc:
            entry.error = exc
            raise
        if not inspect.isawaitable(result):
            entry.result = result
            return result

        async def awaited():
            try:
                entry.result = await result
            except Exception as exc:
                entry.error = exc
                raise
            return entry.result

        return awaited()

    return call


@pytest.fixture(scope="module")
def runs(model_store, data_dir) -> list[Run]:
    """Start the server once and run every block of the page, in order."""
    assert os.environ.get("VITALCHECK_API_TOKEN") == API_TOKEN  # the examples read the token from here
    from _bentoml_impl.client.http import HTTPClient

    original = HTTPClient.call
    results = []
    with Served() as server, pytest.MonkeyPatch.context() as patch:
        for index, code in enumerate(BLOCKS):
            run = Run()
            patch.setattr(HTTPClient, "call", recording(original, run.calls))
            code = code.replace("http://localhost:3000", server.url).replace("../shared/datasets", str(data_dir))
            out = io.StringIO()
            started = time.perf_counter()
            try:
                with contextlib.redirect_stdout(out):
                    exec(compile(code, f"{DOC.name} block {index}", "exec"), {"__name__": f"client_example_{index}"})
            except BaseException as exc:  # reported by the block's own test
                run.error = exc
            run.output = out.getvalue()
            run.seconds = time.perf_counter() - started
            results.append(run)
        print(f"server ready in {server.ready_s:.1f} s; blocks: {[round(r.seconds, 1) for r in results]} s")
    return results


def check_prediction(endpoint: str, prediction: dict) -> None:
    """A real answer of the endpoint's model, not an empty or error body."""
    name = endpoint.removesuffix("_batch").removesuffix("_file")
    if name in SINGLE:
        spec = TABULAR_MODELS[name]
        assert len(prediction["contributors"]) == 5
        if spec.kind == "classifier" and len(spec.classes) == 2:
            assert 0 <= prediction["probability"] <= 1 and prediction["risk_level"] in ("low", "moderate", "high")
        elif spec.kind == "classifier":
            assert list(prediction["probabilities"]) == list(spec.classes)
            assert sum(prediction["probabilities"].values()) == pytest.approx(1)
        elif spec.kind == "regressor":
            assert 30 < prediction["life_expectancy_years"] < 95
        else:
            assert 0 < prediction["lower_usd"] <= prediction["charges_usd"] <= prediction["upper_usd"]
    elif name == "brain_tumor":
        assert prediction["predicted_class"] in BRAIN_TUMOR.classes
        assert sum(prediction["probabilities"].values()) == pytest.approx(1, abs=1e-5)
    elif name == "fitbit_percentiles":
        assert prediction["percentiles"] and all(0 <= p["percentile"] <= 100 for p in prediction["percentiles"])
    elif name == "hospital_analytics":
        assert prediction["rows"] and prediction["summary"]["n_rows"] == len(prediction["rows"])
    else:
        raise AssertionError(f"unexpected endpoint {endpoint}")


def check_answer(call: Call) -> None:
    answer = call.result
    assert isinstance(answer, dict), (call.endpoint, answer)
    if call.endpoint == "models":
        assert len(answer["models"]) == 8
        assert all(m["model"]["tag"].startswith("vitalcheck-") for m in answer["models"])
        return
    name = call.endpoint.removesuffix("_batch").removesuffix("_file")
    if name in SINGLE or name == "brain_tumor":
        store_name = TABULAR_MODELS[name].store_name if name in SINGLE else BRAIN_TUMOR.store_name
        assert answer["model"]["tag"].startswith(store_name + ":"), answer["model"]
    if "predictions" in answer:
        assert answer["predictions"]
        for prediction in answer["predictions"]:
            check_prediction(call.endpoint, prediction)
    else:
        check_prediction(call.endpoint, answer["prediction"])


def test_the_page_has_examples():
    assert len(BLOCKS) >= 8


@pytest.mark.parametrize("index", range(len(BLOCKS)), ids=[f"{i}-{t}" for i, t in enumerate(TITLES)])
def test_block_runs_and_returns_real_predictions(runs, index):
    run = runs[index]
    if run.error is not None:
        raise AssertionError(f"block {index} ({TITLES[index]}) failed; it printed:\n{run.output}") from run.error
    assert run.calls, f"block {index} called no endpoint"
    assert run.output.strip(), f"block {index} printed nothing"
    for call in run.calls:
        if call.error is not None:  # only the errors example fails on purpose, with 400 or 401
            assert TITLES[index] == "Errors" and call.error.error_code in (400, 401), call
        else:
            check_answer(call)


def test_every_endpoint_with_both_clients(runs):
    calls = [c for run in runs for c in run.calls if c.error is None]
    for client in ("SyncHTTPClient", "AsyncHTTPClient"):
        made = [c for c in calls if c.client == client]
        names = {c.endpoint for c in made}
        assert SINGLE <= names, f"{client}: no single-record example for {SINGLE - names}"
        assert OTHER <= names, f"{client}: no example for {OTHER - names}"
        assert any(n.endswith("_batch") for n in names), f"{client}: no batch example"
        uploads = {Path(c.kwargs["file"]).suffix for c in made if c.endpoint.endswith("_file")}
        assert {".csv", ".parquet"} <= uploads, f"{client}: uploads cover only {uploads}"
