"""The kustomize base under deploy/k8s: Kubernetes schemas (offline), security, probes, drain, sizing.

The schemas come with ``kubernetes-validate`` (bundled, no network). When ``kubectl`` is on the
PATH, the base is also rendered with ``kubectl kustomize`` (offline) and the rendered objects are
validated, as well as an overlay that creates the token Secret with a secretGenerator.
"""

import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BASE = ROOT / "deploy" / "k8s"
KUBERNETES_VERSIONS = ("1.30", "1.33", "1.37")
"""Oldest supported (the preStop ``sleep`` action is on by default from 1.30), a middle one, newest bundled."""

# ---- measured figures: `make cluster-test` of 2026-12-01 on this 2-core machine (commit ed94dc2 and
# the changes then in progress), one `bentoml serve` with 2 workers; docs/DEPLOY.md "Sizing" ----
SERVING_RSS_MIB = 76.8
"""RSS of the `bentoml serve` serving process (it loads no model), after warm-up."""
WORKER_RSS_MIB = 330.7
"""RSS of one worker (all eight models and both tables) after a few requests to every endpoint."""
WORKER_PEAK_RSS_MIB = 401.7
"""RSS of a worker after a 10,000-record batch and a 5,110-row file upload (the largest usual requests)."""
MEMORY_LIMIT_HEADROOM = 1.25
"""Margin above the peak for a limit: allocator fragmentation, two large requests at once."""
CPU_PER_WORKER = 1
"""Cores per worker: a worker computes on one thread (VITALCHECK_COMPUTE_THREADS=1, ONNX 1 thread)."""


def ceil_to(value: float, step: int) -> int:
    return int(math.ceil(value / step) * step)


def load(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


@pytest.fixture(scope="module")
def kustomization():
    return yaml.safe_load((BASE / "kustomization.yaml").read_text())


@pytest.fixture(scope="module")
def objects(kustomization):
    docs = [doc for name in kustomization["resources"] for doc in load(BASE / name)]
    return {doc["kind"]: doc for doc in docs}


@pytest.fixture(scope="module")
def pod(objects):
    return objects["Deployment"]["spec"]["template"]["spec"]


@pytest.fixture(scope="module")
def container(pod):
    (only,) = pod["containers"]
    return only


def env_of(container) -> dict:
    return {item["name"]: item for item in container["env"]}


def mib(quantity: str) -> float:
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024, "K": 1000 / 2**20, "M": 10**6 / 2**20, "G": 10**9 / 2**20}
    number, unit = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", str(quantity)).groups()
    return float(number) * (units[unit] if unit else 1 / 2**20)


def cores(quantity) -> float:
    text = str(quantity)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


def request_timeout_s() -> int:
    """The service's request timeout, read from service.py (``traffic={"timeout": N}``)."""
    match = re.search(r"""traffic\s*=\s*\{\s*["']timeout["']\s*:\s*(\d+)""", (ROOT / "service.py").read_text())
    assert match, "service.py no longer declares traffic={'timeout': N}: update the drain check"
    return int(match.group(1))


# ---- schemas ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kubernetes_validate():
    return pytest.importorskip("kubernetes_validate", reason="pip install kubernetes-validate (the test extra)")


def test_the_base_lists_every_manifest(kustomization):
    listed = set(kustomization["resources"])
    on_disk = {p.name for p in BASE.glob("*.yaml")} - {"kustomization.yaml", "secret.example.yaml"}
    assert listed == on_disk
    assert "secret.example.yaml" not in listed, "the token must not come from a file in the repository"


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_manifest_validates_against_the_kubernetes_schemas(kubernetes_validate, version):
    files = sorted(BASE.glob("*.yaml"))
    checked = 0
    for path in files:
        if path.name == "kustomization.yaml":
            continue
        for doc in load(path):
            kubernetes_validate.validate(doc, version, strict=True)
            checked += 1
    assert checked == 5  # Deployment, Service, HPA, PDB, the example Secret


def test_the_validator_rejects_a_broken_manifest(kubernetes_validate, objects):
    import copy

    broken = copy.deepcopy(objects["Deployment"])
    broken["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesytem"] = True  # typo
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[0], strict=True)


def kustomize(path: Path) -> list[dict]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl (with its built-in kustomize) is not installed")
    result = subprocess.run([kubectl, "kustomize", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def test_the_rendered_base_validates(kubernetes_validate):
    rendered = kustomize(BASE)
    assert sorted(d["kind"] for d in rendered) == [
        "Deployment",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "Service",
    ]
    for doc in rendered:
        kubernetes_validate.validate(doc, KUBERNETES_VERSIONS[-1], strict=True)
    (deployment,) = [d for d in rendered if d["kind"] == "Deployment"]
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "localhost/vitalcheck:latest"


def test_an_overlay_can_create_the_secret(kubernetes_validate, tmp_path):
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    (overlay / "token.env").write_text("token=" + "x" * 32 + "\n")
    shutil.copytree(BASE, tmp_path / "base")
    (overlay / "kustomization.yaml").write_text(
        "resources:\n  - ../base\n"
        "secretGenerator:\n  - name: vitalcheck-api-token\n    envs:\n      - token.env\n"
        "images:\n  - name: localhost/vitalcheck\n    newName: registry.example/vitalcheck\n    newTag: 1.0.0\n"
    )
    rendered = kustomize(overlay)
    secret = next(d for d in rendered if d["kind"] == "Secret")
    deployment = next(d for d in rendered if d["kind"] == "Deployment")
    reference = env_of(deployment["spec"]["template"]["spec"]["containers"][0])["VITALCHECK_API_TOKEN"]
    # kustomize renames the generated Secret (content hash) and rewrites the reference to it.
    assert secret["metadata"]["name"].startswith("vitalcheck-api-token-")
    assert reference["valueFrom"]["secretKeyRef"]["name"] == secret["metadata"]["name"]
    assert reference["valueFrom"]["secretKeyRef"]["key"] == "token"
    # Regression (new-user trial): the base renamed the image first, so the overlay's rename matched nothing.
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.example/vitalcheck:1.0.0"
    for doc in rendered:
        kubernetes_validate.validate(doc, KUBERNETES_VERSIONS[-1], strict=True)


# ---- security -------------------------------------------------------------------------------------


def test_the_pod_runs_non_root_read_only_without_privileges(pod, container):
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    context = container["securityContext"]
    assert context["runAsNonRoot"] is True
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context.get("privileged", False) is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert "add" not in context["capabilities"]
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}


def test_the_token_comes_from_a_secret_that_must_exist(container):
    reference = env_of(container)["VITALCHECK_API_TOKEN"]
    assert "value" not in reference, "the token must not be written into the manifest"
    secret_ref = reference["valueFrom"]["secretKeyRef"]
    assert secret_ref.get("optional", False) is False, "deny by default: no pod without the token"
    (example,) = load(BASE / "secret.example.yaml")
    assert secret_ref["name"] == example["metadata"]["name"]
    assert secret_ref["key"] in example["stringData"]


def bentoml_writable_dirs(tmp_path: Path) -> set[str]:
    """The folders under BENTOML_HOME that bentoml serve creates or writes, asked of BentoML itself."""
    home = tmp_path / "home"
    script = (
        "import os, sys\n"
        "os.environ['BENTOML_HOME'] = sys.argv[1]\n"
        "from bentoml._internal.configuration.containers import BentoMLContainer\n"
        "BentoMLContainer.bentoml_home.get()\n"  # creates bentos/, models/, envs/, tmp/ when missing
        "print(BentoMLContainer.prometheus_multiproc_dir.get())\n"  # emptied and refilled by bentoml serve
    )
    result = subprocess.run([sys.executable, "-c", script, str(home)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    created = {p.name for p in home.iterdir() if p.is_dir()}
    created.add(Path(result.stdout.strip().splitlines()[-1]).name)
    return created


def test_emptydirs_cover_every_path_bentoml_writes(pod, container, tmp_path):
    empty = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert all(m["name"] in empty for m in mounts.values()), "only emptyDir volumes are writable"
    assert "/tmp" in mounts
    assert env_of(container)["TMPDIR"]["value"] == "/tmp"
    assert env_of(container)["XDG_CACHE_HOME"]["value"].startswith("/tmp/")
    home = "/home/bentoml"  # the image's BENTOML_HOME (BentoML's Dockerfile template)
    needed = bentoml_writable_dirs(tmp_path)
    assert needed >= {"bentos", "models", "envs", "tmp", "prometheus_multiproc_dir"}
    for name in needed:
        assert f"{home}/{name}" in mounts, f"{home}/{name} is written by bentoml serve but not mounted"
    assert home not in mounts and f"{home}/bento" not in mounts, "the Bento itself stays read-only"
    sizes = {v["name"]: v["emptyDir"].get("sizeLimit") for v in pod["volumes"] if "emptyDir" in v}
    assert all(sizes.values()), "every emptyDir has a sizeLimit"
    assert mib(sizes[mounts["/tmp"]["name"]]) >= 25 * 4, "room for a few 25 MiB uploads spooled at once"


# ---- probes and drain ---------------------------------------------------------------------------------


def test_probes_use_the_health_endpoints(container):
    port = container["ports"][0]
    assert port["containerPort"] == 3000 and port["name"] == "http"
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "http"}
    startup = container["startupProbe"]
    assert startup["httpGet"]["path"] in ("/readyz", "/livez")
    # 10-35 s to ready under bentoml serve on a busy 2-core machine (deploy/cluster_test.py), up to
    # 125 s for the image under podman on a loaded machine (tests/image): allow at least 150 s.
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 150
    # Liveness must not kill a worker that is busy with a long batch: several seconds of slack.
    live = container["livenessProbe"]
    assert live["timeoutSeconds"] * live["failureThreshold"] >= 10


def test_the_grace_period_outlasts_the_pre_stop_delay_and_the_drain(pod, container):
    pre_stop = container["lifecycle"]["preStop"]
    if "sleep" in pre_stop:
        delay = pre_stop["sleep"]["seconds"]
    else:
        command = pre_stop["exec"]["command"]
        assert command[0] == "sleep"
        delay = int(command[1])
    assert delay >= 5, "long enough for the endpoint removal to reach the proxies"
    assert pod["terminationGracePeriodSeconds"] > delay + request_timeout_s()


def test_rolling_updates_never_drop_below_the_replica_count(objects):
    strategy = objects["Deployment"]["spec"]["strategy"]
    assert strategy["type"] == "RollingUpdate"
    assert strategy["rollingUpdate"]["maxUnavailable"] == 0


# ---- sizing -------------------------------------------------------------------------------------------


def test_workers_follow_the_cpu_limit(container):
    workers = env_of(container)["VITALCHECK_WORKERS"]["valueFrom"]["resourceFieldRef"]
    assert workers["resource"] == "limits.cpu"
    assert workers.get("containerName", container["name"]) == container["name"]
    assert str(workers.get("divisor", "1")) == "1", "whole cores, rounded up by the kubelet"


def test_resources_match_the_measured_figures(container):
    resources = container["resources"]
    workers = math.ceil(cores(resources["limits"]["cpu"]))  # what VITALCHECK_WORKERS gets
    assert cores(resources["requests"]["cpu"]) == workers * CPU_PER_WORKER
    assert cores(resources["limits"]["cpu"]) == workers * CPU_PER_WORKER
    warm = SERVING_RSS_MIB + workers * WORKER_RSS_MIB
    peak = SERVING_RSS_MIB + workers * WORKER_PEAK_RSS_MIB
    assert mib(resources["requests"]["memory"]) == ceil_to(warm, 64)
    assert mib(resources["limits"]["memory"]) == ceil_to(peak * MEMORY_LIMIT_HEADROOM, 128)


# ---- service, autoscaler, disruption budget ------------------------------------------------------------


def test_service_hpa_and_pdb_select_the_pods(objects, container):
    labels = objects["Deployment"]["spec"]["template"]["metadata"]["labels"]
    selector = objects["Deployment"]["spec"]["selector"]["matchLabels"]
    assert selector.items() <= labels.items()
    service = objects["Service"]["spec"]
    assert service["selector"].items() <= labels.items()
    assert service["ports"][0]["targetPort"] in (container["ports"][0]["name"], container["ports"][0]["containerPort"])
    pdb = objects["PodDisruptionBudget"]["spec"]
    assert pdb["selector"]["matchLabels"].items() <= labels.items()
    hpa = objects["HorizontalPodAutoscaler"]
    assert hpa["apiVersion"] == "autoscaling/v2"
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", objects["Deployment"]["metadata"]["name"])
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert "replicas" not in objects["Deployment"]["spec"], "the autoscaler owns the replica count"
    # The budget must let a node drain proceed: fewer pods required than the autoscaler's minimum.
    assert pdb["minAvailable"] < hpa["spec"]["minReplicas"]
