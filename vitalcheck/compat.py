"""What the pinned server stack offers no public way to do, in one place, checked against the pins.

**Slow and idle connections** (uvicorn issue 157, "Further timeouts and resource limiting":
``--timeout-request-start`` is still open). uvicorn, which BentoML runs in each worker, has
no deadline for a request's headers: a connection that sends nothing, or one byte of headers
every half second, is kept for ever, and ASGI middleware cannot help because it runs only once
the headers are complete. BentoML builds uvicorn's ``Config`` itself and exposes no protocol
option. :func:`install_connection_deadlines` therefore wraps uvicorn's HTTP protocol classes:

* from a connection's opening, and from the first byte after each answer, the request line
  and headers must be complete within ``VITALCHECK_HEADER_TIMEOUT_S``;
* after an answer, an idle keep-alive connection is closed after
  ``VITALCHECK_KEEPALIVE_TIMEOUT_S``.

Either way the connection is closed without an answer (the client sent no complete request).
The body has its own deadline in :class:`vitalcheck.middleware.RequestGuard`. Limits on the
number of connections are left to the reverse proxy (README, "Security").

**Multipart uploads** (BentoML advisory GHSA-mrmq-3q62-6cc8 / CVE-2025-54381 for the URL
download; no upstream issue for the 500s). BentoML 1.4's ``MultipartSerde`` treats a *text*
form field sent for a file parameter as a URL and downloads it on the server, a request forgery
and a way around the upload limit; a body starlette cannot parse (no boundary, too many parts)
is a 500. :func:`install_upload_guard` refuses both as 400 before BentoML reads the form.

**Error statuses** (no public way; BentoML documents custom exceptions, "Customize error
responses", but not a status with a body). BentoML 1.4's ``api_endpoint_wrapper`` answers a
pydantic ``ValidationError`` raised anywhere in an API call with 400, and a ``BentoMLException``
with its ``error_code`` but the body ``{"error": str(exc)}`` only. So a 413 cannot carry its
entries, and a response that fails its own model (a server bug) is blamed on the client as a
400. :func:`install_error_boundary` answers each :class:`vitalcheck.errors.VitalCheckError` with
its status and body, and a ``ValidationError`` raised after the request was parsed into its
input model with :class:`vitalcheck.errors.InternalError` (500), logged.

**Log redaction** (no upstream issue). BentoML logs a rejected request's exception, with the
submitted values, under internal logger names (:data:`BENTOML_LOGGERS`); logging has no other
hook for them. :func:`install_log_redaction` attaches :class:`vitalcheck.redaction.RedactingFilter`.

**Request metrics labels** (no upstream issue). :func:`install_metrics_path_labels`: BentoML
labels its request metrics with the raw client path.

**Routes and media types** (no public API). :func:`api_routes` reads each API's input model.

Every installer checks :data:`PINNED` first: on another BentoML or uvicorn they refuse to run.
"""

from __future__ import annotations

import asyncio
import logging
from importlib.metadata import version
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vitalcheck.middleware import Route
    from vitalcheck.redaction import Redactor

PINNED = {"bentoml": "1.4.40", "uvicorn": "0.54.0"}
"""The versions the shims here were written and tested against (pyproject.toml pins them)."""


class CompatibilityError(RuntimeError):
    """The installed server stack is not the one the shims were written for."""


def check_pinned_versions() -> None:
    """Refuse to run the shims on another BentoML or uvicorn than :data:`PINNED`.

    Raises:
        CompatibilityError: naming the package, its installed and its pinned version.

    """
    for package, pinned in PINNED.items():
        installed = version(package)
        if installed != pinned:
            raise CompatibilityError(
                f"{package} {installed} is installed but vitalcheck.compat was written for {pinned}: "
                "re-check its shims (see its docstring) before changing the pin"
            )


def _protocol_classes() -> list[Any]:
    # Any: the shims below add attributes to these classes, which their type hints do not declare.
    classes: list[Any] = []
    from uvicorn.protocols.http.h11_impl import H11Protocol

    classes.append(H11Protocol)
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:  # httptools is not installed (it is not a VitalCheck dependency)
        pass
    else:
        classes.append(HttpToolsProtocol)
    return classes


def install_connection_deadlines(header_timeout_s: float, keepalive_timeout_s: float) -> None:
    """Give uvicorn's HTTP connections a header deadline and an idle deadline (idempotent; see module docstring).

    Args:
        header_timeout_s: seconds to complete a request's line and headers.
        keepalive_timeout_s: seconds an idle connection is kept after an answer.

    Raises:
        CompatibilityError: BentoML or uvicorn is not the pinned version.

    """
    check_pinned_versions()
    for cls in _protocol_classes():
        cls.vitalcheck_deadlines = (header_timeout_s, keepalive_timeout_s)
        if getattr(cls, "vitalcheck_wrapped", False):
            continue
        _wrap(cls)
        cls.vitalcheck_wrapped = True


def _wrap(cls: Any) -> None:
    connection_made, data_received = cls.connection_made, cls.data_received
    on_response_complete, connection_lost = cls.on_response_complete, cls.connection_lost

    def arm(self, kind: str) -> None:
        disarm(self)
        header_timeout, keepalive_timeout = self.vitalcheck_deadlines
        delay = header_timeout if kind == "headers" else keepalive_timeout
        self.vitalcheck_deadline = (kind, asyncio.get_running_loop().call_later(delay, expire, self))

    def disarm(self) -> None:
        deadline = getattr(self, "vitalcheck_deadline", None)
        if deadline is not None:
            deadline[1].cancel()
            self.vitalcheck_deadline = None

    def expire(self) -> None:
        self.vitalcheck_deadline = None
        if not self.transport.is_closing():
            self.transport.close()

    def in_request(self) -> bool:
        cycle = self.cycle
        return cycle is not None and not cycle.response_complete

    def wrapped_connection_made(self, transport):
        connection_made(self, transport)
        arm(self, "headers")

    def wrapped_data_received(self, data):
        data_received(self, data)
        deadline = getattr(self, "vitalcheck_deadline", None)
        if in_request(self) or self.transport.is_closing():
            disarm(self)
        elif deadline is None or deadline[0] == "idle":
            arm(self, "headers")  # the first byte of the next request starts its header deadline

    def wrapped_on_response_complete(self):
        on_response_complete(self)
        if not self.transport.is_closing() and not in_request(self):
            arm(self, "idle")

    def wrapped_connection_lost(self, exc):
        disarm(self)
        connection_lost(self, exc)

    cls.connection_made = wrapped_connection_made
    cls.data_received = wrapped_data_received
    cls.on_response_complete = wrapped_on_response_complete
    cls.connection_lost = wrapped_connection_lost


def api_routes(service_cls, settings) -> tuple[dict[str, Route], frozenset[str]]:
    """Each API route's request rule (media type, body limit, JSON containers), and every request field name.

    BentoML exposes a service's APIs (``service.apis``) but not which media type each reads;
    the input model's ``multipart_fields`` (BentoML's SDK attribute) says which take uploads.
    Uploads may be ``max_request_bytes`` long, batches (a ``records`` field)
    ``max_batch_request_bytes``, any other JSON request ``max_record_request_bytes``.

    A JSON body may hold at most :data:`~vitalcheck.middleware.JSON_CONTAINER_SLACK` objects
    and arrays beyond what its schema needs: one object per batch record (no request schema has
    another list or a nested object).

    Returns:
        (route → its :class:`~vitalcheck.middleware.Route`, the set of property names in every
        input schema).

    """
    from vitalcheck.middleware import JSON, JSON_CONTAINER_SLACK, MULTIPART, NO_BODY, Route
    from vitalcheck.redaction import schema_field_names

    routes: dict[str, Route] = {}
    names: set[str] = set()
    for api in service_cls.apis.values():
        spec = api.input_spec
        if getattr(spec, "multipart_fields", None):
            routes[api.route] = Route(MULTIPART, settings.max_request_bytes, 0)
        elif "records" in spec.model_fields:
            limit = min(settings.max_batch_request_bytes, settings.max_request_bytes)
            routes[api.route] = Route(JSON, limit, settings.max_batch_records + JSON_CONTAINER_SLACK)
        else:
            media = JSON if spec.model_fields else NO_BODY
            limit = min(settings.max_record_request_bytes, settings.max_request_bytes)
            routes[api.route] = Route(media, limit, JSON_CONTAINER_SLACK)
        names |= schema_field_names(spec.model_json_schema())
    return routes, frozenset(names)


def install_metrics_path_labels(paths) -> None:
    """Label BentoML's request metrics with a listed path or ``(unlisted path)``, never a client's path.

    BentoML's ``RunnerTrafficMetricsMiddleware`` (the outermost middleware; VitalCheck's guard runs
    inside it) labels ``bentoml_service_request_*`` with ``scope["path"]`` as sent. A client
    could then write any text into ``/metrics``, which is open, and add series without bound
    (each new path adds about 20), growing every worker's memory and every scrape's cost. The
    wrapper hands the middleware a scope whose path is the listed path or ``(unlisted path)``
    and restores the real path for the application inside it.

    Args:
        paths: the routes and open endpoints (labelled as they are).

    Raises:
        CompatibilityError: BentoML or uvicorn is not the pinned version.

    """
    from bentoml._internal.server.http.instruments import RunnerTrafficMetricsMiddleware

    from vitalcheck.redaction import OTHER_PATH

    check_pinned_versions()
    cls: Any = RunnerTrafficMetricsMiddleware  # Any: the shim adds attributes the class does not declare
    cls.vitalcheck_paths = frozenset(paths)
    if getattr(cls, "vitalcheck_wrapped", False):
        return
    original = cls.__call__

    async def __call__(self, scope, receive, send):
        if not isinstance(self.app, _RestoredPath):
            self.app = _RestoredPath(self.app)
        if scope.get("type") == "websocket":
            # VitalCheck serves no WebSocket (the guard closes them); BentoML's websocket gauges
            # were labelled with the raw path and went negative (probe 4): not counted at all.
            return await self.app(scope, receive, send)
        if scope.get("type") == "http" and scope.get("path") not in self.vitalcheck_paths:
            scope = {**scope, "path": OTHER_PATH, _REAL_PATH: scope.get("path")}
        return await original(self, scope, receive, send)

    cls.__call__ = __call__
    cls.vitalcheck_wrapped = True


_REAL_PATH = "vitalcheck.real_path"


class _RestoredPath:
    """Give the application inside the metrics middleware the path the client sent."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if _REAL_PATH in scope:
            scope = dict(scope)
            scope["path"] = scope.pop(_REAL_PATH)
        return await self.app(scope, receive, send)


NOT_A_FILE = "must be an uploaded file (a multipart part with a filename), not a text field"


def install_upload_guard() -> None:
    """Refuse text fields for file parameters and malformed multipart bodies as 400 (idempotent; see module docstring).

    Raises:
        CompatibilityError: BentoML or uvicorn is not the pinned version.

    """
    check_pinned_versions()
    from _bentoml_impl.serde import MultipartSerde
    from starlette.datastructures import UploadFile
    from starlette.exceptions import HTTPException

    from vitalcheck.errors import InvalidInput

    if getattr(MultipartSerde.parse_request, "vitalcheck_guard", False):
        return
    original = MultipartSerde.parse_request

    async def parse_request(self, request, cls):
        try:
            form = await request.form()  # parsed once: starlette caches it for BentoML's own call
        except HTTPException:
            raise InvalidInput.at("body", "malformed_multipart", "not a valid multipart/form-data body") from None
        fields = tuple(getattr(cls, "multipart_fields", ()))
        if any(key not in fields for key in form.keys()):
            # BentoML would json.loads every other part (probe 5: 500s, +540 MB for a 19 MiB part).
            # The part's name is submitted data: not repeated.
            message = f"only the documented part(s) {', '.join(fields)} may be sent"
            raise InvalidInput.at("body", "unknown_part", message)
        for name in fields:
            values = form.getlist(name)
            if any(not isinstance(value, UploadFile) for value in values):
                raise InvalidInput.at(name, "not_a_file", NOT_A_FILE)
            if len(values) > 1:
                raise InvalidInput.at(name, "repeated_part", "send this part once")
        return await original(self, request, cls)

    async def ensure_file(obj):
        if isinstance(obj, UploadFile):
            return obj
        raise InvalidInput.at("body", "not_a_file", NOT_A_FILE)

    parse_request.vitalcheck_guard = True  # type: ignore[attr-defined]  # a marker on our own wrapper
    MultipartSerde.parse_request = parse_request
    MultipartSerde.ensure_file = staticmethod(ensure_file)


INPUT_PARSED = "vitalcheck_input_parsed"
"""``request.state`` attribute set once BentoML has parsed the request into its API's input model."""


def install_error_boundary() -> None:
    """Answer every error an API call raises with its family's status and body (idempotent; see module docstring).

    Wraps BentoML's ``ServiceAppFactory.api_endpoint`` (parse the request into the input model,
    call the method, serialise its answer), inside BentoML's own exception handler:

    * a :class:`~vitalcheck.errors.VitalCheckError` (our input checks, an upload over its limit,
      the multipart guard) is answered with its status and body, and logged as BentoML logs a
      refusal (the rejection log line of :class:`vitalcheck.redaction.RedactingFilter`);
    * a pydantic ``ValidationError`` raised while the request is parsed is left to BentoML (400,
      the schema violation's entries), as before;
    * any other ``ValidationError`` (the method's answer failing its response model, say a NaN
      probability) is a server bug: :class:`~vitalcheck.errors.InternalError`, 500, logged at
      ERROR with its traceback frames, the API, the model and the error types (never a value).

    Raises:
        CompatibilityError: BentoML or uvicorn is not the pinned version.

    """
    check_pinned_versions()
    from _bentoml_impl.server.app import ServiceAppFactory
    from _bentoml_sdk.io_models import IOMixin
    from bentoml._internal.server.http_app import log_exception
    from pydantic import ValidationError
    from starlette.responses import Response

    from vitalcheck.errors import InternalError, VitalCheckError

    if getattr(ServiceAppFactory.api_endpoint, "vitalcheck_boundary", False):
        return
    parse, endpoint = IOMixin.from_http_request.__func__, ServiceAppFactory.api_endpoint

    async def from_http_request(cls, request, serde):
        parsed = await parse(cls, request, serde)
        setattr(request.state, INPUT_PARSED, True)
        return parsed

    async def api_endpoint(self, name, request):
        try:
            return await endpoint(self, name, request)
        except VitalCheckError as exc:
            error = exc
            log_exception(request)
        except ValidationError as exc:
            if not getattr(request.state, INPUT_PARSED, False):
                raise  # the request broke its input model: BentoML answers 400
            error = InternalError(f"server-side validation failure in API {name}")
            types = sorted(
                {e["type"] for e in exc.errors(include_url=False, include_context=False, include_input=False)}
            )
            logging.getLogger("vitalcheck").error(
                "server-side validation failure in API %s, answered 500: %d error(s) validating %s (%s)",
                name,
                exc.error_count(),
                exc.title,
                ", ".join(types),
                exc_info=(InternalError, error, exc.__traceback__),
            )
        status, headers, body = error.answer()
        extra = {k.decode("latin-1"): v.decode("latin-1") for k, v in headers if k not in _SET_BY_RESPONSE}
        return Response(body, status_code=status, headers=extra, media_type="application/json")

    marked: Any = api_endpoint
    marked.vitalcheck_boundary = True
    IOMixin.from_http_request = classmethod(from_http_request)  # every API's input model derives from it
    ServiceAppFactory.api_endpoint = api_endpoint


_SET_BY_RESPONSE = (b"content-type", b"content-length")


BENTOML_LOGGERS = (
    "bentoml",
    "bentoml.access",
    "bentoml._internal.server.http_app",
    "_bentoml_impl.server.app",
    "uvicorn",
    "uvicorn.error",
    "python_multipart.multipart",
    "vitalcheck",
)
"""Loggers whose records may carry a request's path, headers or an exception from parsing it."""


def install_log_redaction(redactor: Redactor | None = None) -> None:
    """Attach one :class:`RedactingFilter` to the :data:`BENTOML_LOGGERS` and the root handlers (idempotent).

    Installing again replaces the redactor of the filters already attached (the service
    installs it at import with the known routes and field names).
    """
    from vitalcheck.redaction import RedactingFilter, Redactor

    check_pinned_versions()
    redactor = redactor or Redactor()
    targets: list[logging.Filterer] = [logging.getLogger(name) for name in BENTOML_LOGGERS]
    targets += logging.getLogger().handlers
    for target in targets:
        existing = [f for f in target.filters if isinstance(f, RedactingFilter)]
        if existing:
            for f in existing:
                f.redactor = redactor
        else:
            target.addFilter(RedactingFilter(redactor))
