"""The error family (vitalcheck.errors) and the guard's answers built from it, without a server."""

import asyncio
import json
import subprocess
import sys

import pytest
from pydantic import ValidationError

from vitalcheck import errors
from vitalcheck.errors import (
    ClientClosedRequest,
    HeadersTooLarge,
    InternalError,
    InvalidInput,
    MethodNotAllowed,
    NotReady,
    PayloadTooLarge,
    RequestTimeout,
    Unauthorized,
    UnsupportedMediaType,
    VitalCheckError,
    request_error,
    server_error_for,
)
from vitalcheck.settings import get_settings

CLIENT_ERRORS = [
    (InvalidInput, 400),
    (Unauthorized, 401),
    (MethodNotAllowed, 405),
    (RequestTimeout, 408),
    (PayloadTooLarge, 413),
    (UnsupportedMediaType, 415),
    (HeadersTooLarge, 431),
    (ClientClosedRequest, 499),
]


def decoded(answer):
    status, headers, body = answer
    headers = dict(headers)
    assert headers[b"content-type"] == b"application/json"
    assert int(headers[b"content-length"]) == len(body)
    return status, headers, json.loads(body)


@pytest.mark.parametrize(("kind", "status"), CLIENT_ERRORS)
def test_every_client_error_is_a_validation_error_with_its_status(kind, status):
    error = kind.at(("records", 3, "age_years"), "some_rule", "the rule {in words}")
    assert isinstance(error, VitalCheckError) and isinstance(error, ValidationError) and error.status == status
    assert error.errors(include_url=False) == [
        {"type": "some_rule", "loc": ("records", 3, "age_years"), "msg": "the rule {in words}", "input": None}
    ]
    got_status, _, body = decoded(error.answer())
    assert got_status == status
    assert body == {
        "error": "1 validation error for request",
        "detail": [{"type": "some_rule", "loc": ["records", 3, "age_years"], "msg": "the rule {in words}"}],
    }


def test_several_entries_and_a_summary():
    entries = [
        {"type": "a", "loc": ("file", 0, "age"), "msg": "m", "input": 123},
        {"type": "b", "loc": "file", "msg": "n"},
    ]
    error = InvalidInput.of(entries, summary="two problems")
    assert error.body() == {
        "error": "two problems",
        "detail": [{"type": "a", "loc": ["file", 0, "age"], "msg": "m"}, {"type": "b", "loc": ["file"], "msg": "n"}],
    }
    assert "123" not in json.dumps(error.body())  # a submitted value never comes back


def test_the_guards_headers_come_with_their_class():
    assert decoded(Unauthorized.at("header", "unauthorized", "x").answer())[1][b"www-authenticate"].startswith(
        b"Bearer"
    )
    assert decoded(MethodNotAllowed.at("method", "method_not_allowed", "x").answer())[1][b"allow"] == b"POST"
    assert decoded(RequestTimeout.at("body", "request_timeout", "x").answer())[1][b"connection"] == b"close"
    assert b"www-authenticate" not in decoded(InvalidInput.at("body", "r", "x").answer())[1]


@pytest.mark.parametrize(
    ("kind", "status", "rule"), [(InternalError, 500, "internal_error"), (NotReady, 503, "not_ready")]
)
def test_server_errors_have_a_fixed_body_that_says_nothing_of_the_failure(kind, status, rule):
    error = kind("probability 0.731 failed its bound")
    assert not isinstance(error, ValidationError)
    got_status, _, body = decoded(error.answer())
    assert got_status == status and body == kind().body()
    assert body["detail"] == [{"type": rule, "loc": [], "msg": kind.message}]
    assert "0.731" not in json.dumps(body)


def test_server_error_for_a_status():
    assert isinstance(server_error_for(503), NotReady)
    assert all(type(server_error_for(s)) is InternalError for s in (500, 502, 504))


def test_request_error_still_builds_a_400():
    error = request_error("image", "image_rejected", "exceeds 10 pixels")
    assert isinstance(error, InvalidInput) and error.errors()[0]["loc"] == ("image",)


def test_moved_error_classes_are_importable_where_they_were():
    from vitalcheck import cards, imaging, sources
    from vitalcheck.imaging import errors as imaging_errors

    assert cards.ArtifactCheckError is errors.ArtifactCheckError
    assert imaging.ImageRejected is imaging_errors.ImageRejected is errors.ImageRejected
    assert imaging.RULE_NOT_MRI_SLICE == imaging_errors.RULE_NOT_MRI_SLICE == "not_an_mri_slice"
    assert sources.MissingColumnError is errors.MissingColumnError
    assert sources.ColumnFormatError is errors.ColumnFormatError
    assert sources.SourceTooLarge is errors.SourceTooLarge


def test_the_errors_module_imports_no_server_stack():
    """Training and Spark executors import it (through cards and sources): it must stay light."""
    code = "import sys, vitalcheck.errors; print(sorted(m for m in sys.modules if m.split('.')[0] in ('bentoml', 'starlette', 'pandas')))"
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"
    )


# ---- the guard, driven over ASGI ---------------------------------------------------------------------


def guard(app=None, **settings):
    from vitalcheck.middleware import JSON, RequestGuard, Route

    async def unreachable(scope, receive, send):
        raise AssertionError("the application was called")

    limits = get_settings().model_copy(update={"api_token": None, **settings})
    return RequestGuard(app or unreachable, {"/r": Route(JSON, 1000, 16)}, frozenset(), limits)


def call(app, receive, path="/r"):
    sent = []

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": path, "headers": [(b"content-type", b"application/json")]}
    asyncio.run(app(scope, receive, send))
    start, body = sent[0], b"".join(m.get("body", b"") for m in sent[1:])
    return start["status"], dict(start["headers"]), json.loads(body)


def test_408_for_a_body_that_does_not_arrive():
    async def stalled():
        await asyncio.sleep(10)

    status, headers, body = call(guard(body_timeout_s=0.05), stalled)
    assert (status, headers[b"connection"]) == (408, b"close")
    assert body == {"error": "request body not received within 0.05 s", "detail": [
        {"type": "request_timeout", "loc": ["body"], "msg": "request body not received within 0.05 s"}
    ]}  # fmt: skip


def test_499_recorded_for_a_client_that_hangs_up():
    async def gone():
        return {"type": "http.disconnect"}

    status, _, body = call(guard(), gone)
    assert status == 499 and body["detail"][0]["type"] == "client_closed_request"


def answering(status: int, body: bytes, content_type=b"text/plain"):
    async def app(scope, receive, send):
        await receive()
        await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", content_type)]})
        await send({"type": "http.response.body", "body": body})

    return app


@pytest.mark.parametrize(("status", "kind"), [(500, InternalError), (503, NotReady), (502, InternalError)])
def test_every_5xx_of_the_service_gets_the_familys_fixed_body(status, kind):
    async def request():
        return {"type": "http.request", "body": b"{}", "more_body": False}

    leaky = b"Traceback (most recent call last): ... input_value=183.25"
    got, _, body = call(guard(answering(status, leaky)), request)
    assert got == status and body == kind().body()


def test_a_4xx_of_the_service_keeps_its_entries_with_redacted_locations():
    async def request():
        return {"type": "http.request", "body": b"{}", "more_body": False}

    answer = json.dumps({"error": "1 validation error", "detail": [{"type": "t", "loc": ["Jane Doe"], "msg": "m"}]})
    status, _, body = call(guard(answering(422, answer.encode(), b"application/json")), request)
    assert status == 422
    assert body == {"error": "1 validation error", "detail": [{"type": "t", "loc": ["(unknown field)"], "msg": "m"}]}
