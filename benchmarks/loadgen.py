"""Closed-loop load with ``wrk``: ``concurrency`` connections, each sending its next request as soon
as the previous answer arrives, until a fixed number of responses has come back.

``wrk`` (C, one event-loop thread) is used rather than a Python client so that the load generator
costs little CPU on a 2-core machine; its own CPU time is recorded for every run, and its ceiling
is measured against each server's trivial endpoint. Install it with ``apt-get install wrk``.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from benchmarks.workloads import Workload

SCRIPT = Path(__file__).with_name("closed_loop.lua")


class LoadGeneratorMissing(RuntimeError):
    """``wrk`` is not installed."""


def wrk_path() -> str:
    """Path of the ``wrk`` binary.

    Raises:
        LoadGeneratorMissing: it is not on ``PATH``.

    """
    found = shutil.which("wrk")
    if not found:
        raise LoadGeneratorMissing("wrk is not installed: `apt-get install wrk` (Debian/Ubuntu), then re-run")
    return found


@dataclass
class LoadResult:
    """Figures of one closed-loop run.

    Attributes:
        requests: responses received.
        seconds: wall time of the run.
        rps: responses per second.
        p50_ms: median latency.
        p90_ms: 90th percentile latency.
        p99_ms: 99th percentile latency.
        max_ms: slowest response.
        errors: non-200 responses plus connection, read, write and timeout errors.
        error_detail: the error counts by kind.
        client_cpu_s: CPU seconds ``wrk`` used (user + system).

    """

    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: int
    error_detail: dict = field(default_factory=dict)
    client_cpu_s: float = 0.0

    def as_dict(self) -> dict:
        """Plain-dict form for the JSON results."""
        return asdict(self)


def run(base_url: str, workload: Workload, concurrency: int, requests: int, max_seconds: float) -> LoadResult:
    """Send ``requests`` copies of ``workload``'s request with ``concurrency`` connections.

    Args:
        base_url: e.g. ``http://127.0.0.1:8001`` (the load only ever targets 127.0.0.1).
        workload: the request to replay.
        concurrency: open connections, each with one request in flight.
        requests: stop after this many responses.
        max_seconds: hard limit on the run (a server that stops answering ends it here).

    Returns:
        The run's figures.

    Raises:
        RuntimeError: ``wrk`` failed or printed no result.

    """
    if not base_url.startswith("http://127.0.0.1:"):
        raise ValueError("load may only target 127.0.0.1")
    env = {
        **os.environ,
        "WRK_REQUESTS": str(requests),
        "WRK_BODY_FILE": workload.body_file,
        "WRK_METHOD": workload.method,
        "WRK_CONTENT_TYPE": workload.content_type,
    }
    command = [
        wrk_path(),
        "-t1",
        f"-c{concurrency}",
        f"-d{int(max_seconds)}s",
        f"--timeout={int(max_seconds)}s",
        "-s",
        str(SCRIPT),
        base_url + workload.path,
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    try:
        for line in process.stderr:
            if "WRK-LIMIT-REACHED" in line:
                process.send_signal(signal.SIGINT)
                break
        stdout, stderr = process.communicate(timeout=max_seconds + 30)
    finally:
        if process.poll() is None:  # interrupted: never leave wrk running
            process.kill()
            process.wait()
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    if process.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed (exit {process.returncode}): {stderr.strip()[-500:]} {stdout[-500:]}")
    data = json.loads(lines[-1])
    seconds = data["duration_us"] / 1e6 or wall
    errors = data["errors"]
    return LoadResult(
        requests=data["requests"],
        seconds=seconds,
        rps=data["requests"] / seconds,
        p50_ms=data["p50_us"] / 1000,
        p90_ms=data["p90_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        max_ms=data["max_us"] / 1000,
        errors=sum(errors.values()),
        error_detail=errors,
        client_cpu_s=(after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
    )
