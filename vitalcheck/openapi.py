"""Corrections to the OpenAPI document BentoML generates, so that it describes what the service does.

BentoML 1.4 builds ``/docs.json`` itself and gets four things wrong for VitalCheck; found by
fuzzing the service against its own document (docs/RELIABILITY.md):

* the 400 body is documented as ``{"error": str, "detail": str}`` while every 400 carries
  ``detail`` as a list of ``{"type", "loc", "msg"}`` entries (BentoML's own validation
  handler and :func:`vitalcheck.errors.request_error` both answer so);
* inline request schemas keep only the first branch of ``anyOf``, so a field that may be null
  (``skin_thickness_mm: null``, the hospital ``service`` filter, every Fitbit metric) is
  documented as not nullable;
* a request body is documented as optional even where its schema has required fields, so
  a client (or a fuzzer) may omit it and get a 400;
* the 401 (token) and 413 (body size) answers of :class:`vitalcheck.middleware.RequestGuard`,
  and BentoML's own 504 when a request outlives ``traffic.timeout``, are not documented.

It also replaces what BentoML writes about the service itself: ``info`` (BentoML's title,
a ``None`` version, a description with third-party badge images and "created with BentoML",
BentoML's contact) becomes VitalCheck's (:data:`DESCRIPTION`, :func:`package_version`), and the
bearer token is declared (``components.securitySchemes.bearerAuth``, ``security`` on every
``/api/`` operation) so that the documentation page's "Authorize" button works.

:func:`correct_openapi` rewrites the document (a dict); the middleware applies it to every
``GET /docs.json`` response.
"""

from __future__ import annotations

import copy
from typing import Any

from vitalcheck.schemas.common import API_VERSION

TITLE = "VitalCheck"
DISCLAIMER = "Research and education only; not a medical device."


def package_version() -> str:
    """VitalCheck's version (``vitalcheck.__version__``, which pyproject.toml reads too, so a Bento has it)."""
    from vitalcheck import __version__

    return __version__


DESCRIPTION = f"""Health-risk predictions from eight models trained on public data sets, and two reference tables.

**{DISCLAIMER}** Predictions are statistical estimates from research data sets; they are not a
diagnosis and must not guide the care of a patient.

**Endpoints** (all `POST`, JSON unless stated):

* `/api/v1/risk/{{diabetes,heart,stroke,breast-cancer}}`: probability, risk level, the top-5 contributors and the full
  `explanation` (exact SHAP values on the log-odds scale: `base_value` + the sum of `contributions` = `output_value`),
  and `ood_percentile` (how unusual the record is among the training rows);
* `/api/v1/sleep` (class probabilities), `/api/v1/life-expectancy` (years), `/api/v1/insurance` (USD/year, 90 % interval);
* each of these also as `<route>/batch` (`{{"records": [...]}}`) and `<route>/file` (CSV or Parquet upload, multipart field `file`);
* `/api/v1/imaging/brain-tumor` (a JPEG or PNG brain-MRI slice, multipart field `image`);
* `/api/v1/fitbit/percentiles`, `/api/v1/hospital/analytics` (reference tables), `/api/v1/models` (every served model and its test metrics).

**Envelope.** Every answer carries `api_version` ({API_VERSION}), the served `model` (`name`,
model-store `tag` and `version`, artifact `sha256`), the `prediction`, and `warnings` (an input
outside the range seen in training, answered as at the nearest edge of that range; a missing
input; a record more unusual than 99 % of the training rows), each naming the field and the rule,
never the value.

**Errors.** Every error shares one shape: 400 (invalid request), 401 (missing or wrong token), 405, 408,
413 (body or uploaded file too large), 415, 431, and 500/504 (a server-side failure or timeout; a fixed body
that says nothing of the request):
`{{"error": "<summary>", "detail": [{{"type": "<rule>", "loc": ["<field>", ...], "msg": "<rule in words>"}}]}}`.
A submitted value is never echoed.

**Authentication.** When the server runs with `VITALCHECK_API_TOKEN`, every `/api/` endpoint needs
`Authorization: Bearer <token>` (use *Authorize* on this page; the token is kept in this page's
memory only). `/livez`, `/readyz`, `/metrics`, this page and `/docs.json` stay open.
"""
"""``info.description`` of the served document (Markdown, rendered by the documentation page)."""

SECURITY_SCHEME_NAME = "bearerAuth"
SECURITY_SCHEME: dict[str, Any] = {
    "type": "http",
    "scheme": "bearer",
    "description": "The server's VITALCHECK_API_TOKEN (required on /api/ when the server sets one).",
}
"""The bearer token of :class:`vitalcheck.middleware.RequestGuard`, as an OpenAPI security scheme."""

_TAG_DESCRIPTIONS = {
    "Service APIs": "VitalCheck inference endpoints (bearer token when the server sets one).",
    "Infrastructure": "Liveness, readiness and Prometheus metrics (no token).",
}

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "RequestError",
    "description": "A refused request: a summary and one entry per broken rule (never the submitted value).",
    "required": ["error", "detail"],
    "properties": {
        "error": {"type": "string", "title": "Message", "description": "Summary, e.g. '1 validation error for …'."},
        "detail": {
            "type": "array",
            "title": "Error Detail",
            "items": {
                "type": "object",
                "required": ["type", "loc", "msg"],
                "properties": {
                    "type": {"type": "string", "description": "Rule name, e.g. 'less_than_equal', 'missing'."},
                    "loc": {
                        "type": "array",
                        "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
                        "description": "Where: field names and record/row indices, e.g. ['records', 3, 'age_years'].",
                    },
                    "msg": {"type": "string", "description": "The rule, in words."},
                },
            },
        },
    },
}
"""The one error shape of every error answer."""

_ERROR_REF = {"$ref": "#/components/schemas/InvalidArgument"}
_EXTRA_RESPONSES = {
    "401": ("Missing, invalid or repeated bearer token (when VITALCHECK_API_TOKEN is set).", _ERROR_REF),
    "405": ("Another method than POST.", _ERROR_REF),
    "408": ("The request body did not arrive within VITALCHECK_BODY_TIMEOUT_S.", _ERROR_REF),
    "413": ("Request body larger than the route's limit (see the README's Security section).", _ERROR_REF),
    "415": (
        "A body without the route's media type (application/json, or multipart/form-data for uploads).",
        _ERROR_REF,
    ),
    "431": ("Request headers larger than VITALCHECK_MAX_HEADER_BYTES.", _ERROR_REF),
    "500": ("A server-side failure (logged and counted; the body says nothing of the request).", _ERROR_REF),
    "504": ("Not answered within the service's traffic.timeout (30 s).", _ERROR_REF),
}


def _nullable_properties(component: dict[str, Any]) -> set[str]:
    names = set()
    for name, prop in (component.get("properties") or {}).items():
        branches = prop.get("anyOf") or []
        if prop.get("nullable") or any(b.get("type") == "null" for b in branches):
            names.add(name)
    return names


def _make_nullable(prop: dict[str, Any]) -> None:
    prop["nullable"] = True
    if "enum" in prop and None not in prop["enum"]:
        prop["enum"] = [*prop["enum"], None]


def _null_branches_to_nullable(node: Any) -> None:
    """Rewrite JSON-Schema ``anyOf: [X, {"type": "null"}]`` as OpenAPI 3.0 ``X`` + ``nullable: true``."""
    if isinstance(node, dict):
        branches = node.get("anyOf")
        if isinstance(branches, list) and any(isinstance(b, dict) and b.get("type") == "null" for b in branches):
            rest = [b for b in branches if not (isinstance(b, dict) and b.get("type") == "null")]
            del node["anyOf"]
            if len(rest) == 1 and "$ref" not in rest[0]:
                node.update(rest[0])
            else:
                node["anyOf"] = rest
            _make_nullable(node)
        for value in node.values():
            _null_branches_to_nullable(value)
    elif isinstance(node, list):
        for value in node:
            _null_branches_to_nullable(value)


def correct_openapi(spec: dict[str, Any]) -> dict[str, Any]:
    """Return a copy of BentoML's OpenAPI document with the corrections listed in the module docstring."""
    spec = copy.deepcopy(spec)
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    for path, item in spec.get("paths", {}).items():
        for operation in item.values():
            if not isinstance(operation, dict):
                continue
            body = operation.get("requestBody") or {}
            for content in body.get("content", {}).values():
                inline = content.get("schema") or {}
                if inline.get("required"):
                    body["required"] = True
                component = schemas.get(inline.get("title", ""), {})
                for name in _nullable_properties(component):
                    prop = (inline.get("properties") or {}).get(name)
                    if prop is not None and not prop.get("nullable"):
                        _make_nullable(prop)
            if path.startswith("/api/"):
                operation["security"] = [{SECURITY_SCHEME_NAME: []}]
                responses = operation.setdefault("responses", {})
                for status, (description, schema) in _EXTRA_RESPONSES.items():
                    responses.setdefault(
                        status, {"description": description, "content": {"application/json": {"schema": schema}}}
                    )
    if "InvalidArgument" in schemas:
        schemas["InvalidArgument"] = {**ERROR_SCHEMA, "title": "InvalidArgument"}
    _null_branches_to_nullable(spec)
    spec["info"] = {"title": TITLE, "version": package_version(), "description": DESCRIPTION}
    spec["components"].setdefault("securitySchemes", {})[SECURITY_SCHEME_NAME] = dict(SECURITY_SCHEME)
    for tag in spec.get("tags") or []:
        if isinstance(tag, dict) and tag.get("name") in _TAG_DESCRIPTIONS:
            tag["description"] = _TAG_DESCRIPTIONS[tag["name"]]
    return spec
