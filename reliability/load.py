"""A small asynchronous load generator (httpx) over a mix of every endpoint, loopback only.

Each request has an expected status (200, or 400 for the deliberately bad one in the mix); an
*error* is any other status or a transport failure. Loops are bounded by a deadline and by a
maximum request count, and stop early on an event.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pandas as pd

from tests.utils.payloads import EXAMPLES, ROUTES, mri_test_image
from vitalcheck.settings import get_settings
from vitalcheck.training.loaders import data_file

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


def require_loopback(url: str) -> None:
    """Refuse to send load anywhere but this machine's loopback interface."""
    host = urlsplit(url).hostname
    if host not in LOOPBACK_HOSTS:
        raise ValueError(f"load may only target the loopback interface, not {host!r}")


@dataclass(frozen=True)
class Request:
    """One request of the mix."""

    name: str
    path: str
    expected: int
    json: object = None
    files: dict | None = None


@dataclass
class Result:
    """One completed (or failed) request."""

    name: str
    started: float  # seconds since the load started
    latency: float  # seconds
    status: int | None  # None: transport failure
    expected: int
    error: str = ""

    @property
    def ok(self) -> bool:
        """The expected status came back."""
        return self.status == self.expected


def request_mix(data_dir: Path | None = None, *, heavy_batch: int = 0) -> list[Request]:
    """Every endpoint once: single and batch records, CSV upload, image, Fitbit, hospital, models, a bad input.

    Args:
        data_dir: the shared data sets (default: settings).
        heavy_batch: when > 0, add a batch of this many breast-cancer records (a slow request).

    """
    data_dir = Path(data_dir or get_settings().data_dir)
    mix = []
    for name, route in ROUTES.items():
        mix.append(Request(name, route, 200, json=EXAMPLES[name]))
        mix.append(Request(f"{name}_batch", route + "/batch", 200, json={"records": [EXAMPLES[name]] * 5}))
    for name in ("insurance", "stroke"):
        csv = pd.read_csv(data_file(name, data_dir)).head(10).to_csv(index=False).encode()
        mix.append(Request(f"{name}_file", ROUTES[name] + "/file", 200, files={"file": ("rows.csv", csv)}))
    buffer = io.BytesIO(mri_test_image(data_dir, "glioma").read_bytes())
    mix.append(
        Request("brain_tumor", "/api/v1/imaging/brain-tumor", 200, files={"image": ("mri.jpg", buffer.getvalue())})
    )
    mix.append(Request("fitbit", "/api/v1/fitbit/percentiles", 200, json={"total_steps": 8500, "minutes_asleep": 420}))
    mix.append(
        Request("hospital", "/api/v1/hospital/analytics", 200, json={"service": "ICU", "week_from": 1, "week_to": 8})
    )
    mix.append(Request("models", "/api/v1/models", 200, json={}))
    mix.append(Request("bad_input", ROUTES["diabetes"], 400, json={**EXAMPLES["diabetes"], "glucose_mg_dl": 9999}))
    if heavy_batch:
        records = {"records": [EXAMPLES["breast_cancer"]] * heavy_batch}
        mix.append(Request("heavy_batch", ROUTES["breast_cancer"] + "/batch", 200, json=records))
    return mix


@dataclass
class Load:
    """Closed-loop load: ``concurrency`` workers each send one request after the other.

    Attributes:
        results: every finished request, in completion order.

    """

    url: str
    token: str | None
    mix: list[Request]
    concurrency: int = 8
    duration_s: float = 10.0
    max_requests: int = 1_000_000
    timeout_s: float = 60.0
    results: list[Result] = field(default_factory=list)

    def __post_init__(self) -> None:
        require_loopback(self.url)
        self.stop = asyncio.Event()
        self.t0 = 0.0

    async def _worker(self, client: httpx.AsyncClient, order, deadline: float, counter) -> None:
        while not self.stop.is_set() and time.monotonic() < deadline and next(counter) < self.max_requests:
            request = next(order)
            started = time.monotonic()
            try:
                response = await client.post(request.path, json=request.json, files=request.files)
                status, error = response.status_code, ""
                if status != request.expected:
                    error = response.text[:200]
            except httpx.HTTPError as exc:
                status, error = None, f"{type(exc).__name__}: {exc}"[:200]
            self.results.append(
                Result(request.name, started - self.t0, time.monotonic() - started, status, request.expected, error)
            )

    async def run(self) -> list[Result]:
        """Send load until the deadline, the request cap, or :attr:`stop` is set."""
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
        self.t0 = time.monotonic()
        deadline = self.t0 + self.duration_s
        counter = itertools.count()
        async with httpx.AsyncClient(
            base_url=self.url, headers=headers, limits=limits, timeout=self.timeout_s
        ) as client:
            workers = []
            for i in range(self.concurrency):
                order = itertools.islice(itertools.cycle(self.mix), i, None)
                workers.append(self._worker(client, order, deadline, counter))
            await asyncio.gather(*workers)
        return self.results


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (0-100), nearest rank; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def summarise(results: list[Result]) -> dict:
    """Counts, error breakdown and latency percentiles (ms)."""
    latencies = [r.latency * 1000 for r in results if r.ok]
    errors: dict[str, int] = {}
    for r in results:
        if not r.ok:
            key = f"{r.name}: {r.status if r.status is not None else r.error.split(':')[0]}"
            errors[key] = errors.get(key, 0) + 1
    return {
        "requests": len(results),
        "errors": sum(not r.ok for r in results),
        "error_kinds": errors,
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
        "max_ms": max(latencies) if latencies else None,
    }


def write(path: Path, data: dict) -> None:
    """Write a results file (JSON), creating its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
