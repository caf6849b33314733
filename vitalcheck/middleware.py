"""The ASGI guard in front of every VitalCheck endpoint: authentication, media types, limits, redaction.

Every decision is taken on the path the router matches (``scope["path"]``: percent-decoded by
the server, so ``/%61pi/v1/models`` and ``/api%2Fv1/models`` are ``/api/v1/models``), and
access is denied by default: only :data:`OPEN_PATHS`, the documentation page and its
same-origin assets (``GET``/``HEAD`` under ``/static_content/``) are served without the
token; everything else needs ``Authorization: Bearer <token>`` when ``VITALCHECK_API_TOKEN``
is set. The guard answers before the body is parsed, each refusal a member of the error family
(:mod:`vitalcheck.errors`, which writes the one body ``{"error": ..., "detail": [{"type", "loc", "msg"}]}``):

* 401 :class:`~vitalcheck.errors.Unauthorized`: missing, malformed, wrong or repeated
  ``Authorization`` header (the scheme is case-insensitive, RFC 7235; the token is compared in
  constant time);
* 431 :class:`~vitalcheck.errors.HeadersTooLarge`: request headers larger than
  ``VITALCHECK_MAX_HEADER_BYTES`` in total;
* 405 :class:`~vitalcheck.errors.MethodNotAllowed`: an API route called with another method than POST;
* 415 :class:`~vitalcheck.errors.UnsupportedMediaType`: a body sent to a JSON route without
  ``Content-Type: application/json`` (form bodies, text/plain and BentoML's pickle type
  included), or to an upload route without ``multipart/form-data``;
* 413 :class:`~vitalcheck.errors.PayloadTooLarge`: a declared or streamed body over the route's limit;
* 408 :class:`~vitalcheck.errors.RequestTimeout`: a body not received within ``VITALCHECK_BODY_TIMEOUT_S``;
* 400 :class:`~vitalcheck.errors.InvalidInput`: a body sent to a route without input, a
  repeated or non-decimal Content-Length;
* 499 :class:`~vitalcheck.errors.ClientClosedRequest` (recorded, never sent): the client hung up
  before its body was complete. No handler runs, so it is no server error in the log, the
  access log or ``/metrics``.

The body is read here, once, up to the limit, and replayed to BentoML. Every error the service
answers comes out in the same shape: a 4xx is rewritten so that ``loc`` holds only documented
field names (:meth:`vitalcheck.redaction.Redactor.safe_loc`) and the body is an object; a 5xx
body is replaced by the family's fixed one (:class:`~vitalcheck.errors.InternalError`, or
:class:`~vitalcheck.errors.NotReady` for a 503), which says nothing of the request or the
failure. (How an error raised inside an API method gets its status:
:func:`vitalcheck.compat.install_error_boundary`, installed by ``service.py``.) The guard also
serves ``GET /`` (:mod:`vitalcheck.docs_page`) and ``GET /docs.json`` corrected by
:func:`vitalcheck.openapi.correct_openapi`.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import Mapping
from typing import Any, NamedTuple

from vitalcheck.docs_page import DOCS_PAGE_PATHS, index_response
from vitalcheck.errors import (
    ClientClosedRequest,
    ClientError,
    HeadersTooLarge,
    InvalidInput,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    RequestTimeout,
    Unauthorized,
    UnsupportedMediaType,
    server_error_for,
)
from vitalcheck.redaction import Redactor
from vitalcheck.settings import Settings

logger = logging.getLogger("vitalcheck")

OPEN_PATHS = frozenset({"/livez", "/readyz", "/healthz", "/metrics", "/docs.json", "/schema.json"})
"""Served without the token (health, metrics, the OpenAPI document and the schema BentoML's clients read
when they connect, which describes no more than the OpenAPI document); the docs page is added to them."""
STATIC_PREFIX = "/static_content/"
"""BentoML's bundled Swagger UI assets, used by the docs page (GET/HEAD only)."""


class Route(NamedTuple):
    """What a route accepts: its body's media type, most bytes and most JSON containers."""

    media: str
    """:data:`JSON`, :data:`MULTIPART` or :data:`NO_BODY` (a route without input)."""
    max_bytes: int
    """The largest body, in bytes (413 above it)."""
    max_json_containers: int
    """Most ``{`` plus ``[`` a JSON body may hold (400 above it): see :data:`JSON_CONTAINER_SLACK`."""


JSON_CONTAINER_SLACK = 16
"""JSON objects and arrays a body may hold beyond one object per batch record.

No request schema has a list other than a batch's ``records`` or a nested object, so a valid
body has one object, or a batch of one object per record. A 15 MB body of 10,000 records of
arrays nested 190 deep (7.6 million lists) cost 5 s of CPU and 1 GB to refuse, and blocked the
worker's event loop (probe 3); counting the brackets costs milliseconds. A bracket inside a
string counts too: no documented string field holds one.
"""

CACHED_DOCUMENTS = frozenset({"/docs.json", "/schema.json"})
"""Open documents built once per worker (see :meth:`RequestGuard._document`)."""

JSON = "application/json"
MULTIPART = "multipart/form-data"
NO_BODY = ""
"""Media of a route without input: ``application/json`` or no Content-Type at all."""
MAX_ERROR_ENTRIES = 100
"""Most ``detail`` entries of an error body; a last ``too_many_errors`` entry counts the rest."""
CLIENT_CLOSED_REQUEST = ClientClosedRequest.status
"""Status recorded (nginx's convention) when the client hangs up before its request body is complete."""


def _refusal(kind: type[ClientError], loc: list[str], rule: str, msg: str) -> tuple[int, list, bytes]:
    """The guard's answer ``kind`` (its status and headers): one entry, ``msg`` also as the summary."""
    return kind.at(loc, rule, msg, summary=msg).answer()


def _not_found() -> tuple[int, list, bytes]:
    """404 for a path that is no route, about the path (also what BentoML's own 404 becomes)."""
    return NotFound.at(["path"], "not_found", "no such endpoint", summary="not found").answer()


def _get_only() -> tuple[int, list, bytes]:
    """405 for another method than GET/HEAD on an open endpoint (also what starlette's own 405 becomes)."""
    refused = MethodNotAllowed.at(["method"], "method_not_allowed", "use GET", summary="method not allowed")
    status, headers, body = refused.answer()
    return status, [(k, b"GET, HEAD" if k == b"allow" else v) for k, v in headers], body


class RequestGuard:
    """Refuse, before the service reads it, any request that is unauthenticated, malformed or too large.

    Args:
        app: the wrapped ASGI application.
        routes: API route → (the media type its body must have: :data:`JSON`, :data:`MULTIPART`
            or :data:`NO_BODY` for a route without input; the largest body it takes, in bytes).
        field_names: every documented request field name (what an error's ``loc`` may repeat).
        settings: the token, the request limits and the body deadline.

    """

    def __init__(self, app, routes: Mapping[str, Route], field_names: frozenset[str], settings: Settings) -> None:
        self.app = app
        self.token = settings.api_token.get_secret_value().encode() if settings.api_token else None
        self.max_bytes = settings.max_request_bytes
        self.max_header_bytes = settings.max_header_bytes
        self.body_timeout = settings.body_timeout_s
        self.routes = dict(routes)
        self.open_paths = self.open_path_set()
        self.redactor = Redactor(field_names, [*self.routes, *self.open_paths])
        self._documents: dict[str, tuple[list[tuple[bytes, bytes]], bytes]] = {}

    @staticmethod
    def open_path_set() -> frozenset[str]:
        """The exact paths served without the token (besides GET/HEAD of the docs page's assets)."""
        return OPEN_PATHS | DOCS_PAGE_PATHS

    async def __call__(self, scope, receive, send):
        """Check one HTTP request; refuse WebSocket connections; pass lifespan through."""
        if scope["type"] == "websocket":
            # VitalCheck serves no WebSocket: close before accepting (the client gets 403).
            return await send({"type": "websocket.close", "code": 1008})
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        refusal = self._refusal(scope)
        if refusal is not None:
            return await _send(send, *refusal)
        path, method = scope.get("path", ""), scope.get("method", "")
        if method in ("GET", "HEAD") and path in DOCS_PAGE_PATHS:
            status, headers, page = index_response()
            return await _send(send, status, headers, page if method == "GET" else b"")
        if method in ("GET", "HEAD") and path in CACHED_DOCUMENTS:
            return await self._document(path, scope, receive, send)
        if path != "/" and path.endswith("/"):
            # Not starlette's 307 to the slash-less path, whose Location is built from the Host header.
            return await _send(send, *_not_found())
        if path not in self.routes:
            # Open endpoints and unlisted paths take no body: answered without reading one
            # (probe 6: 25 MiB held per connection, unauthenticated, before a 405).
            if method not in ("GET", "HEAD"):
                refusal = _get_only() if path in self.open_paths or path.startswith(STATIC_PREFIX) else _not_found()
                return await _send(send, *refusal)
            return await self.app(scope, receive, _RedactedErrors(send, self.redactor))
        media, max_bytes, max_containers = self.routes[path]
        body = await self._read_body(receive, send, max_bytes)
        if body is None:
            return None
        if media == JSON and body.count(b"{") + body.count(b"[") > max_containers:
            message = f"more than {max_containers} JSON objects and arrays: records are flat objects"
            return await _send(send, *_refusal(InvalidInput, ["body"], "too_many_json_containers", message))
        if media == NO_BODY and body.strip() not in (b"", b"{}"):
            refusal = _refusal(InvalidInput, ["body"], "no_input", "this endpoint takes no input: send {}")
            return await _send(send, *refusal)
        if media == JSON and body and not any(k.lower() == b"content-type" for k, _ in scope.get("headers") or []):
            return await _send(send, *_unsupported(JSON))
        if media in (JSON, MULTIPART):
            scope = _canonical_content_type(scope)
        replay = [{"type": "http.request", "body": body, "more_body": False}]

        async def replayed_receive():
            return replay.pop() if replay else await receive()

        return await self.app(scope, replayed_receive, _RedactedErrors(send, self.redactor))

    async def _document(self, path: str, scope, receive, send):
        """``/docs.json`` (corrected) and ``/schema.json``, built once per worker (open endpoints).

        Each took 60-230 ms of a worker to rebuild: unauthenticated clients looping on them made
        authenticated predictions 58 times slower (probe 5). The documents do not change while a
        worker runs.
        """
        if path not in self._documents:
            get = {**scope, "method": "GET"}
            status, headers, body = await _captured(self.app, get, receive)
            if status != 200:
                return await _send(send, status, headers, body)
            if path == "/docs.json":
                from vitalcheck.openapi import correct_openapi

                body = json.dumps(correct_openapi(json.loads(body))).encode()
            headers = [(k, v) for k, v in headers if k.lower() != b"content-length"]
            self._documents[path] = (headers + [(b"content-length", str(len(body)).encode())], body)
        headers, body = self._documents[path]
        return await _send(send, 200, headers, body if scope.get("method") == "GET" else b"")

    def _refusal(self, scope) -> tuple[int, list, bytes] | None:
        """The answer to a request refused on its path and headers alone, or None."""
        headers: list[tuple[bytes, bytes]] = scope.get("headers") or []
        if sum(len(k) + len(v) for k, v in headers) > self.max_header_bytes:
            message = f"request headers exceed {self.max_header_bytes} bytes"
            return _refusal(HeadersTooLarge, ["header"], "headers_too_large", message)
        names = [k.lower() for k, _ in headers]
        if b"transfer-encoding" in names and b"content-length" in names:
            # RFC 9112 6.3: a request with both is a smuggling attempt behind a proxy that trusts the other one.
            message = "Content-Length together with Transfer-Encoding"
            return _refusal(InvalidInput, ["header", "content-length"], "invalid_content_length", message)
        encodings = [v.strip().lower() for k, v in headers if k.lower() == b"content-encoding"]
        if any(e not in (b"", b"identity") for e in encodings):
            message = "compressed request bodies (Content-Encoding) are not accepted"
            return _refusal(
                UnsupportedMediaType, ["header", "content-encoding"], "unsupported_content_encoding", message
            )
        path, method = scope.get("path", ""), scope.get("method", "")
        is_open = path in self.open_paths or (path.startswith(STATIC_PREFIX) and method in ("GET", "HEAD"))
        if self.token is not None and not is_open:
            problem = self._authorization_problem([v for k, v in headers if k.lower() == b"authorization"])
            if problem:
                return _refusal(Unauthorized, ["header", "authorization"], "unauthorized", problem)
        media, max_bytes, _ = self.routes.get(path, (None, self.max_bytes, 0))
        if media is None:
            return None
        if method != "POST":
            return _refusal(MethodNotAllowed, ["method"], "method_not_allowed", "use POST")
        content_types = [v for k, v in headers if k.lower() == b"content-type"]
        # A JSON route may be called without a body and without a Content-Type (every field of
        # its input is optional); a body without one is refused once read (see __call__).
        if (content_types or media == MULTIPART) and not _media_type_accepted(media, content_types):
            return _unsupported(media)
        lengths = [v for k, v in headers if k.lower() == b"content-length"]
        if len(lengths) > 1 or (lengths and not lengths[0].isdigit()):
            message = "one decimal Content-Length"
            return _refusal(InvalidInput, ["header", "content-length"], "invalid_content_length", message)
        if lengths and int(lengths[0]) > max_bytes:
            return _too_large(max_bytes)
        return None

    def _authorization_problem(self, values: list[bytes]) -> str | None:
        """Why these ``Authorization`` header values do not authenticate, or None when they do."""
        if not values:
            return "missing bearer token"
        if len(values) > 1:
            return "more than one Authorization header"
        scheme, _, credentials = values[0].strip().partition(b" ")
        if scheme.lower() != b"bearer":
            return "the Authorization scheme must be Bearer"
        assert self.token is not None
        if not hmac.compare_digest(credentials.strip(), self.token):
            return "invalid bearer token"
        return None

    async def _read_body(self, receive, send, max_bytes: int) -> bytes | None:
        """The whole body, or None once a refusal was sent (too large, too slow, client gone)."""
        chunks, seen = [], 0
        try:
            async with asyncio.timeout(self.body_timeout):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        logger.info("client disconnected before its request body was complete")
                        await _send(send, *_refusal(ClientClosedRequest, ["body"], "client_closed_request", "aborted"))
                        return None
                    chunk = message.get("body", b"")
                    seen += len(chunk)
                    if seen > max_bytes:
                        await _send(send, *_too_large(max_bytes))
                        return None
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        return b"".join(chunks)
        except TimeoutError:
            message = f"request body not received within {self.body_timeout:g} s"
            await _send(send, *_refusal(RequestTimeout, ["body"], "request_timeout", message))
            return None


class _RedactedErrors:
    """An ASGI ``send`` that rewrites every error answer into the family's shape.

    A 4xx keeps its entries with redacted locations; a 5xx gets the family's fixed body for its
    status (whatever the application wrote: BentoML's own text, a traceback, a value).
    """

    def __init__(self, send, redactor: Redactor) -> None:
        self.send = send
        self.redactor = redactor
        self.start: dict[str, Any] | None = None
        self.chunks: list[bytes] = []

    async def __call__(self, message) -> None:
        if message["type"] == "http.response.start" and message["status"] >= 400:
            self.start = message
            return None
        if self.start is None or message["type"] != "http.response.body":
            return await self.send(message)
        self.chunks.append(message.get("body", b""))
        if message.get("more_body", False):
            return None
        status = self.start["status"]
        if status >= 500:
            body = json.dumps(server_error_for(status).body()).encode()
        else:
            body = self._rewrite(b"".join(self.chunks), status)
        headers = [
            (k, v) for k, v in self.start.get("headers", []) if k.lower() not in (b"content-length", b"content-type")
        ]
        headers += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await _send(self.send, status, headers, body)

    def _rewrite(self, raw: bytes, status: int) -> bytes:
        if status == 404:  # an unlisted path (BentoML's own 404): the guard's own answer
            return _not_found()[2]
        if status == 405:  # another method on an open endpoint (starlette's own 405)
            return _get_only()[2]
        try:
            data = json.loads(raw)
        except ValueError:
            data = {}
        if isinstance(data, list):  # BentoML answers some 4xx as a one-element array (BentoML issue 4232)
            data = data[0] if data and isinstance(data[0], dict) else {}
        if not isinstance(data, dict):
            data = {}
        detail = data.get("detail")
        entries = detail if isinstance(detail, list) else []
        safe = [
            {
                "type": str(e.get("type", "invalid")),
                "loc": self.redactor.safe_loc(e.get("loc") or ["body"]),
                "msg": str(e.get("msg", "")),
            }
            for e in entries
            if isinstance(e, dict)
        ]
        error = data.get("error") if isinstance(data.get("error"), str) and safe else "request refused"
        if not safe:
            safe = [{"type": "invalid_request", "loc": ["body"], "msg": "request refused"}]
        if len(safe) > MAX_ERROR_ENTRIES:
            more = len(safe) - MAX_ERROR_ENTRIES
            # Located where the errors are (body, records or file), so that a client sees which input it was.
            where = safe[0]["loc"][:1] or ["body"]
            safe = [*safe[:MAX_ERROR_ENTRIES], {"type": "too_many_errors", "loc": where, "msg": f"{more} more"}]
        return json.dumps({"error": error, "detail": safe}).encode()


def _media_type_accepted(media: str, values: list[bytes]) -> bool:
    """Whether exactly one Content-Type was sent and it is the route's media type (JSON: in UTF-8)."""
    if not values:
        return media == NO_BODY
    if len(values) > 1:
        return False
    media_type, *params = values[0].decode("latin-1").split(";")
    if media_type.strip().lower() != (media or JSON):
        return False
    charsets = [
        p.split("=", 1)[1].strip().strip('"').lower() for p in params if p.strip().lower().startswith("charset=")
    ]
    return media == MULTIPART or all(c in ("utf-8", "utf8") for c in charsets)


def _canonical_content_type(scope):
    """The scope with its Content-Type's media type in lower case: BentoML picks its parser case-sensitively.

    (``MULTIPART/FORM-DATA`` passed the guard's case-insensitive check and then reached BentoML's
    JSON parser, under the upload routes' 25 MiB limit.)
    """
    headers = []
    for key, value in scope.get("headers") or []:
        if key.lower() == b"content-type":
            media_type, sep, params = value.partition(b";")
            value = media_type.strip().lower() + sep + params
        headers.append((key, value))
    return {**scope, "headers": headers}


def _unsupported(media: str):
    what = "multipart/form-data" if media == MULTIPART else "application/json (UTF-8)"
    message = f"send Content-Type: {what}"
    return _refusal(UnsupportedMediaType, ["header", "content-type"], "unsupported_media_type", message)


def _too_large(limit: int):
    return _refusal(PayloadTooLarge, ["body"], "request_too_large", f"request body exceeds {limit} bytes")


async def _captured(app, scope, receive) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Run ``app`` on a request and return its answer (status, headers, body) instead of sending it."""
    start: dict = {}
    chunks: list[bytes] = []

    async def capture(message):
        if message["type"] == "http.response.start":
            start.update(message)
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, capture)
    return start.get("status", 500), list(start.get("headers", [])), b"".join(chunks)


async def _send(send, status, headers, body):
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
