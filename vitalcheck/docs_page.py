"""VitalCheck's own documentation page at ``GET /``, in place of BentoML's stock page.

BentoML's page loads Google Tag Manager (a third party, on a health-data service), links
GitHub, and shows badge images from img.shields.io and friends (broken offline). This page
loads nothing from another origin:

* BentoML's bundled Swagger UI, same origin, by absolute path:
  ``/static_content/swagger-ui.css`` and ``/static_content/swagger-ui-bundle.js`` (not the
  standalone preset: its top bar lets a visitor load any URL, and BentoML's ``index.css`` only
  styles BentoML's GitHub corner);
* one inline initializer (:data:`INITIALIZER`) and one inline style sheet (:data:`STYLE`),
  allowed by the Content-Security-Policy through their sha256 hashes, computed at import;
* the favicon is an inline ``data:`` PNG (no request at all).

Swagger UI's own outside addresses are switched off by configuration: ``validatorUrl: null``
(otherwise it sends the document's URL to validator.swagger.io and shows its badge),
``queryConfigEnabled: false`` (no ``?url=``/``?configUrl=`` from the address bar), ``url``
given (the bundle's default is petstore.swagger.io). Whatever slips through is still refused by
the browser: ``default-src 'self'``, ``connect-src 'self'``.

The OpenAPI document the page renders is ``/docs.json`` as corrected by
:func:`vitalcheck.openapi.correct_openapi` (VitalCheck's title, version, description, bearer scheme).
"""

from __future__ import annotations

import base64
import hashlib
import html

from vitalcheck.openapi import DISCLAIMER, package_version

DOCS_PAGE_PATHS = frozenset({"/"})
"""Paths answered with the page (GET only); the middleware serves them without a token."""

STATIC = "/static_content"
"""Where BentoML serves its bundled Swagger UI (same origin)."""

TITLE = "VitalCheck API"

INITIALIZER = """
window.ui = SwaggerUIBundle({
  url: "/docs.json",
  dom_id: "#swagger-ui",
  presets: [SwaggerUIBundle.presets.apis],
  plugins: [SwaggerUIBundle.plugins.DownloadUrl],
  layout: "BaseLayout",
  deepLinking: true,
  validatorUrl: null,
  queryConfigEnabled: false,
  persistAuthorization: false,
  withCredentials: false,
  displayRequestDuration: true,
  defaultModelsExpandDepth: 0,
  docExpansion: "list",
});
"""
"""The inline script that starts Swagger UI (its exact text is hashed into the CSP)."""

STYLE = """
body { margin: 0; background: #fafafa; font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
.vc-header { background: #0f3d3e; color: #fff; padding: 16px 24px; }
.vc-header h1 { margin: 0; font-size: 24px; font-weight: 600; }
.vc-header .vc-version { font-size: 14px; font-weight: 400; opacity: 0.85; margin-left: 8px; }
.vc-header p { margin: 6px 0 0; font-size: 14px; }
.vc-header a { color: #cdeeee; }
.vc-disclaimer { display: inline-block; background: #fff3cd; color: #5c4400; padding: 2px 8px; border-radius: 3px; font-weight: 600; }
.vc-noscript { padding: 16px 24px; }
.swagger-ui .info { margin: 24px 0; }
"""
"""The page's own inline style sheet (hashed into the CSP)."""

FAVICON = (
    "data:image/png;base64,"
    "iVBORw0KGgoAAAANSUhEUgAAACAAAAAgCAYAAABzenr0AAAAqElEQVR42u2XOxKAIAxEScZeLySeXbiQnEA7B5mgBobgh1RS6NvsohJQQfWjXlXBctaAv0ZJOMVASTjF"
    "Qml4KAJqwKN7oAloAmpUx71hMfN+PejpZxH43VPrbzsQyz7Xhee9BVcd3dn5nGckOxCLgRsJpkKLRZADSflIZZ8HKMs5Tbz/ZxR2y42wugPtTNgEYDirSZaz"
    "BpAaGKXghwgkRfgsPBudJcbzDfo2RszyelO4AAAAAElFTkSuQmCC"
)
"""An inline 32×32 PNG (a pulse line), so the browser does not ask for /favicon.ico."""


def csp_hash(source: str) -> str:
    """The CSP source expression (``'sha256-…'``) allowing an inline script or style with this exact text."""
    return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode()).digest()).decode() + "'"


CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        f"script-src 'self' {csp_hash(INITIALIZER)}",
        f"style-src 'self' {csp_hash(STYLE)}",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'self'",
    ]
)
"""Same origin only; inline code only the initializer and style above, by hash; no framing."""


def render_page(version: str | None = None) -> str:
    """The page's HTML (``version`` defaults to :func:`vitalcheck.openapi.package_version`)."""
    version = html.escape(version or package_version())
    return f"""<!DOCTYPE html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <meta name="referrer" content="no-referrer">
    <meta name="description" content="VitalCheck health-risk prediction API. {html.escape(DISCLAIMER)}">
    <title>{TITLE}</title>
    <link rel="icon" type="image/png" href="{FAVICON}">
    <link rel="stylesheet" href="{STATIC}/swagger-ui.css">
    <style>{STYLE}</style>
  </head>
  <body>
    <header class="vc-header">
      <h1>{TITLE} <span class="vc-version">version {version}</span></h1>
      <p><span class="vc-disclaimer">{html.escape(DISCLAIMER)}</span></p>
      <p>OpenAPI document: <a href="/docs.json">/docs.json</a>. With a token configured, use <em>Authorize</em>
        below; the token stays in this page's memory only.</p>
    </header>
    <noscript><p class="vc-noscript">This page needs JavaScript to render the API reference;
      the OpenAPI document itself is at <a href="/docs.json">/docs.json</a>.</p></noscript>
    <main id="swagger-ui"></main>
    <script src="{STATIC}/swagger-ui-bundle.js"></script>
    <script>{INITIALIZER}</script>
  </body>
</html>
"""


PAGE = render_page().encode()
"""The page, rendered once at import."""

HEADERS: list[tuple[bytes, bytes]] = [
    (b"content-type", b"text/html; charset=utf-8"),
    (b"content-length", str(len(PAGE)).encode()),
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cache-control", b"no-cache"),
]


def index_response() -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """The page as ``(status, headers, body)`` for the ASGI middleware."""
    return 200, list(HEADERS), PAGE
