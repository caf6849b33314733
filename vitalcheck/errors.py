"""Every error class of VitalCheck: the HTTP error family, the domain errors it translates, the start-up error.

**The HTTP error family.** Every answer that is not a success is one :class:`VitalCheckError`:
its class fixes the HTTP status, its entries say what was refused (a rule and where, never
a submitted value), and :meth:`VitalCheckError.answer` is the one place that writes the body::

    {"error": "<summary>", "detail": [{"type": "<rule>", "loc": [...], "msg": "<the rule, in words>"}]}

* 400 :class:`InvalidInput`: the body breaks its input model (BentoML's parse) or one of our own
  input checks (an uploaded file or image, a body sent to a route without input, Content-Length);
* 401 :class:`Unauthorized`: missing, malformed, wrong or repeated bearer token (guard);
* 405 :class:`MethodNotAllowed`: an API route called with another method than POST (guard);
* 408 :class:`RequestTimeout`: a body not received within VITALCHECK_BODY_TIMEOUT_S (guard);
* 413 :class:`PayloadTooLarge`: a body over its route's limit (guard), an uploaded file over
  VITALCHECK_MAX_UPLOAD_BYTES (API);
* 415 :class:`UnsupportedMediaType`: a body of another media type than the route's (guard);
* 431 :class:`HeadersTooLarge`: headers over VITALCHECK_MAX_HEADER_BYTES (guard);
* 499 :class:`ClientClosedRequest`: recorded, never sent: the client hung up mid-body (guard);
* 500 :class:`InternalError`: a server-side failure, e.g. an answer that fails its own response
  model (a NaN probability); a fixed body, logged, counted in ``/metrics``;
* 503 :class:`NotReady`: the service is not ready (``/readyz`` before it is).

Only input validation may be a 400: a ``ValidationError`` raised anywhere after BentoML has
parsed the request into its input model is a server bug, answered as :class:`InternalError`.

The 4xx classes derive from :class:`ClientError`, which is also a pydantic ``ValidationError``
whose ``errors()`` are the entries (built with :meth:`ClientError.at` or :meth:`ClientError.of`): the
rejection log (:class:`vitalcheck.redaction.RedactingFilter`), BentoML and callers of
:class:`vitalcheck.api.VitalCheckAPI` read them as they read a schema violation. How one raised
inside an API method becomes its answer: :func:`vitalcheck.compat.install_error_boundary`; the
guard (:mod:`vitalcheck.middleware`) builds its own refusals from the family and rewrites every
error answer of the service into this shape.

**Domain errors** (no HTTP status; shared with training and batch scoring): :class:`ImageRejected`,
:class:`MissingColumnError`, :class:`ColumnFormatError`, :class:`SourceTooLarge`.
:class:`vitalcheck.api.VitalCheckAPI` translates them into :class:`InvalidInput`, in one place each.

**Start-up error**: :class:`ArtifactCheckError` (the service refuses to start).

This module imports only the standard library and pydantic-core (training and Spark executors
import it through :mod:`vitalcheck.cards` and :mod:`vitalcheck.sources`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from http import HTTPStatus
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from pydantic_core import InitErrorDetails, PydanticCustomError, ValidationError

Headers = tuple[tuple[bytes, bytes], ...]
E = TypeVar("E", bound="ClientError")


class VitalCheckError(Exception):
    """An error with an HTTP status and entries ``{"type", "loc", "msg"}``; never a submitted value.

    Attributes:
        status: the HTTP status (class attribute).
        headers: extra response headers (besides Content-Type and Content-Length).

    """

    status: ClassVar[int] = HTTPStatus.INTERNAL_SERVER_ERROR
    headers: Headers = ()

    @property
    def summary(self) -> str:
        """The body's ``error`` string."""
        raise NotImplementedError

    def entries(self) -> list[dict[str, Any]]:
        """The body's ``detail``: one ``{"type", "loc", "msg"}`` per refusal."""
        raise NotImplementedError

    def body(self) -> dict[str, Any]:
        """``{"error": summary, "detail": entries}``."""
        return {"error": self.summary, "detail": self.entries()}

    def answer(self) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """The HTTP answer: (status, headers, JSON body), as the ASGI guard sends it."""
        body = json.dumps(self.body()).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        return int(self.status), [*headers, *self.headers], body


class ClientError(VitalCheckError, ValidationError):
    """A 4xx: the request was refused. A pydantic ``ValidationError`` whose ``errors()`` are the entries.

    Build one with :meth:`at` (one entry) or :meth:`of` (several); the summary is pydantic's
    ``"<n> validation error for <title>"`` (what BentoML answers for a schema violation) unless
    ``summary`` is given.
    """

    status: ClassVar[int] = HTTPStatus.BAD_REQUEST
    default_headers: ClassVar[Headers] = ()
    _summary: str | None = None

    @classmethod
    def at(
        cls: type[E],
        loc: str | Sequence[str | int],
        rule: str,
        message: str,
        *,
        title: str = "request",
        summary: str | None = None,
        headers: Headers | None = None,
    ) -> E:
        """One refusal: ``rule`` (the entry's ``type``) broken at ``loc``, ``message`` saying it in words.

        Args:
            loc: the field, or a path of fields, e.g. ``("records", 3, "age_years")``.
            rule: machine-readable rule, e.g. ``"too_many_rows"``.
            message: the rule in words, e.g. ``"more than 10000 rows"``; never the submitted value.
            title: what was validated (in the default summary).
            summary: the body's ``error`` string instead of ``"1 validation error for <title>"``.
            headers: extra response headers instead of the class's.

        """
        return cls.of([{"type": rule, "loc": loc, "msg": message}], title=title, summary=summary, headers=headers)

    @classmethod
    def of(
        cls: type[E],
        entries: Iterable[Mapping[str, Any]],
        *,
        title: str = "request",
        summary: str | None = None,
        headers: Headers | None = None,
    ) -> E:
        """Several refusals, each a mapping with ``type``, ``loc`` and ``msg`` (other keys, e.g. ``input``, dropped)."""
        details = [
            InitErrorDetails(
                type=PydanticCustomError(str(e["type"]), str(e["msg"])),
                loc=(e["loc"],) if isinstance(e["loc"], str) else tuple(e["loc"]),
                input=None,
            )
            for e in entries
        ]
        error = cls.from_exception_data(title, details)
        error._summary = summary
        error.headers = cls.default_headers if headers is None else headers
        return error

    @property
    def summary(self) -> str:
        """The body's ``error`` string."""
        return self._summary or f"{self.error_count()} validation error for {self.title}"

    def entries(self) -> list[dict[str, Any]]:
        """The body's ``detail``: ``{"type", "loc", "msg"}`` per refusal."""
        return [
            {"type": e["type"], "loc": list(e["loc"]), "msg": e["msg"]}
            for e in self.errors(include_url=False, include_context=False, include_input=False)
        ]


class InvalidInput(ClientError):
    """400: the request breaks a documented rule (a field's range, a file's format, an image's size in pixels)."""

    status = HTTPStatus.BAD_REQUEST


class Unauthorized(ClientError):
    """401: missing, malformed, wrong or repeated bearer token; the answer says ``WWW-Authenticate: Bearer``."""

    status = HTTPStatus.UNAUTHORIZED
    default_headers = ((b"www-authenticate", b'Bearer realm="vitalcheck"'),)


class NotFound(ClientError):
    """404: a path that is no route or open endpoint (asked with the token; without it, 401)."""

    status = HTTPStatus.NOT_FOUND


class MethodNotAllowed(ClientError):
    """405: an API route called with another method than POST; the answer says ``Allow: POST``."""

    status = HTTPStatus.METHOD_NOT_ALLOWED
    default_headers = ((b"allow", b"POST"),)


class RequestTimeout(ClientError):
    """408: the body did not arrive in time; the connection is closed."""

    status = HTTPStatus.REQUEST_TIMEOUT
    default_headers = ((b"connection", b"close"),)


class PayloadTooLarge(ClientError):
    """413: a request body over its route's limit, or an uploaded file over VITALCHECK_MAX_UPLOAD_BYTES."""

    status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE


class UnsupportedMediaType(ClientError):
    """415: a body sent with another Content-Type than the route's (``application/json`` or ``multipart/form-data``)."""

    status = HTTPStatus.UNSUPPORTED_MEDIA_TYPE


class HeadersTooLarge(ClientError):
    """431: request headers over VITALCHECK_MAX_HEADER_BYTES in total."""

    status = HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE


class ClientClosedRequest(ClientError):
    """499 (nginx's convention): the client hung up before its body was complete; recorded, never sent."""

    status = 499


class ServerError(VitalCheckError):
    """A 5xx: the server failed. Its body is fixed by its class and says nothing of the request or the failure."""

    status: ClassVar[int] = HTTPStatus.INTERNAL_SERVER_ERROR
    rule: ClassVar[str] = "internal_error"
    error: ClassVar[str] = "internal error"
    message: ClassVar[str] = "the server failed to answer this request; the failure is logged"

    def __init__(self, cause: str = "") -> None:
        """``cause``: what failed, for the log only (never sent; no submitted value)."""
        super().__init__(cause or self.message)
        self.cause = cause

    @property
    def summary(self) -> str:
        """The body's ``error`` string (fixed by the class)."""
        return self.error

    def entries(self) -> list[dict[str, Any]]:
        """One entry, fixed by the class, located nowhere (``loc: []``)."""
        return [{"type": self.rule, "loc": [], "msg": self.message}]


class InternalError(ServerError):
    """500: a server-side failure, a response that fails its model included; logged with its traceback."""

    status = HTTPStatus.INTERNAL_SERVER_ERROR


class NotReady(ServerError):
    """503: the service is not ready to answer (its models are not loaded yet); retry later."""

    status = HTTPStatus.SERVICE_UNAVAILABLE
    rule = "not_ready"
    error = "not ready"
    message = "the service is not ready yet: retry later"


def server_error_for(status: int) -> ServerError:
    """The family's answer to a 5xx ``status``: :class:`NotReady` for 503, :class:`InternalError` otherwise."""
    return NotReady() if status == HTTPStatus.SERVICE_UNAVAILABLE else InternalError()


def request_error(loc: str | Sequence[str | int], rule: str, message: str, *, title: str = "request") -> InvalidInput:
    """An :class:`InvalidInput` (400) naming a field and the rule it broke (same as :meth:`ClientError.at`)."""
    return InvalidInput.at(loc, rule, message, title=title)


# ---- domain errors: translated into InvalidInput by vitalcheck.api ---------------------------------

RULE_IMAGE_REJECTED = "image_rejected"
"""Error type of an upload that is too large, not a JPEG/PNG, or undecodable."""

RULE_NOT_MRI_SLICE = "not_an_mri_slice"
"""Error type of a decodable image that fails the validity screen (:func:`vitalcheck.imaging.check_slice`)."""


class ImageRejected(ValueError):
    """An uploaded image was refused; ``rule`` says which rule it broke.

    The message is ``"image rejected: <rule>"`` and never contains the image bytes or any
    value computed from the image. The API answers it as :class:`InvalidInput` at ``loc: ["image"]``.

    Attributes:
        rule: short, client-safe description of the broken rule, e.g.
            ``"exceeds 20971520 bytes"``, ``"not a decodable JPEG or PNG image"`` or
            ``"not an MRI slice: noise-like texture (...)"``.
        kind: machine-readable error type: :data:`RULE_IMAGE_REJECTED` (size, format,
            decoding) or :data:`RULE_NOT_MRI_SLICE` (the validity screen).

    """

    def __init__(self, rule: str, kind: str = RULE_IMAGE_REJECTED) -> None:
        super().__init__(f"image rejected: {rule}")
        self.rule = rule
        self.kind = kind


class MissingColumnError(ValueError):
    """A required source column is absent; ``column`` names it (as in the source format)."""

    def __init__(self, path: str | Path, column: str) -> None:
        super().__init__(f"{path}: column {column!r} is missing")
        self.column = column


class ColumnFormatError(ValueError):
    """A source column holds a value that cannot be read as its documented type; ``column`` names it."""

    def __init__(self, path: str | Path, column: str, kind: str) -> None:
        super().__init__(f"{path}: column {column!r} holds a value that is not a valid {kind}")
        self.column = column
        self.kind = kind


class SourceTooLarge(ValueError):
    """An untrusted file breaks one of its :class:`vitalcheck.sources.UploadLimits`; ``rule`` names which.

    ``too_many_rows``, ``too_many_bytes``, ``too_many_row_groups``, ``cell_too_long``, or
    ``unsupported_column_type`` (a nested Parquet column: list, struct, map, union).
    """

    def __init__(self, rule: str) -> None:
        super().__init__(rule)
        self.rule = rule


# ---- start-up error ---------------------------------------------------------------------------------


class ArtifactCheckError(RuntimeError):
    """An artifact or its card is missing, unreadable or does not match its checksum (the service refuses to start).

    ``failures`` holds one message per failed artifact or table when several were checked
    together (:meth:`vitalcheck.registry.Registry.load`); else the one message.
    """

    def __init__(self, message: str, failures: list[str] | None = None) -> None:
        super().__init__(message)
        self.failures = failures if failures is not None else [message]
