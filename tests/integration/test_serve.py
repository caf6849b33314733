"""`bentoml serve` in a subprocess: the Python client against every endpoint, and start-up refusal."""

import os

import bentoml
import pytest

from tests.conftest import API_TOKEN
from tests.utils.payloads import EXAMPLES, mri_test_image
from tests.utils.serving import READY_TIMEOUT_S, damaged_copy, run_until_exit, tampered_store
from vitalcheck.catalog import TABULAR_MODELS
from vitalcheck.predictors.tabular import records_to_frame
from vitalcheck.training.loaders import data_file, load

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def client(served):
    with bentoml.SyncHTTPClient(served.url, server_ready_timeout=READY_TIMEOUT_S, token=API_TOKEN) as c:
        yield c


def test_real_test_rows_equal_the_in_process_pipeline(client, svc, data_dir):
    """Five real records per tabular model: the client's answers equal the pipeline's, called in-process."""
    for name, spec in TABULAR_MODELS.items():
        X, _ = load(name, data_file(name, data_dir))
        rows = X.sample(5, random_state=0)
        records = rows.astype(object).where(rows.notna(), None).to_dict("records")
        answer = getattr(client, f"{name}_batch")({"records": records})
        pipeline = svc.api.registry.tabular[name]
        expected = pipeline.outputs(records_to_frame(spec, records))
        for got, want in zip(answer["predictions"], expected, strict=True):
            if "probability" in got:
                assert got["probability"] == pytest.approx(want[1], abs=1e-9)
            elif "probabilities" in got:
                assert list(got["probabilities"].values()) == pytest.approx(list(want), abs=1e-9)
            elif "charges_usd" in got:
                assert [got["charges_usd"], got["lower_usd"], got["upper_usd"]] == pytest.approx(list(want), abs=1e-6)
            else:
                assert got["life_expectancy_years"] == pytest.approx(float(want), abs=1e-9)


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_client_single_equals_in_process(client, svc, service_module, name):
    over_http = getattr(client, name)(EXAMPLES[name])
    record = service_module.INPUT_MODELS[name].model_validate(EXAMPLES[name])
    in_process = svc.api.single(name, record).model_dump(mode="json")
    assert over_http == in_process


def test_client_image_fitbit_hospital_models(client, data_dir):
    image = mri_test_image(data_dir, "meningioma")
    assert client.brain_tumor(image=image)["prediction"]["predicted_class"] in (
        "glioma",
        "meningioma",
        "notumor",
        "pituitary",
    )
    day = client.fitbit_percentiles({"total_steps": 8000})["prediction"]
    assert day["percentiles"][0]["metric"] == "total_steps"
    assert client.hospital_analytics({"service": "surgery", "week_from": 1, "week_to": 2})["prediction"]["summary"]
    assert len(client.models()["models"]) == 8


def test_readyz(client):
    assert client.is_ready()


# ---- start-up refusal ------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["missing", "corrupt", "mismatch"])
def test_refuses_to_start_with_a_damaged_artifact(tmp_path, model_store, how):
    env = {**os.environ, "BENTOML_HOME": str(tampered_store(tmp_path, model_store, how))}
    status, output, _ = run_until_exit(env)
    assert status is not None, f"server with a {how} artifact did not exit within {READY_TIMEOUT_S} s:\n{output}"
    assert status != 0, output
    assert "diabetes_pipeline.pkl" in output, output
    assert "refuses to start" in output


def test_golden_drift_is_refused_before_any_worker_starts(tmp_path, model_store, settings):
    """Golden outputs need the model unpickled: the pre-start check does that in a child process."""
    home, tables, _ = damaged_copy("golden-drift", model_store, settings.reference_dir, tmp_path)
    env = {**os.environ, "BENTOML_HOME": str(home), "VITALCHECK_REFERENCE_DIR": str(tables)}
    status, output, _ = run_until_exit(env)
    assert status is not None, f"server with a drifting model did not exit within {READY_TIMEOUT_S} s:\n{output}"
    assert status != 0, output
    assert "breast_cancer_pipeline.pkl" in output and "golden" in output, output
    assert "refuses to start" in output
    assert "Starting production HTTP BentoServer" not in output, "workers were started"


def test_concurrent_single_records_are_micro_batched_over_http(served, svc, service_module, data_dir):
    """32 concurrent diabetes requests: every answer equals the record's answer alone, and /metrics
    shows batches of more than one request (the micro-batcher merged them)."""
    import asyncio

    import httpx

    from tests.utils.payloads import assert_close

    X, _ = load("diabetes", data_file("diabetes", data_dir))
    rows = X.sample(32, random_state=3)
    records = rows.astype(object).where(rows.notna(), None).to_dict("records")
    headers = {"Authorization": f"Bearer {API_TOKEN}"}

    async def send():
        async with httpx.AsyncClient(base_url=served.url, headers=headers, timeout=60) as client:
            return await asyncio.gather(*(client.post("/api/v1/risk/diabetes", json=r) for r in records))

    answers = asyncio.run(send())
    for record, answer in zip(records, answers, strict=True):
        assert answer.status_code == 200
        alone = svc.api.single("diabetes", service_module.INPUT_MODELS["diabetes"].model_validate(record))
        assert_close(answer.json()["prediction"], alone.model_dump(mode="json")["prediction"])
    metrics = httpx.get(f"{served.url}/metrics", timeout=10).text
    count = sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith('vitalcheck_microbatch_size_count{model="diabetes"')
    )
    total = sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith('vitalcheck_microbatch_size_sum{model="diabetes"')
    )
    assert total >= len(records), metrics[-2000:]
    assert count < total, "no two requests were ever scored together"
