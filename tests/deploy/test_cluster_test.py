"""The parts of deploy/cluster_test.py that can be checked quickly (its full run: `make cluster-test`)."""

import shutil
import subprocess
import sys
import time
from argparse import Namespace

import psutil
import pytest

from deploy import cluster_test


def test_its_haproxy_configuration_is_accepted(tmp_path):
    haproxy = shutil.which("haproxy")
    if haproxy is None:
        pytest.skip("HAProxy is not installed (apt-get install haproxy)")
    models = tmp_path / "models"
    models.mkdir()
    replicas = [cluster_test.Replica(i, tmp_path, models, {}) for i in range(3)]
    args = Namespace(haproxy=haproxy, inter_ms=1000, fall=2, rise=2, check_timeout_ms=500, passive_checks=True)
    balancer = cluster_test.HAProxy(tmp_path, replicas, args)
    try:
        config = balancer.config.read_text()
        assert "http-check send meth GET uri /readyz" in config
        assert config.count("    server r") == 3
        result = subprocess.run([haproxy, "-c", "-f", str(balancer.config)], capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, result.stdout + result.stderr
    finally:
        balancer.stop()  # removes the socket's folder when it had to be made outside tmp_path


def test_its_haproxy_log_is_read_by_request_id(tmp_path):
    balancer = object.__new__(cluster_test.HAProxy)
    balancer.log_path = tmp_path / "haproxy.log"
    balancer.log_path.write_text(
        "1796163470.654 r2 502 SH-- 0 141 7-a-270\n"
        "[WARNING]  (1) : Server replicas/r2 is DOWN, reason: Layer4 connection problem.\n"
        "1796163470.671 r1 200 ---- +1 45 7-a-271\n"
    )
    lines = balancer.log_lines()
    assert [(line.server, line.status, line.termination, line.retries) for line in lines] == [
        ("r2", 502, "SH--", "0"),
        ("r1", 200, "----", "+1"),
    ]
    assert lines[0].accepted == pytest.approx(1796163470.654) and lines[1].request_id == "7-a-271"


def test_the_load_mix_is_made_of_valid_requests():
    from vitalcheck.schemas import INPUT_MODELS

    mix = cluster_test.request_mix()
    kinds = {kind for kind, *_ in mix}
    assert {"models", "insurance_batch_20"} <= kinds and len(kinds) >= 5
    for kind, path, body, _, weight in mix:
        assert path.startswith("/api/v1/") and weight >= 1
        if kind in INPUT_MODELS:
            INPUT_MODELS[kind].model_validate(body)
        elif kind.startswith("insurance_batch"):
            for record in body["records"]:
                INPUT_MODELS["insurance"].model_validate(record)


def test_stop_tree_leaves_no_process_of_another_session_behind():
    # Like bentoml serve, whose workers are session leaders of their own: the parent's group
    # does not contain the child, which would survive a signal to the group.
    script = (
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'], start_new_session=True)\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, start_new_session=True)
    child = psutil.Process(int(parent.stdout.readline()))
    try:
        assert child.pid in {p.pid for p in cluster_test.tree(parent.pid)}
        started = time.monotonic()
        cluster_test.stop_tree(parent, timeout=5)
        assert parent.poll() is not None
        child.wait(timeout=5)
        assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE
        assert time.monotonic() - started < 15
    finally:
        if child.is_running():
            child.kill()
        if parent.poll() is None:
            parent.kill()
            parent.wait(timeout=10)
        parent.stdout.close()
