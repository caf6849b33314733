"""Shared fixtures.

Everything the suite writes outside the repository goes into one temporary folder, made here and
removed when pytest exits: BENTOML_HOME (so tests never touch the user's model store), pytest's
tmp_path, and, through TMPDIR, whatever BentoML, its clients and the servers the tests start put in
the temporary folder (sockets, client downloads, logs).
"""

import os
import shutil
import tempfile

SESSION_TMP = tempfile.mkdtemp(prefix="vitalcheck-test-")
os.environ["TMPDIR"] = SESSION_TMP
tempfile.tempdir = SESSION_TMP
os.environ["BENTOML_HOME"] = os.path.join(SESSION_TMP, "bentoml")
os.environ["XDG_CACHE_HOME"] = os.path.join(SESSION_TMP, "cache")  # ONNX Runtime writes a device id there
os.environ["MPLCONFIGDIR"] = os.path.join(SESSION_TMP, "matplotlib")  # else matplotlib makes ~/.config/matplotlib
os.environ["BENTOML_DO_NOT_TRACK"] = "True"
# As in the service (vitalcheck/threads.py): one native thread, set before NumPy and OpenMP load.
for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")
# The whole suite runs with authentication on and a small body limit, as a careful deployment would.
API_TOKEN = "vitalcheck-test-token-0123456789"
os.environ["VITALCHECK_API_TOKEN"] = API_TOKEN
os.environ["VITALCHECK_MAX_REQUEST_BYTES"] = str(4 * 1024 * 1024)
# Short header and body deadlines, so that the slow-client tests of real servers finish quickly.
os.environ["VITALCHECK_HEADER_TIMEOUT_S"] = "3"
os.environ["VITALCHECK_BODY_TIMEOUT_S"] = "3"

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from vitalcheck.catalog import MODELS  # noqa: E402
from vitalcheck.settings import get_settings  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def pytest_unconfigure(config):
    shutil.rmtree(SESSION_TMP, ignore_errors=True)


@pytest.fixture(scope="session")
def settings():
    return get_settings()


@pytest.fixture(scope="session")
def data_dir(settings):
    if not (settings.data_dir / "README.md").is_file():
        pytest.skip(f"shared data directory {settings.data_dir} is absent (set VITALCHECK_DATA_DIR)")
    return settings.data_dir


@pytest.fixture(scope="session")
def artifacts_dir(settings):
    missing = [s.artifact for s in MODELS.values() if not (settings.artifacts_dir / s.artifact).is_file()]
    if missing:
        pytest.skip(f"artifacts {missing} are missing: run `make models` first")
    return settings.artifacts_dir


@pytest.fixture(scope="session")
def model_store(artifacts_dir):
    """Register all eight artifacts in the temporary model store (once per session)."""
    import import_models

    assert import_models.main(["--artifacts-dir", str(artifacts_dir)]) == 0
    return Path(os.environ["BENTOML_HOME"])


@pytest.fixture(scope="session")
def service_module(model_store):
    import service

    return service


@pytest.fixture(scope="session")
def svc(service_module):
    """The service class instantiated in-process (loads every artifact once)."""
    return service_module.VitalCheck()


@pytest.fixture(scope="session")
def http(service_module):
    """Starlette TestClient over the service's ASGI app (runs the lifespan, so __init__ runs)."""
    from starlette.testclient import TestClient

    app = service_module.VitalCheck.to_asgi()
    headers = {"Authorization": f"Bearer {API_TOKEN}"}
    with TestClient(app, raise_server_exceptions=False, headers=headers) as client:
        yield client
