"""`bentoml serve` in a subprocess, bound to 127.0.0.1: start, wait, stop, and damaged model stores.

Shared by tests/integration (start-up refusal, client round trips, log leaks) and by the
reliability scripts under reliability/ (fault injection, load, soak).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
BENTOML = str(Path(sys.executable).parent / "bentoml")
READY_TIMEOUT_S = 90
LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def start_server(port: int, env: dict, log=None, extra_args: tuple[str, ...] = ()) -> subprocess.Popen:
    """Start ``bentoml serve service:VitalCheck`` on 127.0.0.1:``port`` in its own process group.

    Args:
        port: loopback port.
        env: the whole environment of the server.
        log: a file object for stdout+stderr; by default a pipe (read by :func:`stop`).
        extra_args: more ``bentoml serve`` arguments.

    """
    return subprocess.Popen(
        [BENTOML, "serve", "service:VitalCheck", "--port", str(port), "--host", LOOPBACK, *extra_args],
        cwd=ROOT,
        env={**env, "PYTHONUNBUFFERED": "1"},
        stdout=log if log is not None else subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def stop(process: subprocess.Popen, timeout: float = 20) -> str:
    """SIGTERM the server's process group (SIGKILL after ``timeout`` s); return its piped output, if any."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    return process.stdout.read() if process.stdout else ""


def wait_ready(url: str, process: subprocess.Popen | None = None, timeout: float = READY_TIMEOUT_S) -> float:
    """Wait until ``GET url/readyz`` answers 200; return the seconds waited.

    Raises:
        RuntimeError: the server exited or did not become ready in time.

    """
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with status {process.returncode} before it was ready")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return time.monotonic() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"server not ready within {timeout} s")


class Served:
    """A running ``bentoml serve`` whose output goes to a log file; use as a context manager.

    Attributes:
        url: ``http://127.0.0.1:<port>``.
        log_path: file holding the server's stdout and stderr.
        process: the ``bentoml serve`` process (leader of its own process group).

    """

    def __init__(self, env: dict | None = None, extra_args: tuple[str, ...] = (), log_path: Path | None = None):
        self.env = dict(os.environ if env is None else env)
        self.extra_args = extra_args
        self.port = free_port()
        self.url = f"http://{LOOPBACK}:{self.port}"
        self.log_path = log_path or Path(tempfile.mkstemp(prefix="vitalcheck-serve-", suffix=".log")[1])
        self.process: subprocess.Popen | None = None
        self.ready_s: float | None = None

    def __enter__(self) -> Served:
        self._log = open(self.log_path, "w")  # noqa: SIM115 (closed in __exit__)
        self.process = start_server(self.port, self.env, log=self._log, extra_args=self.extra_args)
        try:
            self.ready_s = wait_ready(self.url, self.process)
        except RuntimeError:
            self.__exit__(None, None, None)
            raise RuntimeError(f"bentoml serve did not start:\n{self.log_path.read_text()[-4000:]}") from None
        return self

    def __exit__(self, *exc) -> None:
        if self.process is not None:
            stop(self.process)
        self._log.close()

    def log(self) -> str:
        """Everything the server wrote so far."""
        self._log.flush()
        return self.log_path.read_text(errors="replace")


# ---- damaged model stores and reference tables -----------------------------------------------------


def copy_store(model_store: Path, tmp_path: Path) -> Path:
    """A copy of the model store's ``models`` folder under a new BENTOML_HOME; returns that home."""
    home = tmp_path / "bentoml"
    shutil.copytree(model_store / "models", home / "models")
    return home


def stored_file(home: Path, store_name: str, file_name: str) -> Path:
    """The file ``file_name`` of the latest stored version (``:latest``) of model ``store_name`` in ``home``."""
    folder = home / "models" / store_name
    return folder / (folder / "latest").read_text().strip() / file_name


def tampered_store(tmp_path: Path, model_store: Path, how: str) -> Path:
    """A copy of the model store with the diabetes artifact damaged in one way."""
    home = copy_store(model_store, tmp_path)
    stored = stored_file(home, "vitalcheck-diabetes", "diabetes_pipeline.pkl")
    if how == "missing":
        stored.unlink()
    elif how == "corrupt":
        stored.write_bytes(stored.read_bytes()[:100])
    else:  # checksum mismatch: a valid pickle of another model under this name
        shutil.copy(stored_file(home, "vitalcheck-heart", "heart_pipeline.pkl"), stored)
    return home


def run_until_exit(env: dict, timeout: float = READY_TIMEOUT_S) -> tuple[int | None, str, float]:
    """Start a server that is expected to refuse to start; return (exit status, output, seconds).

    The exit status is None when the server was still running after ``timeout`` s (then stopped).
    """
    started = time.monotonic()
    process = start_server(free_port(), env)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, stop(process), time.monotonic() - started
    elapsed = time.monotonic() - started
    return process.returncode, stop(process), elapsed
