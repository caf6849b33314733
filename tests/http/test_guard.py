"""Bearer-token authentication and the request-size limit (vitalcheck.middleware.RequestGuard)."""

import pytest
from starlette.testclient import TestClient

from tests.utils.payloads import EXAMPLES, ROUTES
from vitalcheck.settings import get_settings

TOKEN = "test-token-0123456789abcdef"


@pytest.fixture(scope="module")
def guarded(service_module, monkeypatch_module):
    monkeypatch_module.setenv("VITALCHECK_API_TOKEN", TOKEN)
    monkeypatch_module.setenv("VITALCHECK_MAX_REQUEST_BYTES", "200000")
    get_settings.cache_clear()
    try:
        with TestClient(service_module.VitalCheck.to_asgi(), raise_server_exceptions=False) as client:
            yield client
    finally:
        monkeypatch_module.undo()
        get_settings.cache_clear()


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


@pytest.mark.parametrize("header", [None, "Bearer wrong-token-0123456789", f"Basic {TOKEN}", TOKEN])
def test_inference_requires_the_token(guarded, header):
    headers = {"Authorization": header} if header else {}
    response = guarded.post(ROUTES["diabetes"], json=EXAMPLES["diabetes"], headers=headers)
    assert response.status_code == 401
    assert response.json()["detail"][0]["loc"] == ["header", "authorization"]
    assert TOKEN not in response.text


def test_with_the_token(guarded):
    headers = {"Authorization": f"Bearer {TOKEN}"}
    assert guarded.post(ROUTES["diabetes"], json=EXAMPLES["diabetes"], headers=headers).status_code == 200


@pytest.mark.parametrize("path", ["/livez", "/readyz", "/metrics"])
def test_health_and_metrics_stay_open(guarded, path):
    assert guarded.get(path).status_code == 200


def test_oversized_body_is_refused_before_parsing(guarded):
    headers = {"Authorization": f"Bearer {TOKEN}"}
    records = [EXAMPLES["breast_cancer"]] * 400  # about 350 kB of JSON, over the 200 kB limit
    response = guarded.post(ROUTES["breast_cancer"] + "/batch", json={"records": records}, headers=headers)
    assert response.status_code == 413
    assert response.json()["detail"][0]["type"] == "request_too_large"


def test_chunked_oversized_body_is_refused(guarded):
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}

    def chunks():
        yield b'{"records": ['
        for _ in range(3000):
            yield b'{"age_years": 19, "sex": "female", "bmi_kg_m2": 27.9, "children": 0, "smoker": true, "region": "southwest"},'
        yield b"{}]}"

    response = guarded.post(ROUTES["insurance"] + "/batch", content=chunks(), headers=headers)
    assert response.status_code == 413
