"""Bearer-token authentication and the request-size limit (vitalcheck.middleware.RequestGuard).

The session's service runs with VITALCHECK_API_TOKEN and a 4 MiB body limit (tests/conftest.py).
"""

import pytest

from tests.conftest import API_TOKEN
from tests.utils.payloads import EXAMPLES, ROUTES


@pytest.mark.parametrize("header", ["", "Bearer wrong-token-0123456789", f"Basic {API_TOKEN}", API_TOKEN])
def test_inference_requires_the_token(http, header):
    response = http.post(ROUTES["diabetes"], json=EXAMPLES["diabetes"], headers={"Authorization": header})
    assert response.status_code == 401
    assert response.json()["detail"][0]["loc"] == ["header", "authorization"]
    assert API_TOKEN not in response.text


def test_with_the_token(http):
    assert http.post(ROUTES["diabetes"], json=EXAMPLES["diabetes"]).status_code == 200


@pytest.mark.parametrize("path", ["/livez", "/readyz"])
def test_health_and_metrics_stay_open(http, path):
    assert http.get(path, headers={"Authorization": ""}).status_code == 200


def test_oversized_body_is_refused_before_parsing(http):
    records = [EXAMPLES["breast_cancer"]] * 8000  # about 6 MB of JSON, over the 4 MiB limit
    response = http.post(ROUTES["breast_cancer"] + "/batch", json={"records": records})
    assert response.status_code == 413
    assert response.json()["detail"][0]["type"] == "request_too_large"


def test_chunked_oversized_body_is_refused(http):
    record = (
        b'{"age_years": 19, "sex": "female", "bmi_kg_m2": 27.9, "children": 0, "smoker": true, "region": "southwest"},'
    )

    def chunks():
        yield b'{"records": ['
        for _ in range(50_000):  # about 5 MB, sent without a Content-Length
            yield record
        yield b"{}]}"

    response = http.post(ROUTES["insurance"] + "/batch", content=chunks(), headers={"Content-Type": "application/json"})
    assert response.status_code == 413
