"""Start, time, measure and stop the contenders' server processes (all on 127.0.0.1)."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent

THREAD_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
"""One native thread per process in every contender, as ``vitalcheck/threads.py`` sets for VitalCheck."""


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_status(port: int, path: str, timeout: float = 2.0) -> int | None:
    """Status of ``GET path`` on 127.0.0.1:port, or None when nothing answers."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path)
        return connection.getresponse().status
    except OSError:
        return None
    finally:
        connection.close()


@dataclass
class Server:
    """One contender's server process tree.

    Attributes:
        key: short name used in results ('reload', 'original', 'vitalcheck', ...).
        label: name shown in the report.
        command: argv, run from the repository root.
        env: extra environment variables.
        port: the port it listens on.
        log: file receiving its stdout and stderr.

    """

    key: str
    label: str
    command: list[str]
    env: dict[str, str]
    port: int
    log: Path
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """Base URL (127.0.0.1 only)."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, ready_timeout: float = 120.0) -> float:
        """Start the server and wait until ``GET /readyz`` answers 200.

        Returns:
            Seconds from process start to the first 200 from ``/readyz`` (polled every 20 ms).

        Raises:
            RuntimeError: the process exited or did not become ready in time (log tail attached).

        """
        env = {**os.environ, **THREAD_ENV, **self.env}
        env.pop("VITALCHECK_API_TOKEN", None)  # authentication off for the bench
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            started = time.perf_counter()
            self.process = subprocess.Popen(
                self.command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = started + ready_timeout
        while time.perf_counter() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.label} exited with {self.process.returncode}:\n{self.log_tail()}")
            if http_status(self.port, "/readyz", timeout=1.0) == 200:
                return time.perf_counter() - started
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"{self.label} not ready after {ready_timeout:.0f} s:\n{self.log_tail()}")

    def stop(self) -> None:
        """Stop the server and every descendant (SIGTERM, then SIGKILL after 20 s).

        BentoML starts its workers in sessions of their own, so the tree is collected by
        parent links before the main process is asked to stop, and stragglers are killed by pid.
        """
        if self.process is None or self.process.poll() is not None:
            return
        tree = self.processes()
        os.killpg(self.process.pid, signal.SIGTERM)
        _, alive = psutil.wait_procs(tree, timeout=20)
        for p in alive:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(alive, timeout=10)
        self.process.wait(timeout=10)

    def log_tail(self, chars: int = 3000) -> str:
        """The end of the server's log."""
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def processes(self) -> list[psutil.Process]:
        """The server's process and all its descendants."""
        if self.process is None:
            return []
        root = psutil.Process(self.process.pid)
        return [root, *root.children(recursive=True)]

    def cpu_seconds(self) -> float:
        """CPU time (user + system) used so far by the whole process tree."""
        total = 0.0
        for p in self.processes():
            try:
                times = p.cpu_times()
                total += times.user + times.system
            except psutil.NoSuchProcess:
                pass
        return total

    def memory(self) -> list[dict]:
        """Resident memory of every process in the tree.

        Returns:
            One dict per process: ``pid``, ``role`` (worker, serving main, ...), ``rss_mb`` and
            ``uss_mb`` (memory unique to the process, i.e. freed if it exited).

        """
        rows = []
        for p in self.processes():
            try:
                info = p.memory_full_info()
                cmdline = " ".join(p.cmdline())
            except psutil.NoSuchProcess:
                continue
            rows.append(
                {
                    "pid": p.pid,
                    "role": _role(cmdline),
                    "rss_mb": info.rss / 2**20,
                    "uss_mb": info.uss / 2**20,
                }
            )
        return rows


def _role(cmdline: str) -> str:
    """Name a process of a contender's tree from its command line."""
    if "_bentoml_impl.worker" in cmdline or "bentoml_impl/worker" in cmdline:
        return "worker"
    if "bentoml" in cmdline and " serve " in f"{cmdline} ":
        return "serving main (arbiter)"
    if "uvicorn" in cmdline:
        return "worker"
    if "prometheus" in cmdline:
        return "metrics"
    return cmdline.split(" ")[0].rsplit("/", 1)[-1][:40]


def uvicorn_server(key: str, label: str, module: str, log_dir: Path, env: dict[str, str] | None = None) -> Server:
    """A FastAPI contender under one uvicorn worker (uvicorn's defaults, access log on)."""
    port = free_port()
    command = [str(VENV_BIN / "python"), "-m", "uvicorn", f"{module}:app", "--host", "127.0.0.1", "--port", str(port)]
    return Server(key, label, command, env or {}, port, log_dir / f"{key}.log")


def bentoml_server(
    key: str, label: str, log_dir: Path, env: dict[str, str], target: str = "service:VitalCheck"
) -> Server:
    """VitalCheck (or a prototype variant) under ``bentoml serve``; ``env`` carries BENTOML_HOME / BENTOML_CONFIG."""
    port = free_port()
    command = [str(VENV_BIN / "bentoml"), "serve", target, "--host", "127.0.0.1", "--port", str(port)]
    return Server(key, label, command, env, port, log_dir / f"{key}.log")
