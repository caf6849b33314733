"""Every endpoint over HTTP (the service's ASGI app + Starlette TestClient): success and error shapes."""

import io
import json
import logging

import pandas as pd
import pytest

from tests.utils.payloads import BINARY, EXAMPLES, ROUTES, mri_test_image, png_bytes
from vitalcheck.catalog import BRAIN_TUMOR, TABULAR_MODELS
from vitalcheck.training.loaders import data_file

SENTINEL = 987654.321
"""A value no real record holds: it must never come back in an error body or reach the logs."""


def assert_error(response, field: str, sentinel=None):
    """The exact error shape clients receive: HTTP 400, an object with 'error' and 'detail' entries
    that each have type, loc and msg, one of them naming the field; never the submitted value."""
    assert response.status_code == 400, response.text
    body = response.json()
    assert isinstance(body, dict), body
    assert isinstance(body["error"], str)
    assert body["detail"], body
    for entry in body["detail"]:
        assert {"type", "loc", "msg"} <= set(entry), entry
        assert "input" not in entry
    assert any(field in [str(p) for p in entry["loc"]] for entry in body["detail"]), body
    if sentinel is not None:
        assert str(sentinel) not in response.text
    return body


@pytest.mark.parametrize("name", list(ROUTES))
def test_single_record(http, name):
    response = http.post(ROUTES[name], json=EXAMPLES[name])
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["api_version"] == "1.0.0"
    assert body["model"]["name"] == name
    assert body["model"]["tag"].startswith(TABULAR_MODELS[name].store_name + ":")
    prediction = body["prediction"]
    assert len(prediction["contributors"]) == 5
    if name in BINARY:
        assert 0 <= prediction["probability"] <= 1
        assert prediction["risk_level"] in ("low", "moderate", "high")
    elif name == "sleep":
        assert set(prediction["probabilities"]) == set(TABULAR_MODELS["sleep"].classes)
        assert prediction["predicted_class"] == max(prediction["probabilities"], key=prediction["probabilities"].get)
    elif name == "insurance":
        assert prediction["lower_usd"] <= prediction["charges_usd"] <= prediction["upper_usd"]
    else:
        assert 30 < prediction["life_expectancy_years"] < 95


@pytest.mark.parametrize("name", list(ROUTES))
def test_batch_matches_single(http, name):
    records = [EXAMPLES[name]] * 3
    batch = http.post(ROUTES[name] + "/batch", json={"records": records})
    single = http.post(ROUTES[name], json=EXAMPLES[name])
    assert batch.status_code == 200, batch.text
    predictions = batch.json()["predictions"]
    assert len(predictions) == 3
    assert_same_prediction(predictions[0], single.json()["prediction"])


def assert_same_prediction(a, b, tol=1e-9):
    """Equal structure; floats equal within tol (a batch may use another BLAS path than one row)."""
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            assert_same_prediction(a[key], b[key], tol)
    elif isinstance(a, list):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_same_prediction(x, y, tol)
    elif isinstance(a, float):
        assert a == pytest.approx(b, abs=tol)
    else:
        assert a == b


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
@pytest.mark.parametrize("name", list(ROUTES))
def test_file_upload_in_source_format(http, data_dir, name, fmt):
    source = pd.read_csv(data_file(name, data_dir)).head(25)
    buffer = io.BytesIO()
    source.to_csv(buffer, index=False) if fmt == "csv" else source.to_parquet(buffer, index=False)
    response = http.post(ROUTES[name] + "/file", files={"file": (f"rows.{fmt}", buffer.getvalue())})
    assert response.status_code == 200, response.text
    assert len(response.json()["predictions"]) == 25


def test_brain_tumor_image(http, data_dir):
    image = mri_test_image(data_dir, "pituitary")
    response = http.post("/api/v1/imaging/brain-tumor", files={"image": (image.name, image.read_bytes(), "image/jpeg")})
    assert response.status_code == 200, response.text
    prediction = response.json()["prediction"]
    assert list(prediction["probabilities"]) == list(BRAIN_TUMOR.classes)
    assert abs(sum(prediction["probabilities"].values()) - 1) < 1e-5


def test_fitbit_percentiles(http):
    low = http.post("/api/v1/fitbit/percentiles", json={"total_steps": 1000}).json()["prediction"]
    high = http.post("/api/v1/fitbit/percentiles", json={"total_steps": 15000}).json()["prediction"]
    assert low["percentiles"][0]["metric"] == "total_steps"
    assert low["percentiles"][0]["percentile"] < high["percentiles"][0]["percentile"]
    assert low["percentiles"][0]["cohort_users"] > 0


def test_hospital_analytics(http):
    response = http.post("/api/v1/hospital/analytics", json={"service": "ICU", "week_from": 3, "week_to": 6})
    assert response.status_code == 200, response.text
    body = response.json()["prediction"]
    assert response.json()["model"]["tag"] == "reference/hospital_analytics.parquet"
    assert [row["week"] for row in body["rows"]] == [3, 4, 5, 6]
    assert {row["service"] for row in body["rows"]} == {"ICU"}


def test_models_listing(http):
    body = http.post("/api/v1/models").json()
    assert {m["model"]["name"] for m in body["models"]} == set(TABULAR_MODELS) | {"brain_tumor"}
    assert all(m["metrics"] for m in body["models"])
    assert set(body["reference_tables"]) == {"fitbit_percentiles", "hospital_analytics"}


# ---- bad input: each kind gets a 400 naming the field and the rule, never the value -----------------


def with_(record, **changes):
    return {**record, **changes}


def without(record, field):
    return {k: v for k, v in record.items() if k != field}


BAD_JSON = [
    ("wrong type", with_(EXAMPLES["diabetes"], age_years="forty"), "age_years"),
    ("missing field", without(EXAMPLES["diabetes"], "age_years"), "age_years"),
    ("unknown field", with_(EXAMPLES["diabetes"], favourite_colour="blue"), "body"),
    ("out of range", with_(EXAMPLES["diabetes"], glucose_mg_dl=SENTINEL), "glucose_mg_dl"),
    ("negative", with_(EXAMPLES["diabetes"], pregnancies=-1), "pregnancies"),
]


@pytest.mark.parametrize(("case", "payload", "field"), BAD_JSON, ids=[c for c, _, _ in BAD_JSON])
def test_bad_record(http, case, payload, field):
    assert_error(http.post(ROUTES["diabetes"], json=payload), field, sentinel=SENTINEL)


def test_unknown_category(http):
    payload = with_(EXAMPLES["stroke"], smoking_status="Sentinel-Category-XYZ")
    body = assert_error(http.post(ROUTES["stroke"], json=payload), "smoking_status")
    assert "Sentinel-Category-XYZ" not in json.dumps(body)


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_number(http, token):
    raw = json.dumps(EXAMPLES["insurance"]).replace('"bmi_kg_m2": 27.9', f'"bmi_kg_m2": {token}')
    response = http.post(ROUTES["insurance"], content=raw, headers={"Content-Type": "application/json"})
    assert_error(response, "bmi_kg_m2")


def test_malformed_json(http):
    response = http.post(ROUTES["heart"], content=b'{"age_years": 63,', headers={"Content-Type": "application/json"})
    assert 400 <= response.status_code < 500


def test_empty_batch(http):
    assert_error(http.post(ROUTES["heart"] + "/batch", json={"records": []}), "records")


def test_oversized_batch(http, settings):
    records = [EXAMPLES["insurance"]] * (settings.max_batch_records + 1)
    assert_error(http.post(ROUTES["insurance"] + "/batch", json={"records": records}), "records")


def test_batch_error_names_record_and_field(http):
    records = [EXAMPLES["heart"], with_(EXAMPLES["heart"], cholesterol_mg_dl=SENTINEL)]
    body = assert_error(http.post(ROUTES["heart"] + "/batch", json={"records": records}), "cholesterol_mg_dl", SENTINEL)
    assert body["detail"][0]["loc"][:2] in (["records", 1], ["batch", "records", 1])


def test_non_image(http):
    response = http.post("/api/v1/imaging/brain-tumor", files={"image": ("notes.txt", b"just text", "text/plain")})
    assert_error(response, "image")


def test_corrupt_image(http):
    truncated = png_bytes((128, 128))[:60]
    assert_error(http.post("/api/v1/imaging/brain-tumor", files={"image": ("x.png", truncated, "image/png")}), "image")


def test_too_many_pixels(http, settings):
    side = int(settings.max_image_pixels**0.5) + 16
    huge = png_bytes((side, side), mode="1")  # a few kB on disk, > max pixels once decoded
    assert_error(http.post("/api/v1/imaging/brain-tumor", files={"image": ("big.png", huge, "image/png")}), "image")


def test_csv_missing_column(http, data_dir):
    source = pd.read_csv(data_file("diabetes", data_dir)).head(5).drop(columns=["Glucose"])
    response = http.post(ROUTES["diabetes"] + "/file", files={"file": ("rows.csv", source.to_csv(index=False))})
    body = assert_error(response, "file")
    assert "Glucose" in json.dumps(body)


def test_csv_mistyped_column(http, data_dir):
    source = pd.read_csv(data_file("insurance", data_dir)).head(5)
    source["age"] = source["age"].astype(object)
    source.loc[2, "age"] = "Sentinel-Age"
    response = http.post(ROUTES["insurance"] + "/file", files={"file": ("rows.csv", source.to_csv(index=False))})
    body = assert_error(response, "file")
    assert "Sentinel-Age" not in json.dumps(body)


def test_csv_out_of_range_row_names_row_and_field(http, data_dir):
    source = pd.read_csv(data_file("insurance", data_dir)).head(5)
    source.loc[3, "bmi"] = SENTINEL
    response = http.post(ROUTES["insurance"] + "/file", files={"file": ("rows.csv", source.to_csv(index=False))})
    body = assert_error(response, "bmi_kg_m2", SENTINEL)
    assert body["detail"][0]["loc"][:2] == ["file", 3]


def test_garbage_file(http):
    response = http.post(ROUTES["sleep"] + "/file", files={"file": ("rows.csv", b"\x00\x01\x02garbage\xff" * 100)})
    assert 400 <= response.status_code < 500


def test_rejected_values_never_reach_the_logs(http, caplog):
    caplog.set_level(logging.DEBUG)
    http.post(ROUTES["diabetes"], json=with_(EXAMPLES["diabetes"], glucose_mg_dl=SENTINEL))
    http.post(ROUTES["diabetes"], json=with_(without(EXAMPLES["diabetes"], "age_years"), bmi_kg_m2=SENTINEL))
    assert caplog.records, "the rejections should be logged (without values)"
    assert str(SENTINEL) not in caplog.text


def test_openapi_documents_every_route_and_field(http):
    spec = http.get("/docs.json").json()
    for route in ROUTES.values():
        for path in (route, route + "/batch", route + "/file"):
            assert path in spec["paths"], path
    for path in ("/api/v1/imaging/brain-tumor", "/api/v1/fitbit/percentiles", "/api/v1/hospital/analytics"):
        assert spec["paths"][path]["post"]["description"]
    for name in ("DiabetesInput", "StrokeInput", "BreastCancerInput", "FitbitInput", "HospitalQuery"):
        schema = spec["components"]["schemas"][name + "IODescriptor"]  # BentoML names root inputs so
        assert schema["example"]
        for field, prop in schema["properties"].items():
            assert prop.get("description"), f"{name}.{field} has no description"
