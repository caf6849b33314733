"""The error family (vitalcheck.errors) through the in-process HTTP client: every status in the documented shape.

Each refusal has its family's status and the body ``{"error": str, "detail": [{"type", "loc", "msg"}]}``;
an upload over VITALCHECK_MAX_UPLOAD_BYTES is 413 like any other body over its limit; a server-side
validation failure (an answer that fails its response model) is a 500 with a fixed body, logged
without the submitted value and counted in BentoML's request metrics. The session's service runs
with a token and a 4 MiB request limit (tests/conftest.py).
"""

import logging
import math

import prometheus_client
import pytest

from tests.conftest import API_TOKEN
from tests.utils.payloads import EXAMPLES, ROUTES, png_bytes
from vitalcheck.api import VitalCheckAPI
from vitalcheck.errors import InternalError, NotReady

DIABETES = ROUTES["diabetes"]
IMAGE = "/api/v1/imaging/brain-tumor"
SUBMITTED = 23.3917
"""A submitted value (a BMI) that the faulty predictor below turns into its answer."""


def shape(response, status: int) -> dict:
    """Assert the status and the documented shape; return the body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert isinstance(body, dict) and set(body) == {"error", "detail"}, body
    assert isinstance(body["error"], str) and body["detail"], body
    for entry in body["detail"]:
        assert set(entry) == {"type", "loc", "msg"}, entry
        assert isinstance(entry["type"], str) and isinstance(entry["loc"], list) and isinstance(entry["msg"], str)
    return body


def kinds(body: dict) -> dict[tuple, str]:
    return {tuple(e["loc"]): e["type"] for e in body["detail"]}


def server_log(caplog) -> str:
    """What the service logged (the test client's own httpx lines name the URL it sent)."""
    return "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("httpx"))


def requests_counted(route: str, status: int) -> float:
    """BentoML's ``request_total`` for ``route`` and ``status``, as ``/metrics`` serves it (here: in-process)."""
    total = 0.0
    for metric in prometheus_client.REGISTRY.collect():
        for sample in metric.samples:
            labels = sample.labels
            if sample.name.endswith("service_request_total") and labels.get("endpoint") == route:
                total += sample.value if labels.get("http_response_code") == str(status) else 0.0
    return total


# ---- 4xx ----------------------------------------------------------------------------------------------


def test_400_invalid_input(http):
    body = shape(http.post(DIABETES, json={**EXAMPLES["diabetes"], "glucose_mg_dl": 999}), 400)
    assert kinds(body) == {("glucose_mg_dl",): "less_than_equal"}
    assert "999" not in str(body)


def test_400_from_our_own_checks(http):
    body = shape(http.post(ROUTES["insurance"] + "/file", files={"file": ("rows.csv", b"\x1f\x8b\x08gzip")}), 400)
    assert kinds(body) == {("file",): "compressed_upload"}
    assert body["error"] == "1 validation error for request"


def test_401_unauthorized(http):
    response = http.post(DIABETES, json=EXAMPLES["diabetes"], headers={"Authorization": "Bearer wrong-0123456789"})
    body = shape(response, 401)
    assert kinds(body) == {("header", "authorization"): "unauthorized"}
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert API_TOKEN not in response.text


def test_405_method_not_allowed(http):
    response = http.get(DIABETES)
    assert kinds(shape(response, 405)) == {("method",): "method_not_allowed"}
    assert response.headers["allow"] == "POST"


def test_413_body_over_the_route_limit(http):
    response = http.post(
        DIABETES, content=b"{" + b" " * (128 * 1024) + b"}", headers={"Content-Type": "application/json"}
    )
    assert kinds(shape(response, 413)) == {("body",): "request_too_large"}


@pytest.fixture
def small_uploads(settings, monkeypatch):
    """The served settings with VITALCHECK_MAX_UPLOAD_BYTES = 4096 (below the request limit, so the API checks it)."""
    monkeypatch.setattr(settings, "max_upload_bytes", 4096)
    return 4096


@pytest.mark.parametrize(
    ("route", "field", "filename", "content"),
    [
        (ROUTES["insurance"] + "/file", "file", "rows.csv", b"age,sex\n" + b"19,female\n" * 1000),
        (IMAGE, "image", "slice.png", png_bytes((200, 200), mode="RGB") + b"\0" * 8192),
    ],
)
def test_413_upload_over_the_upload_limit(http, small_uploads, route, field, filename, content):
    """Regression (issue #12): an upload over VITALCHECK_MAX_UPLOAD_BYTES was 400, a body over its limit 413."""
    assert small_uploads < len(content) < 64 * 1024
    body = shape(http.post(route, files={field: (filename, content)}), 413)
    assert kinds(body) == {(field,): "upload_too_large"}
    assert body["detail"][0]["msg"] == f"upload exceeds {small_uploads} bytes"


def test_415_unsupported_media_type(http):
    response = http.post(DIABETES, content=b"glucose=183", headers={"Content-Type": "text/plain"})
    assert kinds(shape(response, 415)) == {("header", "content-type"): "unsupported_media_type"}


def test_431_headers_too_large(http):
    response = http.post(DIABETES, json=EXAMPLES["diabetes"], headers={"X-Padding": "x" * (20 * 1024)})
    assert kinds(shape(response, 431)) == {("header",): "headers_too_large"}


# ---- 5xx ----------------------------------------------------------------------------------------------


@pytest.fixture
def faulty_predictions(monkeypatch):
    """Every tabular prediction's probability (or central estimate) becomes a submitted value, NaN or 2.0.

    Stands for a predictor bug (a NaN, a probability above 1): the answer then fails its own
    response model inside the API method, after the request passed its input model.
    """
    answer = VitalCheckAPI._answer
    mode = {"value": "submitted"}

    def faulty(self, name, records, prefix=""):
        predictions, warnings = answer(self, name, records, prefix)
        bad = {"submitted": records[0].model_dump()["bmi_kg_m2"], "nan": math.nan, "two": 2.0}[mode["value"]]
        return [type(p).model_validate({**p.model_dump(), "probability": bad}) for p in predictions], warnings

    monkeypatch.setattr(VitalCheckAPI, "_answer", faulty)
    return mode


@pytest.mark.parametrize("value", ["submitted", "nan", "two"])
@pytest.mark.parametrize("route", ["single", "batch"])
def test_500_for_an_answer_that_fails_its_response_model(http, caplog, faulty_predictions, value, route):
    """Regression (issue #12): a response model's failed bound reached the client as a 400 naming the field."""
    faulty_predictions["value"] = value
    record = {**EXAMPLES["diabetes"], "bmi_kg_m2": SUBMITTED}
    path, payload = (DIABETES, record) if route == "single" else (DIABETES + "/batch", {"records": [record]})
    before = requests_counted(path, 500)
    caplog.set_level(logging.INFO)
    response = http.post(path, json=payload)
    body = shape(response, 500)
    assert body == InternalError().body()
    assert str(SUBMITTED) not in response.text and "probability" not in response.text
    log = server_log(caplog)
    assert str(SUBMITTED) not in log and "input_value" not in log
    (failure,) = [r for r in caplog.records if "server-side validation failure" in r.getMessage()]
    assert failure.levelno == logging.ERROR and "Traceback" in failure.getMessage()
    assert "RiskPrediction" in failure.getMessage()
    assert "request rejected" not in log  # not logged as a client's error
    assert requests_counted(path, 500) == before + 1


def test_500_for_any_other_failure_has_the_same_body(http, caplog, monkeypatch):
    def broken(self, name, records, prefix=""):
        raise RuntimeError(f"cannot score {records[0].model_dump()['bmi_kg_m2']}")

    monkeypatch.setattr(VitalCheckAPI, "_answer", broken)
    response = http.post(DIABETES + "/batch", json={"records": [{**EXAMPLES["diabetes"], "bmi_kg_m2": SUBMITTED}]})
    assert shape(response, 500) == InternalError().body()
    assert str(SUBMITTED) not in response.text and str(SUBMITTED) not in server_log(caplog)


def test_503_not_ready_raised_in_an_api_method(http, monkeypatch):
    def not_ready(self):
        raise NotReady("the registry is reloading")

    monkeypatch.setattr(VitalCheckAPI, "models", not_ready)
    response = http.post("/api/v1/models", json={})
    assert shape(response, 503) == NotReady().body()
    assert "reloading" not in response.text


def test_input_validation_is_still_400_with_the_faulty_predictor(http, faulty_predictions):
    """Only the input model and our own checks give 400; the boundary does not turn those into 500."""
    body = shape(http.post(DIABETES, json={**EXAMPLES["diabetes"], "age_years": -1}), 400)
    assert kinds(body) == {("age_years",): "greater_than_equal"}
    body = shape(http.post(DIABETES + "/batch", json={"records": [{"age_years": 1}]}), 400)
    assert all(loc[0] == "records" for loc in kinds(body))
