"""The request-error family: every 4xx VitalCheck raises is a pydantic ``ValidationError``.

BentoML answers a ``pydantic.ValidationError`` raised anywhere in an API method with
HTTP 400 and the body ``{"error": "<n> validation error(s) for <title>", "detail":
[{"type": ..., "loc": [...], "msg": ...}]}``, built *without* the submitted values.
Raising our own errors through the same type gives clients one error shape for schema
violations (wrong type, missing or unknown field, out-of-range value, unknown category)
and for the checks done inside a method (a non-image, an oversized upload, a CSV with
wrong columns). Messages name the field and the rule, never the value.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic_core import InitErrorDetails, PydanticCustomError, ValidationError


def request_error(
    loc: str | Sequence[str | int], rule: str, message: str, *, title: str = "request"
) -> ValidationError:
    """Build a 400-class error naming a field and the rule it broke.

    Args:
        loc: the field (or path of fields, e.g. ``("records", 3, "age_years")``).
        rule: machine-readable rule name (becomes the error's ``type``), e.g. ``"image_too_large"``.
        message: human-readable rule, e.g. ``"image exceeds 16777216 pixels"``. Must not
            contain the submitted value.
        title: what was being validated (shown in the error summary).

    Returns:
        A ``pydantic_core.ValidationError`` to ``raise``; BentoML turns it into HTTP 400.

    """
    loc_tuple = (loc,) if isinstance(loc, str) else tuple(loc)
    detail = InitErrorDetails(type=PydanticCustomError(rule, message), loc=loc_tuple, input=None)
    return ValidationError.from_exception_data(title, [detail])
