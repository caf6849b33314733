"""ASGI middleware in front of every VitalCheck endpoint: bearer-token check and body-size limit.

Both answer before the request body is read or parsed, with the same error shape as
validation errors (``{"error": ..., "detail": [{"type", "loc", "msg"}]}``):

* 401 on an inference endpoint (``/api/…``) when ``VITALCHECK_API_TOKEN`` is set and the
  request lacks ``Authorization: Bearer <token>`` (compared in constant time). Health,
  metrics and documentation endpoints stay open.
* 413 when the declared or streamed body exceeds ``VITALCHECK_MAX_REQUEST_BYTES``.
* 400 for a request to ``/api/…`` in BentoML's internal pickle media type
  (``application/vnd.bentoml+pickle``), which BentoML itself refuses with 415 and a body of
  another shape.

It also serves ``GET /docs.json`` corrected by :func:`vitalcheck.openapi.correct_openapi`.
"""

from __future__ import annotations

import hmac
import json

from vitalcheck.settings import get_settings

PROTECTED_PREFIX = b"/api/"
OPENAPI_PATH = b"/docs.json"
INTERNAL_MEDIA_TYPE = b"application/vnd.bentoml+pickle"


def _error(status: int, rule: str, loc: list[str], msg: str):
    body = json.dumps({"error": msg, "detail": [{"type": rule, "loc": loc, "msg": msg}]}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    return status, headers, body


class RequestGuard:
    """Refuse unauthenticated or oversized requests before the service reads them.

    Args:
        app: the wrapped ASGI application.
    """

    def __init__(self, app) -> None:
        self.app = app
        settings = get_settings()
        token = settings.api_token.get_secret_value() if settings.api_token else None
        self.expected = f"Bearer {token}".encode() if token else None
        self.max_bytes = settings.max_request_bytes

    async def __call__(self, scope, receive, send):
        """Check one HTTP request; pass everything else through."""
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        path = scope.get("raw_path") or scope.get("path", "").encode()
        if path == OPENAPI_PATH and scope.get("method") == "GET":
            return await _corrected_openapi(self.app, scope, receive, send)
        if self.expected is not None and path.startswith(PROTECTED_PREFIX):
            given = headers.get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                return await _send(
                    send, *_error(401, "unauthorized", ["header", "authorization"], "missing or invalid bearer token")
                )
        media_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if media_type == INTERNAL_MEDIA_TYPE and path.startswith(PROTECTED_PREFIX):
            message = "media type not accepted: send application/json or multipart/form-data"
            return await _send(send, *_error(400, "unsupported_media_type", ["header", "content-type"], message))
        length = headers.get(b"content-length")
        if length is not None:
            if not length.isdigit() or int(length) > self.max_bytes:
                return await _send(send, *_too_large(self.max_bytes))
            return await self.app(scope, receive, send)
        # No declared length (chunked upload): read it here, up to the limit, then replay it.
        messages, seen = [], 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                return await _send(send, *_too_large(self.max_bytes))
            if not message.get("more_body", False):
                break
        replay = iter(messages)

        async def replayed_receive():
            return next(replay, None) or await receive()

        await self.app(scope, replayed_receive, send)


def _too_large(limit: int):
    return _error(413, "request_too_large", ["body"], f"request body exceeds {limit} bytes")


async def _corrected_openapi(app, scope, receive, send):
    """Run BentoML's ``/docs.json`` handler and send its document through :func:`correct_openapi`."""
    from vitalcheck.openapi import correct_openapi

    start, chunks = {}, []

    async def capture(message):
        if message["type"] == "http.response.start":
            start.update(message)
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, capture)
    body = b"".join(chunks)
    if start.get("status") == 200:
        body = json.dumps(correct_openapi(json.loads(body))).encode()
    headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
    headers.append((b"content-length", str(len(body)).encode()))
    await _send(send, start.get("status", 500), headers, body)


async def _send(send, status, headers, body):
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
