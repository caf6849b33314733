"""No patient data in error bodies or in the server's logs, with a real `bentoml serve`.

Sentinel values (numbers and strings no real record holds) are sent to every kind of endpoint:
single record, batch, CSV and Parquet upload, image, Fitbit, hospital. Every 4xx body is searched
for them, and so is everything the server wrote (stdout and stderr, which carry BentoML's access
log and the redacted rejection log). The bearer token must not appear in the log either.
"""

import io
import time

import httpx
import pandas as pd
import pytest

from tests.conftest import API_TOKEN
from tests.utils.payloads import EXAMPLES, ROUTES, png_bytes
from vitalcheck.training.loaders import data_file

pytestmark = pytest.mark.integration

NUMBER = 987654.321  # out of every range
INT = 7_351_902
TEXT = "Sentinel-Leak-Zebra-4471"
NEEDLES = ["987654", "7351902", "Sentinel-Leak", "Zebra-4471"]
"""What to search for: the sentinels' digit runs and words, whatever their formatting."""


def _requests(data_dir):
    """(description, method kwargs, expected status) for every endpoint kind."""
    diabetes, stroke, insurance = EXAMPLES["diabetes"], EXAMPLES["stroke"], EXAMPLES["insurance"]
    csv = pd.read_csv(data_file("insurance", data_dir)).head(4)
    out_of_range = csv.copy()
    out_of_range.loc[1, "bmi"] = NUMBER
    mistyped = csv.astype({"age": object})
    mistyped.loc[2, "age"] = TEXT
    unknown_category = csv.copy()
    unknown_category.loc[0, "region"] = TEXT
    extra = csv.assign(notes=TEXT, patient_id=INT)
    parquet = io.BytesIO()
    out_of_range.to_parquet(parquet, index=False)
    image_with_text = png_bytes((64, 64))[:-12] + TEXT.encode() + png_bytes((64, 64))[-12:]

    def upload(frame, name="rows.csv"):
        return {"files": {"file": (name, frame.to_csv(index=False))}}

    return [
        ("single, number out of range", ROUTES["diabetes"], {"json": {**diabetes, "glucose_mg_dl": NUMBER}}, 400),
        ("single, int out of range", ROUTES["diabetes"], {"json": {**diabetes, "pregnancies": INT}}, 400),
        ("single, unknown category", ROUTES["stroke"], {"json": {**stroke, "smoking_status": TEXT}}, 400),
        ("single, text for a number", ROUTES["stroke"], {"json": {**stroke, "bmi_kg_m2": TEXT}}, 400),
        ("single, missing field", ROUTES["diabetes"], {"json": {"bmi_kg_m2": NUMBER, "note": TEXT}}, 400),
        ("single, malformed JSON", ROUTES["insurance"], {"content": f'{{"age_years": {INT}, "sex": "{TEXT}"'}, 400),
        (
            "batch, bad record",
            ROUTES["insurance"] + "/batch",
            {"json": {"records": [insurance, {**insurance, "bmi_kg_m2": NUMBER}]}},
            400,
        ),
        ("batch, good records", ROUTES["insurance"] + "/batch", {"json": {"records": [insurance]}}, 200),
        ("csv, number out of range", ROUTES["insurance"] + "/file", upload(out_of_range), 400),
        ("csv, text in a number column", ROUTES["insurance"] + "/file", upload(mistyped), 400),
        ("csv, unknown category", ROUTES["insurance"] + "/file", upload(unknown_category), 400),
        ("csv, extra columns", ROUTES["insurance"] + "/file", upload(extra), 200),
        (
            "parquet, number out of range",
            ROUTES["insurance"] + "/file",
            {"files": {"file": ("r.parquet", parquet.getvalue())}},
            400,
        ),
        ("image, text file", "/api/v1/imaging/brain-tumor", {"files": {"image": ("x.png", TEXT.encode() * 10)}}, 400),
        (
            "image, text inside a PNG",
            "/api/v1/imaging/brain-tumor",
            {"files": {"image": ("x.png", image_with_text)}},
            400,
        ),
        ("fitbit, number out of range", "/api/v1/fitbit/percentiles", {"json": {"total_steps": NUMBER}}, 400),
        ("hospital, unknown service", "/api/v1/hospital/analytics", {"json": {"service": TEXT}}, 400),
        (
            "no token",
            ROUTES["diabetes"],
            {"json": {**diabetes, "glucose_mg_dl": NUMBER}, "headers": {"Authorization": ""}},
            401,
        ),
    ]


@pytest.fixture(scope="module")
def exchanges(served, data_dir):
    """Send every request once; return [(description, response)] and the server's log afterwards."""
    answers = []
    headers = {"Authorization": f"Bearer {API_TOKEN}", "Content-Type": "application/json"}
    with httpx.Client(base_url=served.url, headers={"Authorization": headers["Authorization"]}, timeout=60) as client:
        for description, route, kwargs, expected in _requests(data_dir):
            if "content" in kwargs:
                kwargs = {**kwargs, "headers": headers}
            answers.append((description, expected, client.post(route, **kwargs)))
    time.sleep(1.0)  # let the workers' log lines reach the file
    return answers, served.log()


def test_every_request_got_its_status(exchanges):
    answers, _ = exchanges
    assert [(d, r.status_code) for d, e, r in answers] == [(d, e) for d, e, r in answers]


def test_error_bodies_name_field_and_rule_never_the_value(exchanges):
    answers, _ = exchanges
    for description, expected, response in answers:
        body = response.json()
        if expected >= 400:
            assert body["detail"] and all({"type", "loc", "msg"} <= set(e) for e in body["detail"]), description
        else:
            assert "notes" not in response.text and "patient_id" not in response.text, description
        for needle in NEEDLES if expected >= 400 or "extra" in description else []:
            assert needle not in response.text, f"{description}: {needle} in {response.text[:300]}"


def test_request_values_never_reach_the_server_log(exchanges):
    answers, log = exchanges
    assert "request rejected" in log, "the rejections should be logged (without values)"
    for needle in [*NEEDLES, API_TOKEN]:
        lines = [line for line in log.splitlines() if needle in line]
        assert not lines, f"{needle!r} in the server log: {lines[:3]}"


def test_access_log_has_requests_but_no_bodies(exchanges):
    answers, log = exchanges
    access = [line for line in log.splitlines() if "path=/api/v1/" in line]
    assert len(access) >= len(answers), f"expected an access-log line per request, got:\n{log[-3000:]}"
    assert any("status=400" in line for line in access) and any("status=200" in line for line in access)
    for line in access:
        assert "{" not in line.split("path=", 1)[1], f"a body in the access log: {line}"
