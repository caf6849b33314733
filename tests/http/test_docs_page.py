"""VitalCheck's documentation page at ``/`` and its OpenAPI document (security issue item 10).

BentoML's stock page loads Google Tag Manager, links GitHub, shows third-party badge images
and says "This is a Machine Learning Service created with BentoML"; its ``/docs.json`` has
``info.version`` ``None`` and no security scheme. Every test here fails on that page.
The browser check (screenshot, requests Chromium made) is tests/integration/test_docs_browser.py.
"""

import base64
import hashlib
import importlib.metadata
import re
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest

from vitalcheck.openapi import package_version

DISCLAIMER = "Research and education only; not a medical device."


def without_token(http, method, url):
    """Send a request through the session client with its default Authorization header removed."""
    request = http.build_request(method, url)
    del request.headers["authorization"]
    return http.send(request)


class _Page(HTMLParser):
    """Collects every src/href attribute and the text of each inline <script> and <style>."""

    def __init__(self):
        super().__init__()
        self.links, self.inline = [], {"script": [], "style": []}
        self._open = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.links += [attrs[name] for name in ("src", "href") if attrs.get(name)]
        if tag in self.inline and "src" not in attrs:
            self._open = tag
            self.inline[tag].append("")

    def handle_endtag(self, tag):
        if tag == self._open:
            self._open = None

    def handle_data(self, data):
        if self._open:
            self.inline[self._open][-1] += data


@pytest.fixture(scope="module")
def page(http):
    response = without_token(http, "GET", "/")
    parsed = _Page()
    parsed.feed(response.text)
    return response, parsed


def csp_directives(response):
    policy = response.headers.get("content-security-policy", "")
    return {part.split()[0]: part.split()[1:] for part in policy.split(";") if part.strip()}


def test_page_is_vitalchecks_without_a_token(page):
    response, _ = page
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    text = response.text
    assert "<title>VitalCheck API</title>" in text
    assert f"version {package_version()}" in text
    assert DISCLAIMER in text
    for stock in ("googletagmanager", "This is a Machine Learning Service created with BentoML", "github-corner"):
        assert stock not in text


def test_every_asset_is_same_origin_and_served_without_a_token(http, page):
    _, parsed = page
    assert any(link.endswith("/swagger-ui-bundle.js") for link in parsed.links)
    assert any(link.endswith("/swagger-ui.css") for link in parsed.links)
    for link in parsed.links:
        if link.startswith("data:"):  # the inline favicon: no request
            assert link.startswith("data:image/png;base64,"), link[:40]
            continue
        parts = urlsplit(link)
        assert not parts.scheme and not parts.netloc, link
        assert link.startswith("/"), link  # absolute paths: the page works whatever path serves it
        assert without_token(http, "GET", link).status_code == 200, link


def test_no_url_to_another_host_anywhere_in_the_page(http, page):
    for response in (page[0], http.get("/")):  # without and with the token: the same page
        assert response.status_code == 200 and response.text.startswith("<!DOCTYPE html>")
        assert re.findall(r"(?:https?:)?//[A-Za-z0-9.-]+", response.text) == []


def test_content_security_policy_is_strict_and_allows_exactly_the_inline_code(page):
    response, parsed = page
    directives = csp_directives(response)
    assert directives["default-src"] == ["'self'"]
    assert directives["connect-src"] == ["'self'"]
    assert directives["img-src"] == ["'self'", "data:"]
    assert directives["frame-ancestors"] == ["'none'"]
    assert directives["base-uri"] == ["'none'"]
    assert directives["object-src"] == ["'none'"]
    assert directives["form-action"] == ["'self'"]
    for kind in ("script", "style"):
        allowed = directives[f"{kind}-src"]
        assert "'unsafe-inline'" not in allowed and "'unsafe-eval'" not in allowed
        assert all(source == "'self'" or source.startswith("'sha256-") for source in allowed), allowed
        hashes = {
            "'sha256-" + base64.b64encode(hashlib.sha256(code.encode()).digest()).decode() + "'"
            for code in parsed.inline[kind]
        }
        assert len(parsed.inline[kind]) == 1, kind
        assert hashes == {source for source in allowed if source != "'self'"}, kind
    initializer = parsed.inline["script"][0]
    assert 'url: "/docs.json"' in initializer
    assert "validatorUrl: null" in initializer
    assert "persistAuthorization: false" in initializer
    assert "queryConfigEnabled: false" in initializer


def test_other_security_headers(page):
    response, _ = page
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-frame-options"] == "DENY"


def test_head_answers_like_get(http, page):
    response = without_token(http, "HEAD", "/")
    assert response.status_code == 200
    assert response.headers["content-security-policy"] == page[0].headers["content-security-policy"]


@pytest.fixture(scope="module")
def spec(http):
    response = without_token(http, "GET", "/docs.json")
    assert response.status_code == 200
    return response.json()


def test_openapi_info_is_vitalchecks(spec):
    info = spec["info"]
    assert info["title"] == "VitalCheck"
    assert info["version"] == package_version() == importlib.metadata.version("vitalcheck") != "None"
    assert DISCLAIMER in info["description"]
    for topic in ("api_version", '"detail"', "Bearer", "/api/v1/risk/"):
        assert topic in info["description"], topic
    assert "BentoML" not in str(info)
    assert not re.search(r"https?://", str(info))


def test_openapi_declares_the_bearer_token_on_every_api_operation(spec):
    scheme = spec["components"]["securitySchemes"]["bearerAuth"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    assert "security" not in spec  # no global requirement: health and metrics stay open
    api_operations = 0
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if path.startswith("/api/"):
                api_operations += 1
                assert operation.get("security") == [{"bearerAuth": []}], f"{method} {path}"
            else:
                assert "security" not in operation, f"{method} {path}"
    assert api_operations >= 24
    assert {"/livez", "/readyz", "/metrics"} <= set(spec["paths"])
