"""The documentation page in headless Chromium against `bentoml serve`: it renders, offline, alone.

Skipped without /usr/bin/chromium (``apt-get install chromium``). The same check, with the
screenshot kept in build/docs-page.png, is ``make docs-check`` (tests/utils/docs_browser.py).
"""

import pytest

from tests.utils import docs_browser

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not docs_browser.chromium_available(), reason=f"{docs_browser.CHROMIUM} absent (apt-get install chromium)"
    ),
]


def test_page_renders_and_requests_nothing_beyond_loopback(served, tmp_path):
    browser = tmp_path / "browser"
    browser.mkdir()
    report = docs_browser.check_page(f"{served.url}/", tmp_path / "docs-page.png", browser)
    assert docs_browser.problems(report) == [], report
    assert report["image"]["colours"] >= 50  # not a blank or single-colour page
    assert report["page_external_requests"] == []
    assert any(url.endswith("/static_content/swagger-ui-bundle.js") for url in report["page_requests"])
