"""The HTTP boundary from the attacker's side (issue #11): path spellings, media types, keys, headers.

Every request here is one a client could send but the documentation never shows. The service runs
with a token and a 4 MiB body limit (tests/conftest.py). Raw paths are sent as they are
(``httpx.URL.copy_with(raw_path=...)``), decoded the way uvicorn decodes them.
"""

import contextlib
import json
from urllib.parse import quote

import httpx
import pytest

from tests.conftest import API_TOKEN
from tests.utils.payloads import EXAMPLES, ROUTES
from vitalcheck.middleware import MAX_ERROR_ENTRIES
from vitalcheck.redaction import LOGGED_ERRORS
from vitalcheck.schemas.common import RECORD_CHUNK

SECRET = "Jane-Doe-1967-03-14"
"""A value no documented field holds: it must never come back."""
INSURANCE = ROUTES["insurance"]


@contextlib.contextmanager
def no_token(http):
    """The session's client without its default Authorization header."""
    saved = http.headers.pop("authorization")
    try:
        yield http
    finally:
        http.headers["authorization"] = saved


def raw_post(http, raw_path: bytes, body: bytes = b"", content_type="application/json", headers=None):
    url = httpx.URL("http://testserver").copy_with(raw_path=raw_path)
    return http.post(url, content=body, headers={"Content-Type": content_type, **(headers or {})})


def server_log(caplog) -> str:
    """What the service logged (the test client's own httpx log lines name the URL it sent)."""
    return "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("httpx"))


def assert_shape(response, status):
    assert response.status_code == status, response.text
    body = response.json()
    assert isinstance(body, dict) and isinstance(body["error"], str), body
    assert body["detail"] and all({"type", "loc", "msg"} <= set(e) for e in body["detail"]), body
    return body


def every_char_encoded(path: str) -> list[bytes]:
    """The path with each single character after the leading slash percent-encoded in turn (slashes too)."""
    return [(path[:i] + f"%{ord(c):02X}" + path[i + 1 :]).encode() for i, c in enumerate(path) if i]


SPELLINGS = [
    b"/%61pi/v1/insurance",
    b"/api%2Fv1/insurance",
    b"/api%2fv1%2finsurance",
    b"/%2561pi/v1/insurance",
    b"//api/v1/insurance",
    b"/api//v1/insurance",
    b"/./api/v1/insurance",
    b"/api/./v1/insurance",
    b"/api/v1/../v1/insurance",
    b"/api/v1/insurance/",
    b"/api/v1/insurance/.",
    b"/API/v1/insurance",
    b"/Api/V1/Insurance",
    b"/api/v1/insurance%20",
    b"/api/v1/insurance%00",
    b"/api/v1/insurance;x=1",
    b"/api/v1/insurance?x=1",
    b"/livez/../api/v1/insurance",
    b"/livez%2F..%2Fapi/v1/insurance",
    b"/metrics/../api/v1/insurance",
    b"/static_content/../api/v1/insurance",
    b"/static_content/%2e%2e/api/v1/insurance",
    b"/docs.json/../api/v1/insurance",
    b"/%2F/api/v1/insurance",
    b"/api/v1/%69nsurance",
    b"/api/v1/insurance/batch/..",
    *every_char_encoded("/api/v1/insurance"),
]


@pytest.mark.parametrize("raw_path", SPELLINGS, ids=lambda p: p.decode())
def test_no_spelling_of_a_route_answers_without_the_token(http, raw_path):
    """Regression: /%61pi/... and /api%2F... reached the routes while the guard tested the raw path."""
    with no_token(http):
        response = raw_post(http, raw_path, json.dumps(EXAMPLES["insurance"]).encode())
    assert response.status_code == 401, (raw_path, response.status_code, response.text[:200])
    assert "charges_usd" not in response.text


@pytest.mark.parametrize("raw_path", [b"/%61pi/v1/models", b"/api%2Fv1/insurance"])
def test_decoded_spellings_reach_the_route_with_the_token(http, raw_path):
    """The decision is taken on the path the router matches: with the token, the route answers."""
    body = b"{}" if raw_path.endswith(b"models") else json.dumps(EXAMPLES["insurance"]).encode()
    assert raw_post(http, raw_path, body).status_code == 200


@pytest.mark.parametrize(
    "path", ["/docs.json/", "/schema.json/", "/livez/", "/metrics/x", "/api/v1/nothing", "/anything", "/api"]
)
def test_everything_but_the_open_endpoints_needs_the_token(http, path):
    """Deny by default: unknown and near-miss paths get 401, not 404 or a page."""
    with no_token(http):
        assert http.get(path).status_code == 401
        assert http.post(path, json={}).status_code == 401


@pytest.mark.parametrize(
    "path", ["/livez", "/readyz", "/docs.json", "/schema.json", "/", "/static_content/swagger-ui.css"]
)
def test_open_endpoints_answer_without_the_token(http, path):
    """(/metrics needs BentoML's multiprocess set-up: tests/integration/test_boundary_serve.py checks it.)"""
    with no_token(http):
        assert http.get(path).status_code == 200


@pytest.mark.parametrize(
    "header",
    [f"bearer {API_TOKEN}", f"BEARER {API_TOKEN}", f"Bearer  {API_TOKEN}", f"  Bearer {API_TOKEN}  "],
)
def test_the_scheme_is_case_insensitive(http, header):
    """RFC 7235: the auth scheme is case-insensitive."""
    assert http.post(INSURANCE, json=EXAMPLES["insurance"], headers={"Authorization": header}).status_code == 200


@pytest.mark.parametrize(
    "values",
    [
        [f"Bearer {API_TOKEN}", f"Bearer {API_TOKEN}"],
        [f"Bearer {API_TOKEN}", "Bearer wrong-token-0123456789"],
        ["Bearer wrong-token-0123456789", f"Bearer {API_TOKEN}"],
    ],
)
def test_two_authorization_headers_are_refused(http, values):
    with no_token(http):
        headers = [("Authorization", v) for v in values] + [("Content-Type", "application/json")]
        response = http.post(INSURANCE, content=json.dumps(EXAMPLES["insurance"]), headers=headers)
    body = assert_shape(response, 401)
    assert body["detail"][0]["loc"] == ["header", "authorization"]
    assert API_TOKEN not in response.text


@pytest.mark.parametrize(
    "header", [f"Bearer {API_TOKEN}x", f"Bearer {API_TOKEN[:-1]}", f"Token {API_TOKEN}", f"Bearer{API_TOKEN}", "Bearer"]
)
def test_near_miss_tokens_are_refused(http, header):
    with no_token(http):
        response = http.post(INSURANCE, json=EXAMPLES["insurance"], headers={"Authorization": header})
    assert_shape(response, 401)
    assert API_TOKEN not in response.text


# ---- media types ------------------------------------------------------------------------------------

README_DIABETES = json.dumps({**EXAMPLES["diabetes"], "age_years": 32}).encode()


@pytest.mark.parametrize(
    "content_type",
    [
        "application/x-www-form-urlencoded",  # curl -d's default
        "text/plain",
        "multipart/form-data; boundary=x",
        "application/xml",
        "application/json-patch+json",
        "application/vnd.bentoml+pickle",
        "application/json; charset=latin-1",
        "",
    ],
)
def test_json_routes_take_application_json_only(http, content_type, caplog):
    """Regression: a form-encoded body was parsed as one key holding the whole body, echoed and logged."""
    body = README_DIABETES.replace(b"32", b"777111")
    response = raw_post(http, ROUTES["diabetes"].encode(), body, content_type)
    error = assert_shape(response, 415)
    assert error["detail"][0]["loc"] == ["header", "content-type"]
    assert "777111" not in response.text and "777111" not in server_log(caplog)


def test_a_body_without_a_content_type_is_refused(http):
    url = httpx.URL("http://testserver").copy_with(raw_path=ROUTES["diabetes"].encode())
    request = http.build_request("POST", url, content=README_DIABETES)  # httpx sets no Content-Type for bytes
    assert "content-type" not in request.headers
    assert_shape(http.send(request), 415)


def test_no_body_and_no_content_type_is_an_empty_query(http):
    """Every field of the hospital query is optional: a bare POST asks for all weeks of all services."""
    response = http.post("/api/v1/hospital/analytics")
    assert response.status_code == 200, response.text
    assert len(response.json()["prediction"]["rows"]) == 4 * 52


def test_real_form_fields_are_not_coerced(http):
    """Regression: fasting_blood_sugar_over_120=yes was read as true over a form body."""
    form = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in EXAMPLES["heart"].items()}
    form["fasting_blood_sugar_over_120"] = "yes"
    assert_shape(http.post(ROUTES["heart"], data=form), 415)


@pytest.mark.parametrize(
    "content_type", ["Application/JSON", "application/json; charset=utf-8", "application/json;charset=UTF-8"]
)
def test_json_media_type_spellings_are_accepted(http, content_type):
    assert (
        raw_post(http, INSURANCE.encode(), json.dumps(EXAMPLES["insurance"]).encode(), content_type).status_code == 200
    )


@pytest.mark.parametrize("content_type", ["application/json", "text/plain", "application/x-www-form-urlencoded", ""])
def test_upload_routes_take_multipart_only(http, content_type):
    response = raw_post(http, (ROUTES["stroke"] + "/file").encode(), b"http://127.0.0.1:9/rows.csv", content_type)
    assert_shape(response, 415)


def test_models_route_takes_no_body_with_or_without_json_type(http):
    assert http.post("/api/v1/models").status_code == 200
    assert http.post("/api/v1/models", json={}).status_code == 200


@pytest.mark.parametrize("payload", [{SECRET: 1}, [SECRET], SECRET])
def test_models_route_refuses_any_input_without_repeating_it(http, payload, caplog):
    response = http.post("/api/v1/models", json=payload)
    assert assert_shape(response, 400)["detail"][0]["loc"] == ["body"]
    assert SECRET not in response.text and SECRET not in server_log(caplog)


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_api_routes_answer_other_methods_with_405_in_the_error_shape(http, method):
    assert_shape(http.request(method, INSURANCE), 405)


# ---- keys are submitted data too ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("route", "payload"),
    [
        (INSURANCE, {**EXAMPLES["insurance"], SECRET: 1}),
        (INSURANCE, {SECRET: 1}),
        (INSURANCE + "/batch", {"records": [{**EXAMPLES["insurance"], SECRET: "x"}]}),
        (INSURANCE + "/batch", {"records": [EXAMPLES["insurance"]], SECRET: []}),
        ("/api/v1/fitbit/percentiles", {"total_steps": 10, SECRET: 2}),
        ("/api/v1/hospital/analytics", {"service": "ICU", SECRET: 2}),
    ],
)
def test_unknown_keys_are_reported_without_repeating_them(http, route, payload, caplog):
    """Regression: {"<any name>": 1} came back as loc ["<any name>"] in the body and the log."""
    response = http.post(route, json=payload)
    body = assert_shape(response, 400)
    assert any(e["type"] == "extra_forbidden" for e in body["detail"]), body
    assert SECRET not in response.text
    assert SECRET not in server_log(caplog)


def test_a_million_unknown_keys_are_one_error(http, caplog):
    """Regression: each unknown key was an error of its own (1.5 M keys: 2.9 GB and a 52 MB log line)."""
    keys = {f"k{i}": 0 for i in range(200_000)}
    response = http.post(INSURANCE + "/batch", json={"records": [{**EXAMPLES["insurance"], **keys}]})
    body = assert_shape(response, 400)
    assert body["detail"] == [
        {"type": "extra_forbidden", "loc": ["records", 0], "msg": "unknown field(s): send only the documented fields"}
    ]
    assert "k199999" not in server_log(caplog)


def test_error_lists_are_capped_in_the_body_and_the_log(http, caplog):
    bad = {**EXAMPLES["insurance"], "bmi_kg_m2": -1.0, "age_years": -1, "children": -1, "region": "x"}
    response = http.post(INSURANCE + "/batch", json={"records": [bad] * 5000})
    body = assert_shape(response, 400)
    errors = 4 * RECORD_CHUNK  # checking stops at the first block of records with an error
    assert len(body["detail"]) == MAX_ERROR_ENTRIES + 1
    assert body["detail"][-1] == {
        "type": "too_many_errors",
        "loc": ["records"],
        "msg": f"{errors - MAX_ERROR_ENTRIES} more",
    }
    (line,) = [r.getMessage() for r in caplog.records if "request rejected" in r.getMessage()]
    assert line.endswith(f"and {errors - LOGGED_ERRORS} more") and len(line) < 2000


@pytest.mark.parametrize("record", [{}, {"age_years": "x", "bmi_kg_m2": -1}, {"unknown": 1}])
def test_an_all_invalid_batch_is_refused_without_building_every_error(http, record):
    """Regression: 10,000 empty records made pydantic build 60,000+ errors (7-11 s of CPU for a 30 KB body)."""
    response = http.post(INSURANCE + "/batch", json={"records": [record] * 10_000})
    body = assert_shape(response, 400)
    assert {e["loc"][1] for e in body["detail"] if len(e["loc"]) > 1} <= set(range(RECORD_CHUNK))


def test_a_late_invalid_record_is_located_by_its_index_in_the_batch(http):
    good = EXAMPLES["insurance"]
    records = [good] * 777 + [{**good, "age_years": 500}] + [good] * 5
    body = assert_shape(http.post(INSURANCE + "/batch", json={"records": records}), 400)
    assert [(e["type"], e["loc"]) for e in body["detail"]] == [("less_than_equal", ["records", 777, "age_years"])]


def test_batch_chunks_keep_json_strictness(http):
    good = EXAMPLES["insurance"]
    records = [good] * 120 + [{**good, "age_years": "30", "smoker": 1}]
    body = assert_shape(http.post(INSURANCE + "/batch", json={"records": records}), 400)
    assert {(e["type"], tuple(e["loc"])) for e in body["detail"]} == {
        ("int_type", ("records", 120, "age_years")),
        ("bool_type", ("records", 120, "smoker")),
    }
    assert len(http.post(INSURANCE + "/batch", json={"records": [good] * 120}).json()["predictions"]) == 120


def test_a_list_of_millions_of_records_is_refused_before_validating_them(http, settings):
    response = raw_post(http, (INSURANCE + "/batch").encode(), b'{"records": [' + b"[]," * 1_000_000 + b"[]]}")
    body = assert_shape(response, 400)
    assert [e["type"] for e in body["detail"]] == ["too_many_json_containers"]
    one_too_many = b'{"records": [' + b",".join([b"{}"] * (settings.max_batch_records + 1)) + b"]}"
    body = assert_shape(raw_post(http, (INSURANCE + "/batch").encode(), one_too_many), 400)
    assert [e["type"] for e in body["detail"]] == ["too_long"]


@pytest.mark.parametrize(("route", "size"), [(INSURANCE, 70_000), ("/api/v1/fitbit/percentiles", 70_000)])
def test_single_record_routes_take_small_bodies_only(http, route, size):
    body = b'{"age_years": 19, "pad": "' + b"a" * size + b'"}'
    assert_shape(raw_post(http, route.encode(), body), 413)


def test_a_key_that_is_a_whole_body_is_not_repeated(http, caplog):
    """The form-body echo, but as JSON: one key holding a whole record."""
    response = http.post(ROUTES["diabetes"], json={README_DIABETES.decode(): ""})
    assert_shape(response, 400)
    assert "183" not in response.text and "0.672" not in response.text
    assert "0.672" not in server_log(caplog)


# ---- headers and bodies ----------------------------------------------------------------------------


@pytest.mark.parametrize("size", [20_000, 100_000])
def test_oversized_headers_are_refused(http, size):
    """Regression: a 100 KB header got 200."""
    response = http.post(INSURANCE, json=EXAMPLES["insurance"], headers={"X-Padding": "a" * size})
    assert_shape(response, 431)


def test_many_small_headers_add_up(http):
    headers = [(f"X-H{i}", "a" * 100) for i in range(400)]
    response = http.post(
        INSURANCE, content=json.dumps(EXAMPLES["insurance"]), headers=[*headers, ("Content-Type", "application/json")]
    )
    assert_shape(response, 431)


@pytest.mark.parametrize("length", ["abc", "-1", "1e3", "99999999999999999999999"])
def test_malformed_or_huge_content_length_is_refused(http, length):
    response = raw_post(http, INSURANCE.encode(), b"{}", headers={"Content-Length": length})
    assert response.status_code in (400, 413), response.text


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/livez"), ("POST", "/docs.json"), ("GET", "/static_content/nothing.js"), ("POST", "/api/v1/x")],
)
def test_other_4xx_answers_have_the_error_shape_too(http, method, path):
    response = http.request(method, path)
    assert 400 <= response.status_code < 500
    assert_shape(response, response.status_code)


def test_encoded_secret_in_the_path_is_not_logged(http, caplog):
    with caplog.at_level("INFO"):
        raw_post(http, f"/api/v1/{quote(SECRET)}".encode(), b"{}")
        raw_post(http, f"/{quote(SECRET)}".encode(), b"{}", headers={"Authorization": ""})
    assert "bentoml.access" in caplog.text
    assert SECRET not in server_log(caplog)


def test_an_upper_case_multipart_type_does_not_reach_the_json_parser(http):
    """Regression: MULTIPART/FORM-DATA passed the guard, then BentoML parsed the body as JSON (25 MiB limit)."""
    body = b'{"image": [' + b"{}," * 1000 + b"{}]}"
    response = raw_post(http, b"/api/v1/imaging/brain-tumor", body, "MULTIPART/FORM-DATA; boundary=x")
    error = assert_shape(response, 400)
    assert all(e["type"] != "path_type" for e in error["detail"]), error


def test_deeply_nested_arrays_are_refused_before_parsing(http):
    """Regression (probe 3): 10,000 records of arrays nested 190 deep (15 MB) cost 5 s of CPU and 1 GB to refuse.

    This one holds 1.5 million arrays in 3 MB (the session's request limit is 4 MiB).
    """
    import time

    nested = b"[" * 190 + b"]" * 190
    record = b"[" + b",".join([nested] * 4) + b"]"
    body = b'{"records": [' + b",".join([record] * 2_000) + b"]}"  # 3 MB: under the session's 4 MiB limit
    started = time.process_time()
    response = raw_post(http, (INSURANCE + "/batch").encode(), body)
    assert [e["type"] for e in assert_shape(response, 400)["detail"]] == ["too_many_json_containers"]
    assert time.process_time() - started < 1.0  # the client's encoding included; the refusal itself takes ms


@pytest.mark.parametrize("body", [b'{"age_years": [[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]}', b"[" * 20 + b"]" * 20])
def test_a_single_record_body_holds_flat_json_only(http, body):
    response = raw_post(http, INSURANCE.encode(), body)
    assert [e["type"] for e in assert_shape(response, 400)["detail"]] == ["too_many_json_containers"]


def test_a_full_batch_of_flat_records_passes_the_container_limit(http, settings):
    records = [EXAMPLES["insurance"]] * settings.max_batch_records
    response = http.post(INSURANCE + "/batch", json={"records": records})
    assert response.status_code == 200, response.text[:300]
    assert len(response.json()["predictions"]) == settings.max_batch_records


def test_websocket_connections_are_refused(http):
    """Regression (probe 3): a WebSocket upgrade reached BentoML, whose access log printed the raw path."""
    from starlette.websockets import WebSocketDisconnect

    with pytest.raises(WebSocketDisconnect) as closed, http.websocket_connect("/x%0aFORGED"):
        pass
    assert closed.value.code == 1008


def test_an_unlisted_path_is_a_404_about_the_path(http):
    response = http.post("/api/v1/no-such-route", json={})
    assert response.status_code == 404
    assert response.json() == {
        "error": "not found",
        "detail": [{"type": "not_found", "loc": ["path"], "msg": "no such endpoint"}],
    }


def test_open_documents_are_built_once_per_worker(http, monkeypatch):
    """Regression (probe 5): /docs.json took 60-230 ms per request, open to anyone: 58x slower predictions."""
    import vitalcheck.openapi

    first = http.get("/docs.json", headers={"Authorization": ""})
    calls = []
    monkeypatch.setattr(vitalcheck.openapi, "correct_openapi", lambda doc: calls.append(1) or doc)
    for path in ("/docs.json", "/schema.json", "/docs.json"):
        assert http.get(path).status_code == 200
    assert http.get("/docs.json").content == first.content
    assert calls == []
    assert http.head("/docs.json").content == b""


@pytest.mark.parametrize("path", ["/metrics", "/livez", "/docs.json"])
def test_another_method_on_an_open_endpoint_is_a_405_about_the_method(http, path):
    body = assert_shape(http.post(path, json={}), 405)
    assert body["detail"] == [{"type": "method_not_allowed", "loc": ["method"], "msg": "use GET"}]


def test_a_trailing_slash_is_a_404_not_a_redirect(http):
    """Regression (probe 5): a 307 whose Location was built from the client's Host header."""
    response = http.post(INSURANCE + "/", json=EXAMPLES["insurance"], headers={"Host": "evil.example"})
    assert response.status_code == 404 and "location" not in response.headers


def test_content_length_with_transfer_encoding_is_refused(http):
    body = json.dumps(EXAMPLES["insurance"]).encode()
    headers = {"Content-Type": "application/json", "Content-Length": str(len(body)), "Transfer-Encoding": "chunked"}
    response = http.post(INSURANCE, content=body, headers=headers)
    assert [e["type"] for e in assert_shape(response, 400)["detail"]] == ["invalid_content_length"]


@pytest.mark.parametrize("encoding", ["gzip", "br", "deflate, gzip"])
def test_compressed_request_bodies_are_refused(http, encoding):
    response = http.post(INSURANCE, json=EXAMPLES["insurance"], headers={"Content-Encoding": encoding})
    assert [e["type"] for e in assert_shape(response, 415)["detail"]] == ["unsupported_content_encoding"]


@pytest.mark.parametrize("path", ["/livez", "/metrics", "/no-such-path"])
def test_a_body_sent_to_an_open_or_unlisted_path_is_not_read(http, path):
    """Regression (probe 6): 25 MiB was read and held, unauthenticated, before the 405."""
    read = []

    def chunks():
        for _ in range(100):
            read.append(1)
            yield b"x" * 65536

    response = http.post(path, content=chunks(), headers={"Authorization": f"Bearer {API_TOKEN}"})
    assert response.status_code in (404, 405)
    assert len(read) < 100  # the answer came before the client had sent its body
