"""vitalcheck.redaction: logged and returned errors keep field names and rules, lose values and unknown keys."""

import logging

from pydantic import BaseModel, ConfigDict, ValidationError

from vitalcheck.redaction import OTHER_PATH, UNKNOWN_FIELD, RedactingFilter, Redactor

SECRET_KEY = "Jane-Doe-1967-03-14"


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid")
    glucose_mg_dl: float
    age_years: int


REDACTOR = Redactor({"glucose_mg_dl", "age_years"}, ["/api/v1/risk/diabetes", "/livez"])


def _validation_error(data) -> ValidationError:
    try:
        Record.model_validate(data)
    except ValidationError as exc:
        return exc
    raise AssertionError("expected a validation error")


def _filtered(name, msg, args=(), exc=None, level=logging.ERROR) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else None
    record = logging.LogRecord(name, level, __file__, 1, msg, args, exc_info)
    assert RedactingFilter(REDACTOR).filter(record)
    return record


def test_validation_error_is_redacted_and_logged_as_a_client_warning():
    error = _validation_error({"glucose_mg_dl": "SECRET-4711", "age_years": "also-secret", SECRET_KEY: 1})
    record = _filtered("bentoml", "Exception on %s [%s]", ("/api/v1/risk/diabetes", "POST"), error)
    text = record.getMessage()
    assert "SECRET" not in text and "also-secret" not in text and SECRET_KEY not in text
    assert "glucose_mg_dl (float_parsing)" in text and "age_years (int_parsing)" in text
    assert f"{UNKNOWN_FIELD} (extra_forbidden)" in text
    assert record.exc_info is None
    assert (record.levelno, record.levelname) == (logging.WARNING, "WARNING")


def test_other_exceptions_keep_their_frames_but_not_their_message():
    try:
        raise RuntimeError(f"Failed to download file from http://x/{SECRET_KEY}")
    except RuntimeError as exc:
        record = _filtered("uvicorn.error", "Exception in ASGI application", exc=exc)
    text = record.getMessage()
    assert SECRET_KEY not in text
    assert "test_other_exceptions_keep_their_frames_but_not_their_message" in text  # the frame
    assert "RuntimeError: (message withheld" in text
    assert record.levelno == logging.ERROR


def test_safe_loc_keeps_field_names_and_indices_only():
    assert REDACTOR.safe_loc(["records", 3, "age_years"]) == ["records", 3, "age_years"]
    assert REDACTOR.safe_loc([SECRET_KEY]) == [UNKNOWN_FIELD]
    assert REDACTOR.safe_loc(['{"glucose_mg_dl": 183}']) == [UNKNOWN_FIELD]
    assert REDACTOR.safe_loc([True]) == [UNKNOWN_FIELD]


def test_unlisted_paths_and_odd_headers_are_not_logged():
    line = f"scheme=http,method=POST,path=/api/v1/{SECRET_KEY},type=application/json; name={SECRET_KEY},length=12"
    record = _filtered("bentoml.access", "%s (%s) (%s) %.3fms", ("127.0.0.1:1", line, "status=404", 1.0), level=20)
    text = record.getMessage()
    assert SECRET_KEY not in text and f"path={OTHER_PATH}" in text
    exception_line = _filtered("bentoml", "Exception on %s [%s]", (f"/{SECRET_KEY}", SECRET_KEY)).getMessage()
    assert SECRET_KEY not in exception_line


def test_listed_paths_and_known_media_types_are_logged_as_they_are():
    line = "scheme=http,method=POST,path=/api/v1/risk/diabetes,type=application/json,length=12"
    record = _filtered("bentoml.access", "%s (%s) (%s) %.3fms", ("127.0.0.1:1", line, "status=200", 1.0), level=20)
    assert line in record.getMessage()


def test_a_path_with_commas_cannot_smuggle_fields_into_the_access_log():
    line = f"scheme=http,method=POST,path=/livez,{SECRET_KEY},type=text/plain,{SECRET_KEY},length=1"
    text = REDACTOR.access_line(line)
    assert SECRET_KEY not in text


def test_ipv6_zone_ids_are_not_logged():
    """Regression: ipaddress accepts '%<zone>' in an IPv6 address, so X-Forwarded-For text reached the log."""
    from vitalcheck.redaction import safe_address

    assert safe_address(f"::1%{SECRET_KEY}:0") == "(other)"
    assert safe_address("::1:0") == "::1:0" and safe_address("127.0.0.1:5000") == "127.0.0.1:5000"


FORGED = "/x\n2026-12-01T22:15:00+0000 [ERROR] [entry_service:vitalcheck:1] FORGED-LINE\r\n"


def test_websocket_access_lines_keep_only_a_listed_path_on_one_line():
    """Regression (probe 3): a WebSocket upgrade logged the decoded path verbatim, newlines included."""
    for event in ("Connection closed", "Client connected", "Connection established", "Client disconnected"):
        msg = f"%s (scheme=%s,path=%s) - {event}"
        text = _filtered("bentoml.access", msg, ("127.0.0.1:5", "ws", FORGED + SECRET_KEY), level=logging.INFO)
        line = text.getMessage()
        assert "\n" not in line and "FORGED" not in line and SECRET_KEY not in line
        assert f"path={OTHER_PATH}" in line and "scheme=ws" in line
    listed = _filtered("bentoml.access", msg, ("127.0.0.1:5", "ws", "/livez"), level=logging.INFO)
    assert "path=/livez" in listed.getMessage()


def test_no_logged_argument_starts_a_new_line():
    record = _filtered("uvicorn.error", "client said %s", (FORGED,), level=logging.INFO)
    assert "\n" not in record.getMessage() and "\r" not in record.getMessage()


def test_multipart_parser_warnings_do_not_quote_the_body():
    """Regression (probe 3): python-multipart logged a body byte ("got 74 at index 2")."""
    record = _filtered("python_multipart.multipart", "Expected boundary character %r, got %r at index %d", (45, 74, 2))
    assert "74" not in record.getMessage() and "withheld" in record.getMessage()


def test_client_framing_errors_are_one_warning_line():
    """Regression (probe 3): more bytes than the Content-Length gave two 90-line ERROR tracebacks."""
    import h11

    try:
        raise h11.LocalProtocolError(f"Too much data for declared Content-Length {SECRET_KEY}")
    except h11.LocalProtocolError as exc:
        record = _filtered("uvicorn.error", "Exception in ASGI application", exc=exc)
    assert (record.levelno, record.exc_info) == (logging.WARNING, None)
    assert "\n" not in record.getMessage() and SECRET_KEY not in record.getMessage()
