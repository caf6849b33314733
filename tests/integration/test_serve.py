"""`bentoml serve` in a subprocess: the Python client against every endpoint, and start-up refusal."""

import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import bentoml
import pytest

from tests.conftest import API_TOKEN
from tests.utils.payloads import EXAMPLES, mri_test_image
from vitalcheck.catalog import TABULAR_MODELS
from vitalcheck.predictors.tabular import records_to_frame
from vitalcheck.training.loaders import data_file, load

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
BENTOML = str(Path(sys.executable).parent / "bentoml")
READY_TIMEOUT_S = 90


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int, env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [BENTOML, "serve", "service:VitalCheck", "--port", str(port), "--host", "127.0.0.1"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def stop(process: subprocess.Popen) -> str:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
    return process.stdout.read() if process.stdout else ""


@pytest.fixture(scope="module")
def client(model_store):
    port = free_port()
    process = start_server(port, dict(os.environ))
    try:
        url = f"http://127.0.0.1:{port}"
        with bentoml.SyncHTTPClient(url, server_ready_timeout=READY_TIMEOUT_S, token=API_TOKEN) as c:
            yield c
    finally:
        stop(process)


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


def tampered_store(tmp_path: Path, model_store: Path, how: str) -> Path:
    """A copy of the model store with the diabetes artifact damaged in one way."""
    home = tmp_path / "bentoml"
    shutil.copytree(model_store / "models", home / "models")
    stored = next((home / "models" / "vitalcheck-diabetes").glob("*/diabetes_pipeline.pkl"))
    if how == "missing":
        stored.unlink()
    elif how == "corrupt":
        stored.write_bytes(stored.read_bytes()[:100])
    else:  # checksum mismatch: a valid pickle of another model under this name
        heart = next((home / "models" / "vitalcheck-heart").glob("*/heart_pipeline.pkl"))
        shutil.copy(heart, stored)
    return home


@pytest.mark.parametrize("how", ["missing", "corrupt", "mismatch"])
def test_refuses_to_start_with_a_damaged_artifact(tmp_path, model_store, how):
    env = {**os.environ, "BENTOML_HOME": str(tampered_store(tmp_path, model_store, how))}
    process = start_server(free_port(), env)
    try:
        process.wait(timeout=READY_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"server with a {how} artifact did not exit within {READY_TIMEOUT_S} s:\n{stop(process)}")
    output = stop(process)
    assert process.returncode != 0, output
    assert "diabetes_pipeline.pkl" in output, output
    assert "refuses to start" in output
