"""Replicas behind a real load balancer: `bentoml serve` processes behind HAProxy, on this machine.

``python deploy/cluster_test.py`` (= ``make cluster-test``) starts ``--replicas`` (default 3)
``bentoml serve service:VitalCheck`` processes, each on its own loopback port with its own
BENTOML_HOME (sharing one model store made for the run through a symlinked ``models`` folder, as
tests/utils/serving.py does), and HAProxy from Debian in front of them with active health checks
on ``/readyz``. With a bounded loop of mixed requests (single records of several models, a batch,
``/api/v1/models``; all with the token) it measures, in order:

1. **memory**: RSS (and PSS) of every process of one replica, after warm-up with a few requests
   to every endpoint, and again after a heavy batch and a whole-file upload;
2. **throughput** through HAProxy with 1, 2, ... replicas in rotation (the others in maintenance),
   with the CPU each part used;
3. **rolling restart**: each replica in turn is drained in HAProxy (runtime socket ``set server
   ... state drain``), left until its in-flight requests are done, stopped with SIGTERM, started
   again, and put back once HAProxy's checks see it up; target 0 failed requests;
4. **kill**: SIGKILL of one replica's whole process group under load; target: every failed
   request was in flight on the killed replica (from HAProxy's log, by request id), and HAProxy
   marks it DOWN within its detection window (``fall`` x ``inter`` + check timeout).

It prints a table of figures (``--json`` writes them too) and exits 1 when a target is missed,
2 when the set-up failed. Every process it starts and its temporary folder are removed on any
exit, Ctrl-C and SIGTERM included; a watchdog (``--deadline-s``) bounds the whole run.
Needs HAProxy (``apt-get install haproxy``) and the trained artifacts (``make artifacts``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `python deploy/cluster_test.py` imports vitalcheck and tests.utils

LOOPBACK = "127.0.0.1"
BENTOML = str(Path(sys.executable).parent / "bentoml")
REQUEST_TIMEOUT_S = 35.0
"""Client and HAProxy timeout for one request: above the service's 30 s request timeout."""
TOKEN = "cluster-test-token-" + os.urandom(8).hex()


class SetupError(RuntimeError):
    """The test could not be set up (missing tool or artifact, a replica that does not start)."""


class Deadline(BaseException):
    """The whole run took longer than ``--deadline-s`` (raised by the watchdog in the main thread)."""


# ---- processes --------------------------------------------------------------------------------------


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def stop_tree(process: subprocess.Popen, timeout: float = 15) -> list[int]:
    """SIGTERM a process (leader of its own session) and wait; SIGKILL whatever of its tree remains.

    BentoML's workers are session leaders of their own (circus starts them with ``setsid``): a
    signal to the serving process's group does not reach them, and a worker whose serving process
    was killed keeps serving on the inherited socket. So the tree is listed first (psutil), and
    every process of it that outlives the timeout is killed by pid. Returns the pids so killed.
    """
    import psutil

    members = tree(process.pid)
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=timeout)
    members += tree(process.pid)
    _, alive = psutil.wait_procs(members, timeout=2)
    for member in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            member.kill()
    psutil.wait_procs(alive, timeout=10)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)
    return [m.pid for m in alive]


def sweep(work: Path) -> list[int]:
    """SIGKILL any process still running with a BENTOML_HOME or TMPDIR inside ``work`` (last resort)."""
    import psutil

    killed = []
    for candidate in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            environ = candidate.environ()
            if any(environ.get(k, "").startswith(str(work)) for k in ("BENTOML_HOME", "TMPDIR")):
                candidate.kill()
                killed.append(candidate.pid)
    return killed


def http_status(url: str, timeout: float = 2.0) -> int | None:
    """Status of ``GET url`` (None when the connection fails)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (loopback only)
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (OSError, urllib.error.URLError):
        return None


def tree(pid: int) -> list:
    """The process ``pid`` and all its descendants that are still alive (psutil)."""
    import psutil

    try:
        parent = psutil.Process(pid)
        return [parent, *parent.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def cpu_seconds(processes) -> float:
    """User + system CPU seconds of the given psutil processes (gone ones count 0)."""
    import psutil

    total = 0.0
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            times = process.cpu_times()
            total += times.user + times.system
    return total


def memory_of(process) -> dict:
    """RSS and PSS (MiB) and the role of one ``bentoml serve`` process."""
    mib = 1024 * 1024
    info = process.memory_full_info()
    command = " ".join(process.cmdline())
    role = "worker" if "_bentoml_impl.worker" in command or "worker.service" in command else "serving"
    return {
        "pid": process.pid,
        "role": role,
        "rss_mib": round(info.rss / mib, 1),
        "pss_mib": round(getattr(info, "pss", info.rss) / mib, 1),
        "uss_mib": round(getattr(info, "uss", info.rss) / mib, 1),
    }


class Replica:
    """One ``bentoml serve service:VitalCheck`` on 127.0.0.1:<port>, in its own process group."""

    def __init__(self, index: int, work: Path, models: Path, env: dict[str, str], source: Path = ROOT):
        self.name = f"r{index + 1}"
        self.source = source
        self.port = free_port()
        self.url = f"http://{LOOPBACK}:{self.port}"
        self.home = work / f"{self.name}-home"
        self.home.mkdir()
        # Its own BENTOML_HOME (bentoml serve empties <home>/prometheus_multiproc_dir when it
        # starts), sharing the run's model store.
        (self.home / "models").symlink_to(models, target_is_directory=True)
        tmp = work / f"{self.name}-tmp"
        tmp.mkdir()
        self.env = {**env, "BENTOML_HOME": str(self.home), "TMPDIR": str(tmp), "PYTHONUNBUFFERED": "1"}
        self.log_path = work / f"{self.name}.log"
        self.process: subprocess.Popen | None = None
        self.started = 0.0
        self.lingering: list[int] = []
        """Pids of this replica's processes that outlived a SIGTERM of its serving process (killed)."""

    def start(self) -> None:
        """Start the server (output appended to its log)."""
        self.started = time.monotonic()
        with open(self.log_path, "a") as log:
            self.process = subprocess.Popen(  # noqa: S603 (our own bentoml)
                [BENTOML, "serve", "service:VitalCheck", "--host", LOOPBACK, "--port", str(self.port)],
                cwd=self.source,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self, timeout: float) -> float:
        """Wait until ``/readyz`` answers 200; return the seconds since the server was started."""
        started = self.started
        while time.monotonic() - started < timeout:
            if self.process is None or self.process.poll() is not None:
                code = None if self.process is None else self.process.returncode
                raise SetupError(f"{self.name} exited with status {code} before it was ready:\n{self.log_tail()}")
            if http_status(f"{self.url}/readyz") == 200:
                return time.monotonic() - started
            time.sleep(0.2)
        raise SetupError(f"{self.name} not ready within {timeout:g} s:\n{self.log_tail()}")

    def terminate(self, timeout: float) -> tuple[int | None, float]:
        """SIGTERM the serving process (as Kubernetes does); return (exit status, seconds to exit)."""
        assert self.process is not None
        started = time.monotonic()
        os.kill(self.process.pid, signal.SIGTERM)
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            code = None
        elapsed = time.monotonic() - started
        self.lingering += stop_tree(self.process, timeout=1)  # nothing of it may linger
        return code, elapsed

    def kill(self) -> tuple[int, float]:
        """SIGKILL the serving process and every worker at once (as a container's end does).

        Returns:
            (processes killed, time.time() at which its port first refused a connection: until
            then the kernel still accepts connections into the dying listening socket's backlog).

        """
        import psutil

        assert self.process is not None
        members = self.processes()
        groups = set()
        for member in members:
            with contextlib.suppress(ProcessLookupError):
                groups.add(os.getpgid(member.pid))
        for group in groups:  # the serving process's group and each worker's own
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)
        refused_at = None
        deadline = time.monotonic() + 10
        while refused_at is None and time.monotonic() < deadline:
            with socket.socket() as probe:
                try:
                    probe.connect((LOOPBACK, self.port))
                except ConnectionRefusedError:
                    refused_at = time.time()
            time.sleep(0.001)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # dead: gone, or a zombie (its sockets are closed)
            with contextlib.suppress(psutil.Error):
                if not any(m.is_running() and m.status() != psutil.STATUS_ZOMBIE for m in members):
                    break
            time.sleep(0.002)
        self.process.wait(timeout=10)
        return len(members), refused_at or time.time()

    def stop(self) -> None:
        """Stop whatever runs (cleanup)."""
        if self.process is not None:
            stop_tree(self.process, timeout=15)

    def processes(self) -> list:
        """The serving process and its workers (psutil)."""
        return tree(self.process.pid) if self.process is not None else []

    def log_tail(self, chars: int = 3000) -> str:
        """The end of the server's log."""
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


# ---- HAProxy ----------------------------------------------------------------------------------------

HAPROXY_CONFIG = """\
global
    log stdout format raw local0 info
    stats socket {socket} mode 600 level admin
    maxconn 2000
    nbthread 1
    hard-stop-after 5s

defaults
    mode http
    log global
    # A new connection to a replica for each request: no idle server connection that a
    # replica's keep-alive timeout (VITALCHECK_KEEPALIVE_TIMEOUT_S, 5 s) could close under HAProxy.
    option http-server-close
    option forwardfor
    # A request that could not be connected to its replica (a dead one) is sent to another.
    retries 3
    option redispatch 1
    timeout connect 1s
    timeout client {timeout}s
    timeout server {timeout}s
    timeout http-request 10s
    timeout http-keep-alive 4s
    timeout check {check_timeout_ms}ms

frontend vitalcheck
    bind {host}:{port}
    unique-id-format %[req.hdr(x-request-id)]
    log-format "%Ts.%ms %s %ST %tsc %rc %Tt %ID"
    default_backend replicas

backend replicas
    balance leastconn
    option httpchk
    http-check send meth GET uri /readyz ver HTTP/1.1 hdr Host localhost
    http-check expect status 200
    default-server check inter {inter_ms}ms fall {fall} rise {rise}{observe}
{servers}
"""


@dataclass
class LogLine:
    """One request as HAProxy logged it."""

    accepted: float
    server: str
    status: int
    termination: str
    retries: str
    total_ms: int
    request_id: str


class HAProxy:
    """HAProxy in the foreground (``-db``), its log in a file, driven through its admin socket."""

    def __init__(self, work: Path, replicas: list[Replica], args: argparse.Namespace):
        self.binary = shutil.which(args.haproxy) or args.haproxy
        if not Path(self.binary).is_file():
            raise SetupError(f"HAProxy not found ({args.haproxy}): apt-get install -y haproxy")
        self.port = free_port()
        self.url = f"http://{LOOPBACK}:{self.port}"
        # HAProxy takes socket paths of at most 97 characters: a short folder when work's is long.
        self.socket_dir = (
            work if len(str(work)) < 80 else Path(tempfile.mkdtemp(prefix="vitalcheck-haproxy-", dir="/tmp"))
        )
        self.socket = self.socket_dir / "haproxy.sock"
        self.work = work
        self.config = work / "haproxy.cfg"
        self.log_path = work / "haproxy.log"
        self.inter_s = args.inter_ms / 1000
        self.fall, self.rise = args.fall, args.rise
        self.check_timeout_s = args.check_timeout_ms / 1000
        servers = "\n".join(f"    server {r.name} {LOOPBACK}:{r.port}" for r in replicas)
        observe = " observe layer4 error-limit 1 on-error mark-down" if args.passive_checks else ""
        self.config.write_text(
            HAPROXY_CONFIG.format(
                socket=self.socket,
                timeout=int(REQUEST_TIMEOUT_S),
                check_timeout_ms=args.check_timeout_ms,
                host=LOOPBACK,
                port=self.port,
                inter_ms=args.inter_ms,
                fall=args.fall,
                rise=args.rise,
                observe=observe,
                servers=servers,
            )
        )
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        """Check the configuration, start HAProxy, wait for its socket."""
        check = subprocess.run(  # noqa: S603
            [self.binary, "-c", "-q", "-f", str(self.config)], capture_output=True, text=True, timeout=20
        )
        if check.returncode:
            raise SetupError(f"HAProxy refuses its configuration:\n{check.stdout}{check.stderr}")
        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen(  # noqa: S603
                [self.binary, "-db", "-f", str(self.config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        started = time.monotonic()
        while not self.socket.exists():
            if self.process.poll() is not None or time.monotonic() - started > 10:
                raise SetupError(f"HAProxy did not start:\n{self.log_path.read_text()[-2000:]}")
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop HAProxy (cleanup)."""
        if self.process is not None:
            stop_tree(self.process, timeout=10)
        if self.socket_dir != self.work:
            shutil.rmtree(self.socket_dir, ignore_errors=True)

    def command(self, line: str) -> str:
        """One command on the admin socket; its answer."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(5)
            s.connect(str(self.socket))
            s.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := s.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def stats(self) -> dict[str, dict[str, str]]:
        """``show stat`` of the backend's servers, by server name."""
        lines = self.command("show stat").splitlines()
        header = lines[0].lstrip("# ").split(",")
        rows = {}
        for line in lines[1:]:
            if not line:
                continue
            row = dict(zip(header, line.split(","), strict=False))
            if row.get("pxname") == "replicas" and row.get("svname") not in ("BACKEND", "FRONTEND"):
                rows[row["svname"]] = row
        return rows

    def set_state(self, server: str, state: str) -> None:
        """``set server replicas/<server> state ready|drain|maint``."""
        answer = self.command(f"set server replicas/{server} state {state}").strip()
        if answer:
            raise SetupError(f"HAProxy refused 'set server {server} state {state}': {answer}")

    def wait_for(self, server: str, predicate, timeout: float, what: str, poll: float = 0.02) -> float:
        """Wait until ``predicate(stats row)`` holds for ``server``; return the time (time.time()) it did."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            row = self.stats()[server]
            if predicate(row):
                return time.time()
            time.sleep(poll)
        raise SetupError(f"HAProxy: {server} not {what} within {timeout:g} s (last: {self.stats()[server]})")

    def log_lines(self) -> list[LogLine]:
        """Every request line of HAProxy's log so far (state-change messages are skipped)."""
        lines = []
        for text in self.log_path.read_text(errors="replace").splitlines():
            parts = text.split(" ")
            if len(parts) != 7:
                continue
            try:
                lines.append(
                    LogLine(float(parts[0]), parts[1], int(parts[2]), parts[3], parts[4], int(parts[5]), parts[6])
                )
            except ValueError:
                continue
        return lines


# ---- requests ---------------------------------------------------------------------------------------


@dataclass
class Request:
    """One request of the load loop, as the client saw it."""

    request_id: str
    kind: str
    start: float
    end: float = 0.0
    status: int | None = None
    error: str = ""

    @property
    def ok(self) -> bool:
        """Answered 200 with the expected content."""
        return self.status == 200 and not self.error


def request_mix() -> list[tuple[str, str, dict | None, str, int]]:
    """(kind, path, JSON body, key the answer must have, weight) of the load loop's requests."""
    from tests.utils.payloads import EXAMPLES, ROUTES

    batch = {"records": [dict(EXAMPLES["insurance"], age_years=18 + i) for i in range(20)]}
    singles = [("diabetes", 3), ("heart", 2), ("stroke", 2), ("insurance", 2), ("sleep", 1), ("breast_cancer", 1)]
    mix = [(name, ROUTES[name], EXAMPLES[name], "prediction", weight) for name, weight in singles]
    mix.append(("insurance_batch_20", ROUTES["insurance"] + "/batch", batch, "predictions", 1))
    mix.append(("models", "/api/v1/models", {}, "", 1))
    return mix


class LoadLoop:
    """A bounded closed loop of mixed requests (``concurrency`` at a time) in a thread of its own."""

    def __init__(
        self, url: str, concurrency: int, max_requests: int, max_seconds: float, seed: int = 0, keepalive: bool = True
    ):
        self.url, self.concurrency, self.keepalive = url, concurrency, keepalive
        self.max_requests, self.max_seconds = max_requests, max_seconds
        self.records: list[Request] = []
        self._stop = threading.Event()
        self._random = random.Random(seed)
        self._ids = itertools.count(1)
        self._prefix = f"{seed:02d}-{os.urandom(3).hex()}"
        mix = request_mix()
        self._kinds = [m for m in mix for _ in range(m[4])]
        self._thread = threading.Thread(target=self._run, name="load", daemon=True)
        self.error: BaseException | None = None

    def __enter__(self) -> LoadLoop:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> list[Request]:
        """Stop sending, wait for the requests in flight (each bounded by its timeout); return all."""
        self._stop.set()
        self._thread.join(timeout=REQUEST_TIMEOUT_S + 10)
        if self.error is not None:
            raise SetupError(f"the load loop failed: {self.error!r}")
        return self.records

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # noqa: BLE001 (reported by stop())
            self.error = exc

    async def _main(self) -> None:
        import aiohttp

        deadline = time.monotonic() + self.max_seconds
        # Client keep-alive shorter than HAProxy's (4 s), so that the client never reuses a
        # connection that HAProxy is closing.
        if self.keepalive:
            connector = aiohttp.TCPConnector(limit=self.concurrency, keepalive_timeout=2)
        else:
            connector = aiohttp.TCPConnector(limit=self.concurrency, force_close=True)
        headers = {"Authorization": f"Bearer {TOKEN}"}
        timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
        async with aiohttp.ClientSession(connector=connector, headers=headers, timeout=timeout) as session:

            async def client() -> None:
                while not self._stop.is_set() and time.monotonic() < deadline:
                    if len(self.records) >= self.max_requests:
                        return
                    kind, path, body, key, _ = self._random.choice(self._kinds)
                    record = Request(f"{self._prefix}-{next(self._ids)}", kind, time.time())
                    self.records.append(record)
                    try:
                        async with session.post(
                            self.url + path, json=body, headers={"X-Request-Id": record.request_id}
                        ) as response:
                            payload = await response.read()
                            record.status = response.status
                            if response.status == 200 and key and key.encode() not in payload[:4096]:
                                record.error = f"answer without {key!r}"
                    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                        record.error = type(exc).__name__
                    record.end = time.time()

            await asyncio.gather(*(client() for _ in range(self.concurrency)))


# ---- the run ----------------------------------------------------------------------------------------


@dataclass
class Figures:
    """Everything measured, printed as a table and written with ``--json``."""

    machine: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)
    start_s: dict = field(default_factory=dict)
    memory: dict = field(default_factory=dict)
    throughput: list = field(default_factory=list)
    rolling: dict = field(default_factory=dict)
    kill: dict = field(default_factory=dict)
    targets: dict = field(default_factory=dict)
    failures: list = field(default_factory=list)


def make_store(work: Path, env: dict[str, str], source: Path) -> Path:
    """Register the artifacts in a model store of the run's own; return its ``models`` folder."""
    home = work / "store"
    result = subprocess.run(  # noqa: S603
        [sys.executable, "import_models.py", "--artifacts-dir", str(ROOT / "artifacts")],
        cwd=source,
        env={**env, "BENTOML_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=180,
    )
    if result.returncode:
        raise SetupError(f"import_models.py failed (run `make artifacts`):\n{result.stdout}{result.stderr}"[-3000:])
    return home / "models"


def warm_up(url: str, work: Path, rounds: int) -> int:
    """``rounds`` requests to every endpoint of one replica; return how many were sent."""
    import httpx
    import pandas as pd

    from tests.utils.payloads import EXAMPLES, ROUTES, mri_test_image
    from vitalcheck.settings import get_settings
    from vitalcheck.training.loaders import data_file

    data_dir = get_settings().data_dir
    image = mri_test_image(data_dir)
    uploads = {}
    for name in ROUTES:
        uploads[name] = work / f"{name}-20.csv"
        if not uploads[name].exists():
            pd.read_csv(data_file(name, data_dir)).head(20).to_csv(uploads[name], index=False)
    calls = []
    for name, route in ROUTES.items():
        calls.append((route, {"json": EXAMPLES[name]}))
        calls.append((route + "/batch", {"json": {"records": [EXAMPLES[name]] * 5}}))
        calls.append((route + "/file", {"files": {"file": uploads[name]}}))
    calls.append(("/api/v1/imaging/brain-tumor", {"files": {"image": image}}))
    calls.append(("/api/v1/fitbit/percentiles", {"json": {"total_steps": 8500, "minutes_asleep": 420}}))
    calls.append(("/api/v1/hospital/analytics", {"json": {"service": "emergency", "week_from": 1, "week_to": 4}}))
    calls.append(("/api/v1/models", {}))
    sent = 0
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60) as client:
        for _ in range(rounds):
            for path, kwargs in calls:
                if "files" in kwargs:
                    field_name, file = next(iter(kwargs["files"].items()))
                    with open(file, "rb") as handle:
                        response = client.post(path, files={field_name: (file.name, handle)})
                else:
                    response = client.post(path, **kwargs)
                sent += 1
                if response.status_code != 200:
                    raise SetupError(f"warm-up: {path} answered {response.status_code}: {response.text[:300]}")
    return sent


def heavy_requests(url: str) -> list[str]:
    """A 10,000-record batch and a whole-file upload (5,110 rows), twice: the largest usual requests."""
    import httpx

    from tests.utils.payloads import EXAMPLES, ROUTES
    from vitalcheck.settings import get_settings
    from vitalcheck.training.loaders import data_file

    stroke_csv = data_file("stroke", get_settings().data_dir)
    batch = {"records": [dict(EXAMPLES["insurance"], age_years=18 + i % 40) for i in range(10_000)]}
    done = []
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60) as client:
        for _ in range(2):
            response = client.post(ROUTES["insurance"] + "/batch", json=batch)
            if response.status_code != 200:
                raise SetupError(f"10,000-record batch answered {response.status_code}: {response.text[:300]}")
            with open(stroke_csv, "rb") as handle:
                response = client.post(ROUTES["stroke"] + "/file", files={"file": (stroke_csv.name, handle)})
            if response.status_code != 200:
                raise SetupError(f"stroke file upload answered {response.status_code}: {response.text[:300]}")
        done += ["insurance batch of 10,000 records x2", f"{stroke_csv.name} upload x2"]
    return done


def memory_figures(replica: Replica) -> dict:
    """RSS/PSS of the replica's serving process and each worker, and their sums."""
    processes = [memory_of(p) for p in replica.processes()]
    workers = [p for p in processes if p["role"] == "worker"]
    return {
        "processes": processes,
        "workers": len(workers),
        "total_rss_mib": round(sum(p["rss_mib"] for p in processes), 1),
        "total_pss_mib": round(sum(p["pss_mib"] for p in processes), 1),
        "worker_rss_mib_max": max((p["rss_mib"] for p in workers), default=0),
        "serving_rss_mib": round(sum(p["rss_mib"] for p in processes if p["role"] == "serving"), 1),
    }


def latency_ms(records: list[Request], q: float) -> float:
    """The ``q`` quantile of successful requests' latency, in ms."""
    values = sorted((r.end - r.start) * 1000 for r in records if r.ok)
    if not values:
        return float("nan")
    return round(values[min(len(values) - 1, int(q * len(values)))], 1)


def throughput(haproxy: HAProxy, replicas: list[Replica], count: int, args: argparse.Namespace, seed: int) -> dict:
    """Requests per second through HAProxy with the first ``count`` replicas in rotation."""
    import psutil

    for i, replica in enumerate(replicas):
        haproxy.set_state(replica.name, "ready" if i < count else "maint")
    for replica in replicas[:count]:
        haproxy.wait_for(replica.name, lambda r: r["status"] == "UP", 10, "UP")
    me = psutil.Process()
    with LoadLoop(haproxy.url, args.concurrency, args.max_requests, args.warmup_s + args.seconds + 5, seed) as load:
        time.sleep(args.warmup_s)
        in_rotation = [p for r in replicas[:count] for p in r.processes()]
        idle = [p for r in replicas[count:] for p in r.processes()]
        balancer = tree(haproxy.process.pid)
        before = (cpu_seconds(in_rotation), cpu_seconds(idle), cpu_seconds(balancer), cpu_seconds([me]))
        machine_before = psutil.cpu_times()
        window_start = time.time()
        time.sleep(args.seconds)
        window_end = time.time()
        after = (cpu_seconds(in_rotation), cpu_seconds(idle), cpu_seconds(balancer), cpu_seconds([me]))
        machine_after = psutil.cpu_times()
        records = load.stop()
    wall = window_end - window_start
    in_window = [r for r in records if r.end and window_start <= r.end <= window_end]
    busy = (sum(machine_after) - machine_after.idle - getattr(machine_after, "iowait", 0)) - (
        sum(machine_before) - machine_before.idle - getattr(machine_before, "iowait", 0)
    )
    replicas_cpu, idle_cpu, balancer_cpu, client_cpu = (
        round((a - b) / wall, 2) for a, b in zip(after, before, strict=True)
    )
    ours = replicas_cpu + idle_cpu + balancer_cpu + client_cpu
    return {
        "replicas": count,
        "workers": sum(memory_figures(r)["workers"] for r in replicas[:count]),
        "requests": len(in_window),
        "failed": sum(not r.ok for r in records),
        "rps": round(sum(r.ok for r in in_window) / wall, 1),
        "p50_ms": latency_ms(in_window, 0.5),
        "p95_ms": latency_ms(in_window, 0.95),
        "cores_replicas": replicas_cpu,
        "cores_haproxy": balancer_cpu,
        "cores_client": client_cpu,
        "cores_machine_busy": round(busy / wall, 2),
        "cores_other_sessions": round(max(0.0, busy / wall - ours), 2),
    }


def rolling_restart(haproxy: HAProxy, replicas: list[Replica], args: argparse.Namespace) -> dict:
    """Drain, SIGTERM, restart and re-admit every replica in turn, under load."""
    for replica in replicas:
        haproxy.set_state(replica.name, "ready")
    for replica in replicas:
        haproxy.wait_for(replica.name, lambda r: r["status"] == "UP", 10, "UP")
    steps = []
    max_seconds = args.settle_s * 2 + len(replicas) * 200
    with LoadLoop(haproxy.url, args.load_concurrency, args.max_requests * 4, max_seconds, seed=101) as load:
        time.sleep(args.settle_s)
        for replica in replicas:
            step = {"replica": replica.name}
            t0 = time.time()
            haproxy.set_state(replica.name, "drain")
            # Drained: no new request goes to it; wait until none is in flight there either.
            t_idle = haproxy.wait_for(
                replica.name, lambda r: r["scur"] == "0" and r["qcur"] == "0", REQUEST_TIMEOUT_S + 5, "idle"
            )
            step["drain_s"] = round(t_idle - t0, 2)
            lingering = len(replica.lingering)
            code, stop_s = replica.terminate(timeout=REQUEST_TIMEOUT_S + 10)
            step["exit_status"], step["stop_s"] = code, round(stop_s, 2)
            step["lingering_processes"] = len(replica.lingering) - lingering
            t_start = time.time()
            replica.start()
            step["ready_s"] = round(replica.wait_ready(args.ready_timeout_s), 2)
            # Back in rotation once HAProxy's own checks see it up (rise x inter), then re-admitted.
            haproxy.wait_for(
                replica.name,
                lambda r: r["check_status"] == "L7OK" and r["status"] in ("DRAIN", "UP"),
                (args.rise + 2) * haproxy.inter_s + 5,
                "checked up",
            )
            haproxy.set_state(replica.name, "ready")
            t_back = haproxy.wait_for(replica.name, lambda r: r["status"] == "UP", 10, "UP")
            step["back_in_rotation_s"] = round(t_back - t_start, 2)
            step["back_at"] = t_back
            steps.append(step)
            time.sleep(args.settle_s)
        records = load.stop()
    log = haproxy.log_lines()
    for step in steps:
        back_at = step.pop("back_at")
        step["requests_after_rejoin"] = sum(
            1 for line in log if line.server == step["replica"] and line.accepted > back_at
        )
    failed = [r for r in records if not r.ok]
    return {
        "requests": len(records),
        "failed": len(failed),
        "failed_examples": [asdict(r) for r in failed[:10]],
        "steps": steps,
        "rps": round(len(records) / max(1e-9, max(r.end for r in records) - min(r.start for r in records)), 1),
    }


def kill_one(haproxy: HAProxy, replicas: list[Replica], args: argparse.Namespace) -> dict:
    """SIGKILL one replica's process group under load; which requests failed, when HAProxy saw it."""
    victim = replicas[min(1, len(replicas) - 1)]
    for replica in replicas:
        haproxy.set_state(replica.name, "ready")
    for replica in replicas:
        haproxy.wait_for(replica.name, lambda r: r["status"] == "UP", 10, "UP")
    # One connection per request here: when a replica dies under a request that was not the first
    # of its client connection, HAProxy closes that connection without an answer and without a log
    # line (so that the client may retry, http_ana.c "abort_keep_alive"); on a fresh connection it
    # answers 502 and logs it with the replica's name, so that every failure can be accounted for.
    loop = LoadLoop(haproxy.url, args.load_concurrency, args.max_requests, args.settle_s * 4 + 30, 202, keepalive=False)
    with loop as load:
        time.sleep(args.settle_s)
        in_flight_stat = int(haproxy.stats()[victim.name]["scur"])
        t_kill = time.time()
        killed, t_dead = victim.kill()  # t_dead: from then on a connection to it is refused
        t_down = haproxy.wait_for(victim.name, lambda r: r["status"].startswith("DOWN"), 30, "DOWN", poll=0.01)
        time.sleep(args.settle_s)
        records = load.stop()
    t_restart = time.time()
    victim.start()
    victim.wait_ready(args.ready_timeout_s)
    t_up = haproxy.wait_for(victim.name, lambda r: r["status"] == "UP", (args.rise + 2) * haproxy.inter_s + 5, "UP")

    log = {line.request_id: line for line in haproxy.log_lines()}
    on_victim = [line for line in log.values() if line.server == victim.name]
    in_flight = {
        line.request_id for line in on_victim if line.accepted <= t_kill <= line.accepted + line.total_ms / 1000
    }
    failed = [r for r in records if not r.ok]
    # In flight on the killed replica: routed to it before its last process was gone (a request
    # that reached its listening socket while the workers were dying was accepted by the kernel
    # and is lost with them, like one the worker was computing).
    unexplained = [
        r
        for r in failed
        if not (
            r.start <= t_dead
            and r.request_id in log
            and log[r.request_id].server == victim.name
            and log[r.request_id].accepted <= t_dead
        )
    ]
    during_teardown = [line for line in on_victim if t_kill < line.accepted <= t_dead]
    routed_after = [line for line in on_victim if line.accepted > t_dead]
    redispatched = [line for line in log.values() if line.accepted > t_kill and line.retries.lstrip("+") != "0"]
    window = args.fall * haproxy.inter_s + haproxy.check_timeout_s
    return {
        "replica": victim.name,
        "processes_killed": killed,
        "requests": len(records),
        "failed": len(failed),
        "failed_in_flight_on_victim": len(failed) - len(unexplained),
        "failed_unexplained": len(unexplained),
        "failed_examples": [asdict(r) for r in failed[:10]],
        "in_flight_on_victim_at_kill": len(in_flight),
        "haproxy_sessions_on_victim_before_kill": in_flight_stat,
        "port_refused_after_s": round(t_dead - t_kill, 3),
        "routed_to_victim_while_dying": len(during_teardown),
        "marked_down_after_s": round(t_down - t_kill, 3),
        "detection_window_s": round(window, 3),
        "requests_routed_to_victim_after_kill": len(routed_after),
        "requests_redispatched_after_kill": len(redispatched),
        "restarted_and_up_after_s": round(t_up - t_restart, 2),
        "failed_statuses": sorted({str(r.status or r.error) for r in failed}),
    }


def print_table(figures: Figures) -> None:
    """The figures, as a plain-text table."""
    out = []
    m = figures.machine
    out.append(f"machine: {m['cpus']} CPUs, {m['memory_gib']} GiB; HAProxy {m['haproxy']}; {figures.settings}")
    out.append("")
    out.append("start-up (s to /readyz): " + ", ".join(f"{k} {v}" for k, v in figures.start_s.items()))
    for label in ("warm", "heavy"):
        mem = figures.memory.get(label)
        if not mem:
            continue
        per = ", ".join(f"{p['role']} {p['rss_mib']} MiB RSS / {p['pss_mib']} PSS" for p in mem["processes"])
        out.append(
            f"memory, one replica, {label}: {per}; total {mem['total_rss_mib']} MiB RSS, {mem['total_pss_mib']} PSS"
        )
    out.append("")
    out.append(
        f"{'replicas':>8} {'workers':>7} {'req/s':>7} {'p50 ms':>7} {'p95 ms':>7} {'failed':>6} "
        f"{'cores: replicas':>15} {'haproxy':>7} {'client':>6} {'machine busy':>12} {'others':>6}"
    )
    for t in figures.throughput:
        out.append(
            f"{t['replicas']:>8} {t['workers']:>7} {t['rps']:>7} {t['p50_ms']:>7} {t['p95_ms']:>7} {t['failed']:>6} "
            f"{t['cores_replicas']:>15} {t['cores_haproxy']:>7} {t['cores_client']:>6} "
            f"{t['cores_machine_busy']:>12} {t['cores_other_sessions']:>6}"
        )
    if figures.rolling:
        r = figures.rolling
        out.append("")
        out.append(f"rolling restart: {r['requests']} requests, {r['failed']} failed")
        for s in r["steps"]:
            out.append(
                f"  {s['replica']}: drained in {s['drain_s']} s, SIGTERM -> exit {s['exit_status']} in {s['stop_s']} s, "
                f"ready {s['ready_s']} s after start, back in rotation {s['back_in_rotation_s']} s after start, "
                f"{s['requests_after_rejoin']} requests after"
            )
    if figures.kill:
        k = figures.kill
        out.append("")
        out.append(
            f"SIGKILL {k['replica']} ({k['processes_killed']} processes): {k['requests']} requests, {k['failed']} failed "
            f"({k['failed_in_flight_on_victim']} in flight on it, {k['failed_unexplained']} other; statuses "
            f"{k['failed_statuses']}); {k['in_flight_on_victim_at_kill']} were in flight there at the kill, "
            f"{k['routed_to_victim_while_dying']} more reached it in the {k['port_refused_after_s']} s before its port refused"
        )
        out.append(
            f"  HAProxy marked it DOWN {k['marked_down_after_s']} s after the kill (window {k['detection_window_s']} s); "
            f"{k['requests_routed_to_victim_after_kill']} requests routed to it once its port refused, "
            f"{k['requests_redispatched_after_kill']} redispatched; restarted and UP in {k['restarted_and_up_after_s']} s"
        )
    out.append("")
    for name, passed in figures.targets.items():
        out.append(f"target {name}: {'met' if passed else 'MISSED'}")
    for failure in figures.failures:
        out.append(f"FAILED: {failure}")
    print("\n".join(out), flush=True)


def run(args: argparse.Namespace, work: Path, cleanup: list, figures: Figures) -> None:
    """The whole test, filling ``figures``; appends what it starts to ``cleanup``."""
    import psutil

    haproxy_version = subprocess.run(  # noqa: S603
        [shutil.which(args.haproxy) or args.haproxy, "-v"], capture_output=True, text=True, timeout=10
    ).stdout.split()[2:3]
    figures.machine = {
        "cpus": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "haproxy": haproxy_version[0] if haproxy_version else "?",
    }
    figures.settings = {
        "replicas": args.replicas,
        "concurrency": args.concurrency,
        "load_concurrency": args.load_concurrency,
        "check": f"inter {args.inter_ms}ms fall {args.fall} rise {args.rise}"
        + (" + passive layer4" if args.passive_checks else ""),
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VITALCHECK_API_TOKEN", "BENTOML_HOME", "TMPDIR"))}
    env.update(
        {
            "VITALCHECK_API_TOKEN": TOKEN,
            "BENTOML_DO_NOT_TRACK": "True",
            "XDG_CACHE_HOME": str(work / "cache"),  # ONNX Runtime writes a device id there
            "TMPDIR": str(work / "tmp"),
        }
    )
    (work / "tmp").mkdir()
    log(f"model store for the run ({work})")
    source = args.source.resolve()
    models = make_store(work, env, source)
    replicas = [Replica(i, work, models, env, source) for i in range(args.replicas)]
    cleanup.extend(replicas)
    for replica in replicas:
        replica.start()
    for replica in replicas:
        figures.start_s[replica.name] = round(replica.wait_ready(args.ready_timeout_s), 1)
    log(f"{len(replicas)} replicas ready: {figures.start_s}")

    log("warm-up: every endpoint of every replica")
    for replica in replicas:
        warm_up(replica.url, work, args.warmup_rounds)
    figures.memory["warm"] = memory_figures(replicas[0])
    heavy = heavy_requests(replicas[0].url)
    figures.memory["heavy"] = memory_figures(replicas[0])
    figures.memory["heavy"]["requests"] = heavy
    figures.memory["all_replicas_total_rss_mib"] = round(sum(memory_figures(r)["total_rss_mib"] for r in replicas), 1)

    haproxy = HAProxy(work, replicas, args)
    cleanup.append(haproxy)
    haproxy.start()
    for replica in replicas:
        haproxy.wait_for(replica.name, lambda r: r["status"] == "UP", (args.rise + 2) * haproxy.inter_s + 5, "UP")
    log(f"HAProxy on {haproxy.url}: {len(replicas)} replicas UP")

    if not args.skip_throughput:
        for count in range(1, len(replicas) + 1):
            log(f"throughput with {count} replica(s), {args.seconds:g} s")
            figures.throughput.append(throughput(haproxy, replicas, count, args, seed=count))
    if not args.skip_rolling:
        log("rolling restart under load")
        figures.rolling = rolling_restart(haproxy, replicas, args)
        figures.targets["rolling restart: 0 failed requests"] = figures.rolling["failed"] == 0
    if not args.skip_kill:
        log("SIGKILL of one replica under load")
        figures.kill = kill_one(haproxy, replicas, args)
        k = figures.kill
        figures.targets["kill: only requests in flight on the killed replica failed"] = k["failed_unexplained"] == 0
        figures.targets[f"kill: HAProxy marked it DOWN within {k['detection_window_s']} s"] = (
            k["marked_down_after_s"] <= k["detection_window_s"]
        )
    throughput_failed = sum(t["failed"] for t in figures.throughput)
    figures.targets["throughput runs: 0 failed requests"] = throughput_failed == 0


def log(message: str) -> None:
    """A progress line on stderr."""
    print(f"[cluster-test {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replicas", type=int, default=3, choices=(2, 3, 4), help="bentoml serve processes")
    parser.add_argument("--seconds", type=float, default=15, help="measured seconds per throughput run")
    parser.add_argument("--warmup-s", type=float, default=3, help="unmeasured seconds before each throughput run")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight in the throughput runs")
    parser.add_argument(
        "--load-concurrency", type=int, default=8, help="requests in flight during the restart and the kill"
    )
    parser.add_argument("--max-requests", type=int, default=20_000, help="cap on requests per load loop")
    parser.add_argument("--settle-s", type=float, default=3, help="seconds of load before and after each event")
    parser.add_argument("--warmup-rounds", type=int, default=3, help="requests to every endpoint before measuring")
    parser.add_argument("--ready-timeout-s", type=float, default=120, help="longest wait for a replica's /readyz")
    parser.add_argument("--inter-ms", type=int, default=1000, help="HAProxy health-check interval")
    parser.add_argument("--fall", type=int, default=2, help="failed checks before DOWN")
    parser.add_argument("--rise", type=int, default=2, help="passed checks before UP")
    parser.add_argument("--check-timeout-ms", type=int, default=500, help="HAProxy health-check timeout")
    parser.add_argument(
        "--passive-checks",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="also mark a replica DOWN at its first failed connection (observe layer4); default: active checks only",
    )
    parser.add_argument("--haproxy", default="haproxy", help="HAProxy binary")
    parser.add_argument(
        "--source",
        type=Path,
        default=ROOT,
        help="folder the servers run from (service.py, vitalcheck/, reference/); default this checkout. "
        "The artifacts always come from this checkout's artifacts/",
    )
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-rolling", action="store_true")
    parser.add_argument("--skip-kill", action="store_true")
    parser.add_argument("--deadline-s", type=float, default=480, help="the whole run is stopped after this")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--keep-logs", type=Path, help="copy the servers' and HAProxy's logs into this folder")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the test; 0 when every target is met, 1 when one is missed, 2 when it could not run."""
    args = parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="vitalcheck-cluster-"))
    cleanup: list = []

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    def on_alarm(_signum, _frame):
        raise Deadline(f"the run took longer than {args.deadline_s:g} s")

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGHUP)}
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(int(args.deadline_s))
    status = 2
    figures = Figures()
    try:
        run(args, work, cleanup, figures)
        status = 0 if all(figures.targets.values()) else 1
    except (SetupError, Deadline) as exc:
        log(f"stopped: {exc}")
        figures.failures.append(str(exc).splitlines()[0])
    except KeyboardInterrupt as exc:
        log(f"interrupted ({exc or 'Ctrl-C'}): cleaning up")
        status = 130
    except Exception as exc:  # a bug or an unexpected answer: report it, clean up, exit 2
        traceback.print_exc()
        figures.failures.append(repr(exc))
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not interrupt the cleanup
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=max(1, len(cleanup))) as pool:  # all at once: each waits up to 15 s
            for item in cleanup:
                pool.submit(item.stop)
        if cleanup:
            log(f"stopped {len(cleanup)} processes in {time.monotonic() - started:.1f} s")
        with contextlib.suppress(Exception):
            if leftovers := sweep(work):
                log(f"killed {len(leftovers)} leftover processes: {leftovers}")
        if args.keep_logs:
            args.keep_logs.mkdir(parents=True, exist_ok=True)
            for path in work.glob("*.log"):
                shutil.copy(path, args.keep_logs / path.name)
        shutil.rmtree(work, ignore_errors=True)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for s, handler in previous.items():
            signal.signal(s, handler)
    if figures.machine:
        print_table(figures)
        if args.json:
            args.json.write_text(json.dumps(asdict(figures), indent=2, default=str) + "\n")
    return status


if __name__ == "__main__":
    sys.exit(main())
