"""Corrections to the OpenAPI document BentoML generates, so that it describes what the service does.

BentoML 1.4 builds ``/docs.json`` itself and gets three things wrong for VitalCheck; found by
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

:func:`correct_openapi` rewrites the document (a dict); the middleware applies it to every
``GET /docs.json`` response.
"""

from __future__ import annotations

import copy
from typing import Any

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
"""The one error shape of every 400, 401 and 413 answer."""

_ERROR_REF = {"$ref": "#/components/schemas/InvalidArgument"}
_EXTRA_RESPONSES = {
    "401": ("Missing or invalid bearer token (when VITALCHECK_API_TOKEN is set).", _ERROR_REF),
    "413": ("Request body larger than VITALCHECK_MAX_REQUEST_BYTES.", _ERROR_REF),
    "504": (
        "Not answered within the service's traffic.timeout (BentoML's answer, body {\"error\": ...}).",
        {"$ref": "#/components/schemas/InternalServerError"},
    ),
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
                responses = operation.setdefault("responses", {})
                for status, (description, schema) in _EXTRA_RESPONSES.items():
                    responses.setdefault(
                        status, {"description": description, "content": {"application/json": {"schema": schema}}}
                    )
    if "InvalidArgument" in schemas:
        schemas["InvalidArgument"] = {**ERROR_SCHEMA, "title": "InvalidArgument"}
    _null_branches_to_nullable(spec)
    return spec
