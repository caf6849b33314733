"""Keep submitted values, and submitted key names, out of error bodies and logs.

A client's request is patient data: its values, and also its key names (a client may send a
patient's name as a key) and anything it puts in the path or the headers. Three places could
repeat it, and each goes through :class:`Redactor`:

* **error bodies**: pydantic reports an unknown key as ``loc: ["<the key>"]``, and a form body
  parsed as one key repeats the whole body. :meth:`Redactor.safe_loc` keeps a location part
  only when it is a documented field name (or a row index); anything else becomes
  :data:`UNKNOWN_FIELD`. The middleware applies it to every 4xx body of an API route.
* **the rejection log**: BentoML logs a failed request's exception with its traceback; a
  ``ValidationError``'s text carries ``input_value=``. :class:`RedactingFilter` rewrites such a
  record to the error count, the redacted locations and the rule types, at WARNING (a client
  error must not trip error-log alerts). Any other logged exception keeps its traceback frames
  (code, not data) but loses its message, which may quote a value.
* **the access log and "Exception on <path>" lines**: the path is logged only when it is a
  route or an open endpoint (others become :data:`OTHER_PATH`), the method only when it is
  a standard one, the request content type only as its bare media type when it is one the
  service knows.

VitalCheck itself never logs request bodies.
"""

from __future__ import annotations

import ipaddress
import logging
import traceback
from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import ValidationError

UNKNOWN_FIELD = "(unknown field)"
"""Stands for a submitted key that is not a documented field, in ``loc`` and in logs."""
OTHER_PATH = "(unlisted path)"
"""Stands for a request path that is neither a route nor an open endpoint, in logs."""

FIXED_LOCATIONS = frozenset({"body", "file", "image", "records", "header", "authorization", "content-type", "path"})
"""Location words VitalCheck itself puts in ``loc`` (besides field names)."""

WEBSOCKET_LINES = frozenset(
    f"%s (scheme=%s,path=%s) - {event}"
    for event in ("Client connected", "Client disconnected", "Connection closed", "Connection established")
)
"""BentoML's access-log formats for WebSocket events (VitalCheck serves none; the guard closes them)."""

LOGGED_ERRORS = 20
"""Most error locations one rejection-log line lists (a batch of invalid records has thousands)."""
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT"})
MEDIA_TYPES = frozenset(
    {"application/json", "multipart/form-data", "application/x-www-form-urlencoded", "text/plain", "text/html"}
)


def schema_field_names(schema: dict[str, Any]) -> set[str]:
    """Every property name anywhere in a JSON schema (nested models and ``$defs`` included)."""
    names: set[str] = set()
    stack: list[Any] = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            properties = node.get("properties")
            if isinstance(properties, dict):
                names.update(properties)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return names


def safe_address(address: str) -> str:
    """``host:port`` when host is an IP address (uvicorn takes it from X-Forwarded-For behind a proxy), else ``(other)``.

    A client may put any text in X-Forwarded-For; uvicorn trusts it from 127.0.0.1 by default.
    """
    host, _, port = address.rpartition(":")
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return "(other)" if address != "_" else address
    if "%" in host:  # an IPv6 zone id is free text
        return "(other)"
    return address if port.isdigit() else "(other)"


class Redactor:
    """What may be repeated from a request: documented field names, routes and open paths.

    Args:
        field_names: every documented request field name.
        paths: every route and open endpoint path, logged as they are.

    """

    def __init__(self, field_names: Iterable[str] = (), paths: Iterable[str] = ()) -> None:
        self.field_names = frozenset(field_names) | FIXED_LOCATIONS
        self.paths = frozenset(paths)

    def safe_loc(self, loc: Sequence[Any]) -> list[str | int]:
        """``loc`` with every part that is not a field name or an index replaced by :data:`UNKNOWN_FIELD`."""
        return [
            part
            if (isinstance(part, int) and not isinstance(part, bool)) or part in self.field_names
            else UNKNOWN_FIELD
            for part in loc
        ]

    def error_entries(self, exc: ValidationError) -> list[dict[str, Any]]:
        """The error's entries as ``{"type", "loc", "msg"}``, with redacted locations and no input or context."""
        return [
            {"type": e["type"], "loc": self.safe_loc(e["loc"]), "msg": e["msg"]}
            for e in exc.errors(include_input=False, include_context=False, include_url=False)
        ]

    def safe_path(self, path: str) -> str:
        """The path if it is a route or an open endpoint, else :data:`OTHER_PATH`."""
        return path if path in self.paths else OTHER_PATH

    def access_line(self, text: str) -> str:
        """Rebuild an access-log request part (``scheme=…,method=…,path=…[,type=…][,length=…]``) from safe tokens.

        The path and the content type are the client's text and may hold commas, so the line is
        not split on them: the path is kept only when a listed path is followed by the next
        field, the media type only when it is a known one, the length only when it is digits.
        """
        scheme, _, rest = text.partition(",method=")
        method, _, rest = rest.partition(",path=")
        scheme = scheme if scheme in ("scheme=http", "scheme=https") else "scheme=(other)"
        parts = [scheme, f"method={method if method in METHODS else '(other)'}"]
        path = next((p for p in self.paths if rest == p or rest.startswith(p + ",")), None)
        parts.append(f"path={path or OTHER_PATH}")
        rest = rest[len(path) :] if path else ""
        media, length = "", ""
        if rest.startswith(",type="):
            media, _, length = (
                rest[len(",type=") :].rpartition(",length=") if ",length=" in rest else (rest[6:], "", "")
            )
            media = media.split(";")[0].strip().lower()
            parts.append(f"type={media if media in MEDIA_TYPES or not media else '(other)'}")
        elif rest.startswith(",length="):
            length = rest[len(",length=") :]
        if ",length=" in text:
            parts.append(f"length={length if length.isdigit() or not length else '(other)'}")
        return ",".join(parts)


class RedactingFilter(logging.Filter):
    """Rewrite log records so that no submitted value, key name or unlisted path remains (see module docstring)."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record in place; always keep it."""
        if record.name.startswith("python_multipart"):
            # Its parse warnings quote the offending byte of the body ("got 74 at index 2").
            record.msg, record.args = "multipart parser: malformed body (details withheld: they quote the body)", ()
        elif record.name == "bentoml.access" and record.msg in WEBSOCKET_LINES and isinstance(record.args, tuple):
            address, scheme, path = (list(record.args) + ["", "", ""])[:3]
            scheme = scheme if scheme in ("ws", "wss") else "(other)"
            record.args = (safe_address(str(address)), scheme, self.redactor.safe_path(str(path)))
        elif record.name == "bentoml.access" and isinstance(record.args, tuple) and len(record.args) >= 2:
            args = list(record.args)
            args[0] = safe_address(str(args[0]))
            args[1] = self.redactor.access_line(str(args[1]))
            record.args = tuple(args)
        elif record.msg == "Exception on %s [%s]" and isinstance(record.args, tuple) and len(record.args) == 2:
            path, method = record.args
            method = method if method in METHODS else "(other)"
            record.args = (self.redactor.safe_path(str(path)), method)
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, ValidationError):
            entries = self.redactor.error_entries(exc)
            where = ", ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'body'} ({e['type']})" for e in entries[:LOGGED_ERRORS]
            )
            if len(entries) > LOGGED_ERRORS:
                where += f", and {len(entries) - LOGGED_ERRORS} more"
            record.msg = f"{record.getMessage()}: request rejected, {exc.error_count()} validation error(s): {where}"
            record.args = ()
            record.exc_info = None
            record.exc_text = None
            if record.levelno > logging.WARNING:
                record.levelno, record.levelname = logging.WARNING, "WARNING"
        elif exc is not None and type(exc).__module__.startswith("h11"):
            # A client that broke HTTP framing (e.g. more bytes than its Content-Length): uvicorn
            # has already answered 400; a 90-line ERROR traceback per request would flood the log.
            record.msg, record.args = f"client protocol error ({type(exc).__qualname__}); answered by uvicorn", ()
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        elif exc is not None and record.exc_info is not None:
            frames = "".join(traceback.format_tb(record.exc_info[2]))
            record.msg = f"{record.getMessage()}\nTraceback (most recent call last):\n{frames}"
            record.msg += f"{type(exc).__module__}.{type(exc).__qualname__}: (message withheld: it may quote a request)"
            record.args = ()
            record.exc_info = None
            record.exc_text = None
        if isinstance(record.args, tuple):
            # No argument may start a new line: a client's text must not forge a log line.
            record.args = tuple(_one_line(a) if isinstance(a, str) else a for a in record.args)
        return True


def _one_line(text: str) -> str:
    return text.replace("\r", "\\r").replace("\n", "\\n")


def ignore_client_trace_context(accept: bool) -> None:
    """Unless ``accept``, stop continuing the W3C trace context a client sends.

    BentoML's OpenTelemetry middleware continues an incoming ``traceparent`` and writes its
    trace id into every log line of the request: a client could choose what the logs say.
    With a propagator that extracts nothing (OpenTelemetry's public ``set_global_textmap``),
    every request starts a trace of its own. Setting: ``VITALCHECK_ACCEPT_TRACE_CONTEXT``.
    """
    if accept:
        return
    from opentelemetry.context import Context
    from opentelemetry.propagate import set_global_textmap
    from opentelemetry.propagators.textmap import TextMapPropagator

    class NoIncomingContext(TextMapPropagator):
        # Not CompositePropagator([]) (OTEL_PROPAGATORS=none): its extract returns None for
        # no context, and the ASGI middleware then fails every request.
        def extract(self, carrier, context=None, getter=None):
            return context if context is not None else Context()

        def inject(self, carrier, context=None, setter=None):
            return None

        @property
        def fields(self):
            return set()

    set_global_textmap(NoIncomingContext())
