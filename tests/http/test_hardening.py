"""Issue #6: every bad input answered with a 4xx in the one error shape, every limit enforced early.

Regression tests for the bugs the fuzzing found (docs/RELIABILITY.md, "Bugs found"), the limits
on uploads, and the corrected OpenAPI document. The session's service runs with a token and a
4 MiB request limit (tests/conftest.py).
"""

import io
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import ImageFile

from tests.unit.test_imaging import _jpeg_claiming, _png_claiming
from tests.utils.payloads import EXAMPLES, ROUTES, png_bytes
from vitalcheck.training.loaders import data_file

IMAGE = "/api/v1/imaging/brain-tumor"
SENTINEL = "Sentinel-Hardening-5531"


def error(response, status=400):
    """The one error shape; returns {loc tuple: type}."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert isinstance(body, dict) and isinstance(body["error"], str), body
    assert body["detail"] and all({"type", "loc", "msg"} <= set(e) for e in body["detail"]), body
    assert all("input" not in e for e in body["detail"])
    return {tuple(e["loc"]): e["type"] for e in body["detail"]}


def raw(http, route, content: bytes, content_type="application/json"):
    return http.post(route, content=content, headers={"Content-Type": content_type})


# ---- malformed bodies ---------------------------------------------------------------------------------

DEEP = ("[" * 30_000 + "]" * 30_000).encode()  # under the 64 KiB record limit
BAD_BODIES = {
    "empty": b"",
    "not json": b"hello",
    "truncated": b'{"age_years": 63,',
    "array": b"[1, 2, 3]",
    "string": b'"Sentinel-Hardening-5531"',
    "null": b"null",
    "deeply nested": DEEP,
    "deeply nested field": b'{"age_years": ' + b"[" * 5000 + b"]" * 5000 + b"}",
    "huge integer": b'{"age_years": ' + b"9" * 5000 + b"}",
    "invalid utf-8": b'{"sex": "\xff\xfe"}',
    "lone surrogate": b'{"sex": "\\ud800"}',
}


@pytest.mark.parametrize("case", list(BAD_BODIES))
def test_malformed_json_bodies(http, case):
    locations = error(raw(http, ROUTES["heart"], BAD_BODIES[case]))
    assert SENTINEL not in json.dumps(list(locations))


@pytest.mark.parametrize(
    ("field", "value", "rule"),
    [
        ("pregnancies", True, "int_type"),  # lax pydantic read true as 1
        ("pregnancies", "8", "int_type"),  # and "8" as 8
        ("bmi_kg_m2", "23.3", "float_type"),
        ("bmi_kg_m2", 1e308 * 10, "finite_number"),  # json.dumps writes Infinity
        ("age_years", 32.5, "int_from_float"),
    ],
)
def test_wrong_json_types_are_refused(http, field, value, rule):
    """Regression: booleans and numeric strings were silently coerced into numbers."""
    payload = json.dumps({**EXAMPLES["diabetes"], field: value})
    assert error(raw(http, ROUTES["diabetes"], payload.encode())) == {(field,): rule}


@pytest.mark.parametrize("value", [1, 0, "yes", "true"])
def test_booleans_must_be_json_booleans(http, value):
    locations = error(http.post(ROUTES["stroke"], json={**EXAMPLES["stroke"], "hypertension": value}))
    assert locations == {("hypertension",): "bool_type"}


def test_reference_endpoints_refuse_coerced_types(http):
    assert error(http.post("/api/v1/hospital/analytics", json={"week_from": True})) == {("week_from",): "int_type"}
    assert error(http.post("/api/v1/fitbit/percentiles", json={"total_steps": "800"})) == {
        ("total_steps",): "float_type"
    }


def test_unicode_and_long_strings_in_categories(http):
    for value in ["\u202eelaM", "M\u0000ale", "🙂" * 50, "x" * 10_000, SENTINEL]:
        response = http.post(ROUTES["stroke"], json={**EXAMPLES["stroke"], "sex": value})
        assert ("sex",) in error(response)
        assert value not in response.text


def test_batch_of_wrong_things(http):
    for records in [[None], [[]], ["x"], [{**EXAMPLES["insurance"], "age_years": SENTINEL}]]:
        response = http.post(ROUTES["insurance"] + "/batch", json={"records": records})
        assert error(response)
        assert SENTINEL not in response.text


# ---- media types and multipart (bugs found by fuzzing) ---------------------------------------------------


def test_internal_pickle_media_type_is_a_415_in_the_error_shape(http):
    """Regression: BentoML answered 415 with a JSON *list* body."""
    locations = error(raw(http, ROUTES["heart"], b"\x80\x04K\x01.", "application/vnd.bentoml+pickle"), 415)
    assert locations == {("header", "content-type"): "unsupported_media_type"}


@pytest.mark.parametrize(("route", "field"), [(ROUTES["heart"] + "/file", "file"), (IMAGE, "image")])
def test_text_field_instead_of_a_file_is_refused_without_fetching(http, route, field, monkeypatch):
    """Regression: BentoML downloaded a text field as a URL (SSRF; HTTP 500 without uvloop)."""
    import httpx

    fetched = []
    monkeypatch.setattr(httpx.AsyncClient, "get", lambda *a, **k: fetched.append(a) or pytest.fail("fetched"))
    url = "http://127.0.0.1:9/rows.csv"
    as_form = http.post(route, data={field: url})  # form-urlencoded: not an upload's media type
    assert error(as_form, 415) == {("header", "content-type"): "unsupported_media_type"}
    as_multipart = http.post(route, files={field: (None, url.encode())})  # a text part, no filename
    assert error(as_multipart) == {(field,): "not_a_file"}
    as_json = raw(http, route, url.encode())  # BentoML's JSON parser downloads a URL body for upload routes
    assert error(as_json, 415) == {("header", "content-type"): "unsupported_media_type"}
    assert not fetched


def test_multipart_without_boundary(http):
    """Regression: starlette's 400 for a malformed multipart body surfaced as a 500."""
    response = raw(http, ROUTES["heart"] + "/file", b"abc", "multipart/form-data")
    assert error(response) == {("body",): "malformed_multipart"}


def test_url_download_path_is_closed(service_module):
    """Importing service.py installs the guard: BentoML's URL download refuses every non-file value."""
    import asyncio

    from _bentoml_impl.serde import MultipartSerde
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        asyncio.run(MultipartSerde.ensure_file("http://127.0.0.1:9/x.png"))


# ---- limits -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("claiming", [_png_claiming(100_000, 100_000), _jpeg_claiming(30_000, 30_000)])
def test_decompression_bomb_refused_before_decoding(http, monkeypatch, claiming):
    def refuse(self, *args, **kwargs):
        raise AssertionError("pixel data was decoded before the size check")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)
    assert len(claiming) < 4096
    assert error(http.post(IMAGE, files={"image": ("bomb.png", claiming)})) == {("image",): "image_rejected"}


@pytest.fixture
def api_with(svc, settings, service_module):
    """The service's API object with other limits (the session's limits are the defaults)."""
    from vitalcheck.api import VitalCheckAPI

    return lambda **limits: VitalCheckAPI(
        svc.api.registry, settings.model_copy(update=limits), service_module.INPUT_MODELS
    )


@pytest.fixture
def small_limits_api(api_with):
    return api_with(max_upload_bytes=4096)


def _refused(call, *args):
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as info:
        call(*args)
    return {tuple(e["loc"]): e["type"] for e in info.value.errors()}


def test_upload_byte_limits(small_limits_api, tmp_path, data_dir):
    big_csv = tmp_path / "big.csv"
    pd.read_csv(data_file("diabetes", data_dir)).head(200).to_csv(big_csv, index=False)
    assert big_csv.stat().st_size > 4096
    assert _refused(small_limits_api.file, "diabetes", big_csv) == {("file",): "upload_too_large"}
    big_image = tmp_path / "big.png"
    big_image.write_bytes(png_bytes((400, 400), mode="RGB") + b"\0" * 5000)
    assert _refused(small_limits_api.brain_tumor, big_image) == {("image",): "upload_too_large"}


def test_row_limit_for_csv_and_parquet(api_with, tmp_path, data_dir):
    small_limits_api = api_with(max_batch_records=20)
    rows = pd.read_csv(data_file("insurance", data_dir)).head(21)
    for path in (tmp_path / "rows.csv", tmp_path / "rows.parquet"):
        rows.to_csv(path, index=False) if path.suffix == ".csv" else rows.to_parquet(path, index=False)
        assert _refused(small_limits_api.file, "insurance", path) == {("file",): "too_many_rows"}
    rows.head(20).to_csv(tmp_path / "ok.csv", index=False)
    assert len(small_limits_api.file("insurance", tmp_path / "ok.csv").predictions) == 20


def test_parquet_bomb_is_refused_from_its_footer(http, monkeypatch, tmp_path):
    """Regression: a 140 kB Parquet file of 30 M rows was read whole before the row check."""
    from vitalcheck import sources

    monkeypatch.setattr(sources, "read_source", lambda *a: pytest.fail("the file was parsed"))
    buffer = io.BytesIO()
    pq.write_table(pa.table({"Glucose": np.zeros(3_000_000)}), buffer, compression="zstd")
    assert len(buffer.getvalue()) < 200_000
    response = http.post(ROUTES["diabetes"] + "/file", files={"file": ("bomb.parquet", buffer.getvalue())})
    assert error(response) == {("file",): "too_many_rows"}


def test_parquet_that_unpacks_huge_is_refused(small_limits_api, monkeypatch, tmp_path):
    from vitalcheck import sources

    monkeypatch.setattr(sources, "read_source", lambda *a: pytest.fail("the file was parsed"))
    path = tmp_path / "strings.parquet"
    pq.write_table(pa.table({"Pregnancies": [f"{i}" + "x" * 10_000 for i in range(10)]}), path, compression="zstd")
    assert path.stat().st_size <= 4096
    assert _refused(small_limits_api.file, "diabetes", path) == {("file",): "upload_too_large"}


def test_wide_csv_is_refused_before_parsing(http, monkeypatch):
    """Regression: a 20 MB CSV header of 2 M columns took minutes and gigabytes to parse."""
    from vitalcheck import sources

    monkeypatch.setattr(sources, "read_source", lambda *a: pytest.fail("the file was parsed"))
    header = ",".join(f"c{i}" for i in range(5000))
    response = http.post(
        ROUTES["diabetes"] + "/file", files={"file": ("wide.csv", f"{header}\n" + "1," * 4999 + "1\n")}
    )
    assert error(response) == {("file",): "too_many_columns"}


def test_extra_columns_are_ignored_and_missing_ones_named(http, data_dir):
    """Unknown columns (the data set's own `id`, the target, anything else) are ignored, documented so."""
    source = pd.read_csv(data_file("stroke", data_dir)).head(5)
    assert {"id", "stroke"} <= set(source.columns)
    plain = source.drop(columns=["id", "stroke"])
    extra = source.assign(notes=SENTINEL)
    answers = [
        http.post(ROUTES["stroke"] + "/file", files={"file": ("rows.csv", frame.to_csv(index=False))})
        for frame in (plain, extra)
    ]
    assert [a.status_code for a in answers] == [200, 200]
    assert answers[0].json()["predictions"] == answers[1].json()["predictions"]
    assert SENTINEL not in answers[1].text
    missing = http.post(
        ROUTES["stroke"] + "/file", files={"file": ("rows.csv", plain.drop(columns=["bmi"]).to_csv(index=False))}
    )
    assert error(missing) == {("file",): "missing_column"}
    assert "bmi" in missing.json()["detail"][0]["msg"]


# ---- the OpenAPI document describes what the service does -------------------------------------------


def test_documented_error_shape_is_the_real_one(http):
    """Regression: /docs.json documented `detail` as a string; every 400 carries a list."""
    import jsonschema_rs

    spec = http.get("/docs.json").json()
    documented = spec["components"]["schemas"]["InvalidArgument"]
    body = http.post(ROUTES["diabetes"], json={}).json()
    jsonschema_rs.validate(documented, body)
    for path, item in spec["paths"].items():
        if path.startswith("/api/"):
            assert {"400", "401", "413"} <= set(item["post"]["responses"]), path


def test_documented_nullability_and_required_bodies(http):
    spec = http.get("/docs.json").json()
    diabetes = spec["paths"][ROUTES["diabetes"]]["post"]["requestBody"]
    assert diabetes["required"] is True
    properties = diabetes["content"]["application/json"]["schema"]["properties"]
    assert properties["skin_thickness_mm"]["nullable"] is True  # EXAMPLE sends null
    assert EXAMPLES["diabetes"]["skin_thickness_mm"] is None
    assert not properties["age_years"].get("nullable")
    hospital = spec["paths"]["/api/v1/hospital/analytics"]["post"]["requestBody"]
    assert not hospital.get("required")  # every field has a default
    assert None in hospital["content"]["application/json"]["schema"]["properties"]["service"]["enum"]
    assert '{"type": "null"}' not in json.dumps(spec)  # JSON-Schema nulls are OpenAPI 3.0 `nullable`


@pytest.mark.parametrize(("route", "field"), [(ROUTES["insurance"] + "/file", "file"), (IMAGE, "image")])
@pytest.mark.parametrize(
    "extra",
    [b"[" * 100_000 + b"]" * 100_000, b"1" * 100_000, b"\xff\xfe\x00Jane-Doe-SENTINEL", b"[{}," * 1000 + b"{}]"],
)
def test_an_undocumented_multipart_part_is_refused_before_parsing(http, data_dir, route, field, extra, caplog):
    """Regression (probe 5): BentoML json.loads-ed every other part: 500s, and +540 MB for a 19 MiB part."""
    content = data_file("insurance", data_dir).read_bytes()[:2000] if field == "file" else png_bytes((256, 256))
    name = "rows.csv" if field == "file" else "slice.png"
    response = http.post(route, files={field: (name, content), "Jane-Doe-SENTINEL": ("x.json", extra, "text/csv")})
    assert error(response) == {("body",): "unknown_part"}
    assert "Jane-Doe-SENTINEL" not in response.text and "Jane-Doe-SENTINEL" not in caplog.text


def test_a_repeated_part_is_refused(http, data_dir):
    content = data_file("insurance", data_dir).read_bytes()[:2000]
    files = [("file", ("a.csv", content)), ("file", ("b.csv", content))]
    assert error(http.post(ROUTES["insurance"] + "/file", files=files)) == {("file",): "repeated_part"}
