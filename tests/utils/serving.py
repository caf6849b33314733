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
        # A BENTOML_HOME of its own, sharing the models: `bentoml serve` empties
        # BENTOML_HOME/prometheus_multiproc_dir when it starts, which would wipe the metrics
        # of another server running on the same home.
        self.home = Path(tempfile.mkdtemp(prefix="vitalcheck-serve-home-"))
        models = Path(self.env.get("BENTOML_HOME", Path.home() / "bentoml")) / "models"
        if models.is_dir():
            (self.home / "models").symlink_to(models.resolve(), target_is_directory=True)
            self.env["BENTOML_HOME"] = str(self.home)

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
        shutil.rmtree(self.home, ignore_errors=True)

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


# ---- every way an artifact or table can be damaged --------------------------------------------------

DAMAGES = {
    "pickle-marker": "diabetes_pipeline.pkl",
    "pickle-truncated": "heart_pipeline.pkl",
    "pickle-missing": "stroke_pipeline.pkl",
    "onnx-corrupt": "brain_tumor_cnn.onnx",
    "onnx-missing": "brain_tumor_cnn.onnx",
    "card-missing": "sleep_pipeline",
    "card-invalid": "insurance_pipeline",
    "golden-drift": "breast_cancer_pipeline.pkl",
    "sklearn-version": "life_expectancy_pipeline.pkl",
    "fitbit-missing": "fitbit_percentiles.parquet",
    "fitbit-corrupt": "fitbit_percentiles.parquet",
    "hospital-missing": "hospital_analytics.parquet",
    "hospital-corrupt": "hospital_analytics.parquet",
    "hospital-schema": "hospital_analytics.parquet",
}
"""Damage kind → the name the refusal message must contain."""


class _OpensForWriting:
    """Pickles to ``open(path, "w")``: unpickling it creates ``path``, proof that it was loaded."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def marker_pickle(marker: Path) -> bytes:
    """A pickle whose loading creates the file ``marker``."""
    import pickle

    return pickle.dumps(_OpensForWriting(str(marker)))


def damaged_copy(kind: str, model_store: Path, reference_dir: Path, tmp_path: Path) -> tuple[Path, Path, Path]:
    """Copy the model store and the reference tables, then damage one thing (a key of :data:`DAMAGES`).

    Returns:
        (BENTOML_HOME, reference directory, marker path that must never be created).

    """
    import json

    import pyarrow.parquet as pq

    home = copy_store(model_store, tmp_path)
    tables = tmp_path / "reference"
    shutil.copytree(reference_dir, tables)
    marker = tmp_path / "UNPICKLED"
    what, _, how = kind.partition("-")

    def card_of(store_name: str, artifact: str) -> Path:
        return stored_file(home, store_name, artifact.rsplit(".", 1)[0] + ".card.json")

    if kind == "pickle-marker":
        stored_file(home, "vitalcheck-diabetes", "diabetes_pipeline.pkl").write_bytes(marker_pickle(marker))
    elif kind == "pickle-truncated":
        path = stored_file(home, "vitalcheck-heart", "heart_pipeline.pkl")
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif kind == "pickle-missing":
        stored_file(home, "vitalcheck-stroke", "stroke_pipeline.pkl").unlink()
    elif what == "onnx":
        path = stored_file(home, "vitalcheck-brain-tumor", "brain_tumor_cnn.onnx")
        if how == "missing":
            path.unlink()
        else:
            data = bytearray(path.read_bytes())
            data[len(data) // 2 : len(data) // 2 + 64] = b"\0" * 64
            path.write_bytes(bytes(data))
    elif kind == "card-missing":
        card_of("vitalcheck-sleep", "sleep_pipeline.pkl").unlink()
    elif kind == "card-invalid":
        card_of("vitalcheck-insurance", "insurance_pipeline.pkl").write_text('{"name": "insurance", "sha256": ')
    elif kind in ("golden-drift", "sklearn-version"):
        store, artifact = (
            ("vitalcheck-breast-cancer", "breast_cancer_pipeline.pkl")
            if kind == "golden-drift"
            else ("vitalcheck-life-expectancy", "life_expectancy_pipeline.pkl")
        )
        path = card_of(store, artifact)
        card = json.loads(path.read_text())
        if kind == "golden-drift":  # the card's sha256 is the artifact's, so editing its golden values is enough
            first = card["golden"][0]
            output = first["output"]
            first["output"] = [v + 0.01 for v in output] if isinstance(output, list) else output + 0.01
        else:
            card["framework_versions"]["scikit-learn"] = "0.0.1"
        path.write_text(json.dumps(card))
    elif what in ("fitbit", "hospital"):
        path = tables / DAMAGES[kind]
        if how == "missing":
            path.unlink()
        elif how == "corrupt":
            path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
        else:  # a readable table without one of its columns
            table = pq.read_table(path)
            pq.write_table(table.drop_columns([table.column_names[-1]]), path)
    else:
        raise ValueError(f"unknown damage {kind!r}")
    return home, tables, marker
