"""Keep submitted values out of the logs.

When a request fails validation, BentoML logs the exception with its traceback; a pydantic
``ValidationError``'s text carries ``input_value=`` (the submitted values, or for a missing
field the whole submitted object). For health data that is a leak. The filter installed
here rewrites such records to name only the error count, the field locations and the rule
types, and drops the traceback. Such a record is a client error (the request got HTTP 400),
so it is logged at WARNING, not ERROR, and does not trip error-log alerts. VitalCheck itself
never logs request bodies.
"""

from __future__ import annotations

import logging

from pydantic import ValidationError

BENTOML_LOGGERS = ("bentoml", "bentoml._internal.server.http_app", "_bentoml_impl.server.app")
"""Loggers that may log a failed request's exception."""


class RedactValidationErrors(logging.Filter):
    """Replace a logged ``ValidationError`` by its locations and rule types, without values, at WARNING."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record in place when it carries a ValidationError; always keep the record."""
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, ValidationError):
            where = ", ".join(
                f"{'.'.join(str(p) for p in e['loc'])} ({e['type']})"
                for e in exc.errors(include_input=False, include_context=False, include_url=False)
            )
            record.msg = f"{record.getMessage()}: request rejected, {exc.error_count()} validation error(s): {where}"
            record.args = ()
            record.exc_info = None
            record.exc_text = None
            if record.levelno > logging.WARNING:
                record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def install_log_redaction() -> None:
    """Attach :class:`RedactValidationErrors` to BentoML's loggers and their handlers (idempotent)."""
    redactor = RedactValidationErrors()
    for name in BENTOML_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactValidationErrors) for f in logger.filters):
            logger.addFilter(redactor)
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactValidationErrors) for f in handler.filters):
            handler.addFilter(redactor)
