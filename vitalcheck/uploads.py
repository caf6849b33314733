"""Multipart uploads: only uploaded files are accepted, and a malformed body is a 400.

BentoML 1.4's multipart parser (``_bentoml_impl.serde.MultipartSerde``) treats a *text*
form field sent for a file parameter (``file``, ``image``) as a URL and downloads it on the
server. VitalCheck's uploads are files only, so that would be a server-side request forgery
and a way around the upload size limit; without uvloop installed it is also an HTTP 500.
A body that starlette cannot parse as multipart (no boundary, too many parts, an oversized
text part) is a 500 as well, since BentoML does not translate starlette's ``HTTPException``.

:func:`install_upload_guard` wraps ``MultipartSerde.parse_request`` so that, before BentoML
sees the form, both cases are refused as :func:`~vitalcheck.errors.request_error` (HTTP 400,
``{"error", "detail": [{"type", "loc", "msg"}]}``), and replaces the URL download with a
refusal. BentoML is pinned (pyproject.toml); tests/http/test_hardening.py checks the guard.
"""

from __future__ import annotations

from vitalcheck.errors import request_error

NOT_A_FILE = "must be an uploaded file (a multipart part with a filename), not a text field"


def install_upload_guard() -> None:
    """Guard BentoML's multipart parsing (idempotent); see the module docstring."""
    from _bentoml_impl.serde import MultipartSerde
    from starlette.datastructures import UploadFile
    from starlette.exceptions import HTTPException

    if getattr(MultipartSerde.parse_request, "vitalcheck_guard", False):
        return
    original = MultipartSerde.parse_request

    async def parse_request(self, request, cls):
        try:
            form = await request.form()  # parsed once: starlette caches it for BentoML's own call
        except HTTPException:
            raise request_error("body", "malformed_multipart", "not a valid multipart/form-data body") from None
        for name in getattr(cls, "multipart_fields", ()):
            if any(not isinstance(value, UploadFile) for value in form.getlist(name)):
                raise request_error(name, "not_a_file", NOT_A_FILE)
        return await original(self, request, cls)

    async def ensure_file(obj):
        if isinstance(obj, UploadFile):
            return obj
        raise request_error("body", "not_a_file", NOT_A_FILE)

    parse_request.vitalcheck_guard = True
    MultipartSerde.parse_request = parse_request
    MultipartSerde.ensure_file = staticmethod(ensure_file)
