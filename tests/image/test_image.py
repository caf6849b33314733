"""The OCI image (``make image-test``; skipped otherwise): build or reuse it, run it, call every endpoint.

``packaging/build_image.sh`` builds the image from a Bento of this session's model store, or
reuses an image of identical content (see ``packaging/bento_image.py fingerprint``). podman
runs it hardened, as a platform would: read-only root file system with tmpfs on the only two
paths it writes (:data:`WRITABLE`), a random non-root UID with group 0 (OpenShift), no volume,
so it serves from the Bento's own files; every endpoint's answer over HTTP
(``bentoml.SyncHTTPClient``, with the suite's API token) must equal the in-process service's
(the ``svc`` fixture). The image's make-up is checked too: layers and size, labels, health
check, port, no package manager or compiler, no third-party tests or training code, the SBOM.
Build time, time to ready and the layers' sizes are printed.
"""

import importlib.util
import json
import os
import random
import re
import socket
import subprocess
import time
import urllib.error
import urllib.request
from importlib import metadata
from pathlib import Path

import bentoml
import pandas as pd
import pytest
from packaging.utils import canonicalize_name

from tests.conftest import API_TOKEN
from tests.utils.payloads import EXAMPLES, mri_test_image
from vitalcheck import __version__
from vitalcheck.catalog import MODELS, TABULAR_MODELS
from vitalcheck.schemas.fitbit import FitbitInput
from vitalcheck.schemas.hospital import HospitalQuery
from vitalcheck.training.loaders import data_file, load

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        os.environ.get("VITALCHECK_IMAGE_TEST") != "1",
        reason="builds and runs the OCI image (minutes): run `make image-test`",
    ),
]

ROOT = Path(__file__).resolve().parents[2]
CONTAINERS = ROOT / "packaging" / "containers.sh"
IMAGE = os.environ.get("VITALCHECK_IMAGE", "localhost/vitalcheck") + ":latest"
BENTO_PATH = "/home/bentoml/bento"
BUILD_TIMEOUT_S = 3600
READY_TIMEOUT_S = 300  # two shared cores under load: 50-125 s seen
STATE = Path(os.environ.get("VITALCHECK_IMAGE_STATE", "/var/lib/vitalcheck-image"))
SBOM = Path(os.environ.get("VITALCHECK_SBOM", ROOT / "build" / "sbom.cdx.json"))
MAX_IMAGE_MB = 600
# The only paths the service writes at run time (docs/SHIPPING.md): tmpfs, the root read-only.
WRITABLE = ("/tmp", "/home/bentoml/prometheus_multiproc_dir")
# A UID the image does not know, as OpenShift assigns them, with group 0.
RUN_USER = f"{random.randint(100000, 999999)}:0"
NO_TOKEN_WARNING = re.compile(r"WARNING.*VITALCHECK_API_TOKEN is not set")


def hardened(*args: str) -> list[str]:
    """`podman run` options of a hardened run: read-only root, tmpfs on WRITABLE only, random UID."""
    options = ["--read-only", "--read-only-tmpfs=false", "--user", RUN_USER, "--cap-drop", "all"]
    options += ["--security-opt", "no-new-privileges"]
    for path in WRITABLE:
        options += ["--tmpfs", f"{path}:rw,size=64m,mode=1777"]
    return [*options, *args]


def _load_bento_image_module():
    # packaging/ is not a Python package (its name would shadow PyPI's `packaging`): load by path.
    spec = importlib.util.spec_from_file_location("bento_image", ROOT / "packaging" / "bento_image.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def podman(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run podman in VitalCheck's container environment (private vfs store, containers.conf)."""
    result = subprocess.run(
        [str(CONTAINERS), "podman", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    return result


def report(config, line: str) -> None:
    """Print a figure on the terminal, past pytest's output capture."""
    with config.pluginmanager.getplugin("capturemanager").global_and_fixture_disabled():
        print(f"\n[image] {line}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_status(url: str, token: str | None = None) -> int:
    request = urllib.request.Request(url, method="POST" if "/api/" in url else "GET")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return 0


@pytest.fixture(scope="module")
def image(model_store, pytestconfig):
    """Build (or reuse) the image from a Bento of this session's model store."""
    start = time.monotonic()
    result = subprocess.run(
        [str(ROOT / "packaging" / "build_image.sh")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    report(pytestconfig, f"build_image.sh took {time.monotonic() - start:.0f} s")
    for line in result.stderr.splitlines():
        if line.startswith(("image:", "bento:", "lock:", "base image:")):
            report(pytestconfig, line)
    return IMAGE


@pytest.fixture(scope="module")
def container(image, pytestconfig):
    """The image running on a published port of 127.0.0.1, with the suite's API token; removed after."""
    port = free_port()
    name = f"vitalcheck-image-test-{os.getpid()}"
    start = time.monotonic()
    podman(
        "run", "--detach", "--pull=never", "--name", name,
        "--publish", f"127.0.0.1:{port}:3000",
        "--env", f"VITALCHECK_API_TOKEN={API_TOKEN}",
        *hardened(image),
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        while http_status(f"{url}/readyz") != 200:
            state = podman("inspect", "--format", "{{.State.Status}}", name, check=False).stdout.strip()
            if state != "running" or time.monotonic() - start > READY_TIMEOUT_S:
                logs = podman("logs", name, check=False)
                pytest.fail(
                    f"container {state}, not ready after {time.monotonic() - start:.0f} s:\n{logs.stdout[-4000:]}{logs.stderr[-4000:]}"
                )
            time.sleep(0.5)
        report(pytestconfig, f"ready {time.monotonic() - start:.1f} s after `podman run`")
        yield name, url
    finally:
        stopped = time.monotonic()
        podman("stop", "--time", "20", name, check=False, timeout=60)
        report(pytestconfig, f"stopped in {time.monotonic() - stopped:.1f} s")
        podman("rm", "--force", name, check=False)


@pytest.fixture(scope="module")
def client(container):
    _, url = container
    with bentoml.SyncHTTPClient(url, token=API_TOKEN, server_ready_timeout=READY_TIMEOUT_S) as c:
        yield c


def exec_python(container, code: str) -> str:
    name, _ = container
    return podman("exec", "--workdir", f"{BENTO_PATH}/src", name, "python", "-c", code).stdout


def same_answer(over_http, in_process, tol: float = 1e-9) -> None:
    """Equal JSON, floats within tol; model-store tags (``name:version``) compared by name only.

    A reused image serves the tags of the store it was built from, not this session's.
    """
    if isinstance(over_http, dict):
        assert over_http.keys() == in_process.keys()
        store_tag = ":" in str(over_http.get("tag", ""))
        for key in over_http:
            if store_tag and key == "tag":
                assert over_http[key].split(":")[0] == in_process[key].split(":")[0]
            elif store_tag and key == "version":
                assert over_http["tag"] == f"{over_http['tag'].split(':')[0]}:{over_http[key]}"
            else:
                same_answer(over_http[key], in_process[key], tol)
    elif isinstance(over_http, list):
        assert len(over_http) == len(in_process)
        for a, b in zip(over_http, in_process, strict=True):
            same_answer(a, b, tol)
    elif isinstance(over_http, float) or isinstance(in_process, float):
        assert over_http == pytest.approx(in_process, abs=tol)
    else:
        assert over_http == in_process


def dumped(model) -> dict:
    return model.model_dump(mode="json")


# ---- the image itself ---------------------------------------------------------------------------


def inspect(image: str) -> dict:
    return json.loads(podman("image", "inspect", image).stdout)[0]


def test_runs_as_a_non_root_user(image, container):
    name, _ = container
    user = podman("image", "inspect", "--format", "{{.Config.User}}", image).stdout.strip()
    assert user and user not in ("root", "0") and not user.startswith("0:")
    assert podman("exec", name, "id", "-u").stdout.strip() != "0"
    # ...and the container runs (it answered /readyz) under the random UID, group 0.
    assert podman("exec", name, "id", "-u").stdout.strip() == RUN_USER.split(":")[0]
    assert podman("exec", name, "id", "-g").stdout.strip() == "0"


def test_root_file_system_is_read_only_and_only_the_tmpfs_are_written(container):
    name, _ = container
    assert podman("inspect", "--format", "{{.HostConfig.ReadonlyRootfs}}", name).stdout.strip() == "true"
    for path in ("/home/bentoml/x", f"{BENTO_PATH}/x", "/app/.venv/x", "/var/tmp/x", "/run/x"):
        assert podman("exec", name, "touch", path, check=False).returncode != 0, path
    # BentoML wrote its worker metrics where the tmpfs is; nothing else under BENTOML_HOME.
    written = podman("exec", name, "find", *WRITABLE, "-mindepth", "1", "-maxdepth", "1").stdout.split()
    assert any(p.startswith(WRITABLE[1] + "/") for p in written), written
    home = podman("exec", name, "find", "/home/bentoml", "-mindepth", "1", "-maxdepth", "1").stdout.split()
    assert sorted(home) == sorted(
        f"/home/bentoml/{d}" for d in ("bento", "bentos", "envs", "models", "prometheus_multiproc_dir", "tmp")
    )


def test_image_make_up(image, pytestconfig):
    """Layers in order (base, dependencies, code, models) and the size target; labels, port, health check."""
    info = inspect(image)
    history = json.loads(podman("history", "--format", "json", image).stdout)
    layers = [(h["size"], h.get("CreatedBy", h.get("createdBy", ""))) for h in reversed(history) if h["size"] > 0]
    for size, created_by in layers:
        report(pytestconfig, f"layer {size / 1e6:8.1f} MB  {created_by[:90]}")
    report(pytestconfig, f"image {info['Size'] / 1e6:.1f} MB in {len(info['RootFS']['Layers'])} layers")
    assert info["Size"] <= MAX_IMAGE_MB * 1e6
    assert len(info["RootFS"]["Layers"]) == 4
    assert "/app/.venv" in layers[1][1] and "bento/" in layers[2][1] and "models/" in layers[3][1]
    # The base, by the digest recorded when it was made (it is the image's first layer).
    base_digest = (STATE / "base.digest").read_text().strip()
    labels = info["Labels"]
    assert labels["org.opencontainers.image.base.digest"] == base_digest
    base = inspect(f"{labels['org.opencontainers.image.base.name']}@{base_digest}")
    assert info["RootFS"]["Layers"][0] == base["RootFS"]["Layers"][0]
    # OCI labels.
    assert labels["org.opencontainers.image.title"] == "VitalCheck"
    assert labels["org.opencontainers.image.version"] == __version__
    revision = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    assert labels["org.opencontainers.image.revision"].removesuffix("-dirty") == revision
    for key in ("source", "created", "licenses", "description"):
        assert labels[f"org.opencontainers.image.{key}"], key
    # Only the port that listens; the health check (Docker image format) on /readyz.
    config = info["Config"]
    assert set(config["ExposedPorts"]) == {"3000/tcp"}
    healthcheck = info.get("HealthCheck") or info.get("Healthcheck") or config.get("Healthcheck")
    assert healthcheck and "/readyz" in " ".join(healthcheck["Test"])
    assert (
        podman("image", "inspect", "--format", "{{.ManifestType}}", image)
        .stdout.strip()
        .endswith("docker.distribution.manifest.v2+json")
    )


def test_health_check_passes(container):
    name, _ = container
    assert podman("healthcheck", "run", name, check=False).returncode == 0


def test_slim_no_package_manager_compiler_tests_or_training_code(container):
    name, _ = container
    script = (
        "for p in apt apt-get dpkg pip pip3 uv gcc cc c++ g++ make git; do command -v $p; done;"
        "ls -d /var/lib/apt /var/cache/apt /root/.cache /home/bentoml/.cache 2>/dev/null;"
        "find /app/.venv -type d -name tests;"
        f"ls -d {BENTO_PATH}/src/vitalcheck/training {BENTO_PATH}/src/vitalcheck/batch 2>/dev/null; true"
    )
    assert podman("exec", name, "sh", "-c", script).stdout.split() == []
    # Every model folder readable by any UID (the model store makes them 0700).
    modes = podman("exec", name, "find", f"{BENTO_PATH}/models", "-type", "d", "-not", "-perm", "-0055").stdout
    assert modes.split() == []


def test_sbom_lists_the_installed_packages(container):
    """build/sbom.cdx.json (CycloneDX, written by make image) lists every package of /app/.venv."""
    document = json.loads(SBOM.read_text())
    assert document["bomFormat"] == "CycloneDX"
    python = [c for c in document["components"] if c.get("purl", "").startswith("pkg:pypi/")]
    listed = {canonicalize_name(c["name"]): c["version"] for c in python}
    code = "import json; from importlib import metadata as m; print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()}))"
    installed = {canonicalize_name(name): version for name, version in json.loads(exec_python(container, code)).items()}
    assert installed and listed == installed
    # ...and the base's Debian packages.
    assert any(c.get("purl", "").startswith("pkg:deb/debian/python3.11@") for c in document["components"])


def test_serves_from_the_bentos_files_only(container):
    name, _ = container
    mounts = json.loads(podman("inspect", "--format", "{{json .Mounts}}", name).stdout) or []
    assert [m for m in mounts if m.get("Type") != "tmpfs"] == []
    paths = json.loads(
        exec_python(
            container,
            "import json; from vitalcheck.settings import get_settings as g; s = g();"
            "print(json.dumps({k: str(getattr(s, k).resolve()) for k in ('reference_dir', 'artifacts_dir')}))",
        )
    )
    assert paths["reference_dir"] == f"{BENTO_PATH}/src/reference"
    assert paths["artifacts_dir"].startswith(f"{BENTO_PATH}/")
    listing = podman("exec", name, "ls", f"{BENTO_PATH}/models", f"{BENTO_PATH}/src/reference").stdout.split()
    assert {spec.store_name for spec in MODELS.values()} <= set(listing)
    # The models come from the Bento: the model store in BENTOML_HOME (/home/bentoml/models,
    # which BentoML creates at start-up) stays empty.
    stray = podman("exec", name, "find", "/home/bentoml/models", "-mindepth", "1", check=False).stdout
    assert stray == ""


def test_package_versions_equal_the_development_environment(container):
    critical = _load_bento_image_module().CRITICAL
    code = f"import json; from importlib import metadata as m; print(json.dumps({{p: m.version(p) for p in {list(critical)!r}}}))"
    in_image = json.loads(exec_python(container, code))
    assert in_image == {package: metadata.version(package) for package in critical}


@pytest.fixture(scope="module")
def refused_start(image, container, tmp_path_factory):
    """A run with a corrupt ``diabetes_pipeline.pkl`` mounted over the Bento's, hardened, without a token.

    Returns its exit status and log.
    """
    name, _ = container
    stored = podman("exec", name, "sh", "-c", f"ls {BENTO_PATH}/models/vitalcheck-diabetes/*/diabetes_pipeline.pkl")
    damaged = tmp_path_factory.mktemp("damaged") / "diabetes_pipeline.pkl"
    damaged.write_bytes(b"not a pickle")
    damaged.chmod(0o644)
    refused = f"{name}-refused"
    podman(
        "run", "--detach", "--pull=never", "--name", refused,
        "--volume", f"{damaged}:{stored.stdout.strip()}:ro", *hardened(image),
    )  # fmt: skip
    try:
        status = podman("wait", refused, timeout=READY_TIMEOUT_S).stdout.strip()
        logs = podman("logs", refused, check=False)
        return status, logs.stdout + logs.stderr
    finally:
        podman("rm", "--force", refused, check=False)


def test_refuses_to_start_with_a_damaged_artifact(refused_start):
    """The start-up check runs in the image: a corrupt model file stops the container, naming it."""
    status, output = refused_start
    assert status not in ("", "0"), output
    assert "refuses to start" in output and "diabetes_pipeline.pkl" in output, output


def test_warns_at_start_up_when_no_token_is_set(container, refused_start):
    """A WARNING in the log when VITALCHECK_API_TOKEN is unset (the refused run has none), none when set."""
    _, output = refused_start
    assert NO_TOKEN_WARNING.search(output), output
    name, _ = container
    logs = podman("logs", name, check=False)
    assert not NO_TOKEN_WARNING.search(logs.stdout + logs.stderr)


def test_health_is_open_and_the_api_needs_the_token(container):
    _, url = container
    assert http_status(f"{url}/livez") == 200
    assert http_status(f"{url}/readyz") == 200
    assert http_status(f"{url}/metrics") == 200
    assert http_status(f"{url}/api/v1/models") == 401
    assert http_status(f"{url}/api/v1/models", token=API_TOKEN) == 200


# ---- every endpoint equals the in-process service -----------------------------------------------


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_single_record_equals_in_process(client, svc, service_module, name):
    record = service_module.INPUT_MODELS[name].model_validate(EXAMPLES[name])
    same_answer(getattr(client, name)(EXAMPLES[name]), dumped(svc.api.single(name, record)))


@pytest.mark.parametrize("name", list(TABULAR_MODELS))
def test_batch_and_file_equal_in_process(client, svc, service_module, data_dir, tmp_path, name):
    X, _ = load(name, data_file(name, data_dir))
    rows = X.sample(5, random_state=1)
    records = [EXAMPLES[name], *rows.astype(object).where(rows.notna(), None).to_dict("records")]
    validated = [service_module.INPUT_MODELS[name].model_validate(r) for r in records]
    over_http = getattr(client, f"{name}_batch")({"records": records})
    same_answer(over_http, dumped(svc.api.batch(name, validated)))

    upload = tmp_path / f"{name}.csv"
    pd.read_csv(data_file(name, data_dir)).head(20).to_csv(upload, index=False)
    over_http = getattr(client, f"{name}_file")(file=upload)
    assert len(over_http["predictions"]) == 20
    same_answer(over_http, dumped(svc.api.file(name, upload)))


def test_image_tables_and_models_equal_in_process(client, svc, data_dir):
    for label in ("glioma", "notumor"):
        image = mri_test_image(data_dir, label)
        same_answer(client.brain_tumor(image=image), dumped(svc.api.brain_tumor(image)), tol=1e-6)
    day = {"total_steps": 8500, "very_active_minutes": 25, "sedentary_minutes": 720, "minutes_asleep": 420}
    same_answer(client.fitbit_percentiles(day), dumped(svc.api.fitbit(FitbitInput(**day))))
    query = {"service": "ICU", "week_from": 1, "week_to": 8}
    same_answer(client.hospital_analytics(query), dumped(svc.api.hospital(HospitalQuery(**query))))
    same_answer(client.models(), dumped(svc.api.models()))
