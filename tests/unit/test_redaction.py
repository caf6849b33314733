"""vitalcheck.redaction: a logged validation error keeps its locations and rules, loses its values."""

import logging

from pydantic import BaseModel, ValidationError

from vitalcheck.redaction import RedactValidationErrors


class Record(BaseModel):
    glucose_mg_dl: float
    age_years: int


def test_validation_error_is_redacted_and_logged_as_a_client_warning():
    try:
        Record.model_validate({"glucose_mg_dl": "SECRET-4711", "age_years": "also-secret"})
    except ValidationError as exc:
        error = exc
    record = logging.LogRecord("bentoml", logging.ERROR, __file__, 1, "Exception on /api", (), (None, error, None))
    assert RedactValidationErrors().filter(record)
    text = record.getMessage()
    assert "SECRET" not in text and "also-secret" not in text
    assert "glucose_mg_dl (float_parsing)" in text and "age_years (int_parsing)" in text
    assert record.exc_info is None
    assert (record.levelno, record.levelname) == (logging.WARNING, "WARNING")


def test_other_errors_are_left_alone():
    record = logging.LogRecord("bentoml", logging.ERROR, __file__, 1, "boom", (), (None, RuntimeError("x"), None))
    assert RedactValidationErrors().filter(record)
    assert (record.levelno, record.getMessage()) == (logging.ERROR, "boom")
    assert record.exc_info is not None
