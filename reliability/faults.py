"""Fault injection under load: SIGKILL a worker, SIGTERM the server, and a request over the timeout.

Each function starts its own `bentoml serve` on 127.0.0.1, runs a bounded closed-loop load
(reliability.load), injects the fault, and returns a results dict with ``passed`` and the figures.
"""

from __future__ import annotations

import asyncio
import os
import signal
import tempfile
import time
from pathlib import Path

import httpx

from reliability.common import machine, server_env, workers
from reliability.load import Load, request_mix, summarise
from tests.utils.payloads import EXAMPLES, ROUTES
from tests.utils.serving import Served


def kill_worker(
    *, concurrency: int = 8, before_s: float = 8, after_s: float = 40, recovery_bound_s: float = 30
) -> dict:
    """SIGKILL the (one) API worker under load; it must be replaced and the service answer again."""
    env, token = server_env()
    with Served(env) as server:
        load = Load(server.url, token, request_mix(), concurrency=concurrency, duration_s=before_s + after_s)

        async def scenario():
            running = asyncio.create_task(load.run())
            await asyncio.sleep(before_s)
            victims = workers(server.process.pid)
            old = {p.pid for p in victims}
            killed_at = time.monotonic() - load.t0
            for process in victims:
                os.kill(process.pid, signal.SIGKILL)
            replaced_at = None
            while replaced_at is None and time.monotonic() - load.t0 < before_s + after_s:
                if {p.pid for p in workers(server.process.pid)} - old:
                    replaced_at = time.monotonic() - load.t0
                await asyncio.sleep(0.1)
            results = await running
            return victims, killed_at, replaced_at, results

        victims, killed_at, replaced_at, results = asyncio.run(scenario())
        after = [r for r in results if r.started >= killed_at]
        first_ok = min((r.started + r.latency for r in after if r.ok), default=None)
        failed = [r for r in results if not r.ok]
        failed_after = [r for r in failed if r.started + r.latency >= killed_at]
        alive = server.process.poll() is None
    answered_again_s = None if first_ok is None else round(first_ok - killed_at, 2)
    return {
        "scenario": "SIGKILL the API worker under load",
        "machine": machine(),
        "concurrency": concurrency,
        "workers_killed": len(victims),
        "worker_replaced_after_s": None if replaced_at is None else round(replaced_at - killed_at, 2),
        "answered_again_after_s": answered_again_s,
        "server_still_running": alive,
        "failed_requests": len(failed),
        "failed_requests_after_kill": len(failed_after),
        "load": summarise(results),
        "passed": bool(
            victims
            and alive
            and replaced_at is not None
            and answered_again_s is not None
            and answered_again_s <= recovery_bound_s
        ),
    }


def terminate(*, concurrency: int = 8, before_s: float = 6, after_s: float = 15, heavy_batch: int = 3000) -> dict:
    """SIGTERM the server under load: in-flight requests complete, new ones are refused, exit status 0."""
    env, token = server_env()
    with Served(env) as server:
        load = Load(
            server.url,
            token,
            request_mix(heavy_batch=heavy_batch),
            concurrency=concurrency,
            duration_s=before_s + after_s,
        )

        async def scenario():
            running = asyncio.create_task(load.run())
            await asyncio.sleep(before_s)
            term_at = time.monotonic() - load.t0
            os.kill(server.process.pid, signal.SIGTERM)
            while server.process.poll() is None and time.monotonic() - load.t0 < before_s + after_s:
                await asyncio.sleep(0.05)
            exited_at = time.monotonic() - load.t0
            await asyncio.sleep(1.0)  # a little traffic after the exit: refused at once
            load.stop.set()
            return term_at, exited_at, await running

        term_at, exited_at, results = asyncio.run(scenario())
        status = server.process.poll()
    in_flight = [r for r in results if r.started < term_at < r.started + r.latency]
    lost = [r for r in in_flight if not r.ok]
    after = [r for r in results if r.started > term_at + 0.05]
    refused = [r for r in after if r.status is None]
    slowest_refusal = max((r.latency for r in refused), default=None)
    answered_after = [r for r in after if r.status is not None]
    return {
        "scenario": "SIGTERM `bentoml serve` under load",
        "machine": machine(),
        "concurrency": concurrency,
        "exit_status": status,
        "shutdown_s": round(exited_at - term_at, 2),
        "in_flight_at_sigterm": len(in_flight),
        "in_flight_completed": len(in_flight) - len(lost),
        "in_flight_lost": [f"{r.name}: {r.status} {r.error}" for r in lost],
        "sent_after_sigterm": len(after),
        "answered_after_sigterm": {
            str(s): sum(r.status == s for r in answered_after) for s in {r.status for r in answered_after}
        },
        "refused_after_sigterm": len(refused),
        "slowest_refusal_ms": None if slowest_refusal is None else round(slowest_refusal * 1000, 1),
        "refusal_errors": sorted({r.error.split(":")[0] for r in refused}),
        "load": summarise(results),
        "passed": bool(status == 0 and in_flight and not lost and (slowest_refusal or 0) < 5),
    }


def request_timeout(*, timeout_s: int = 2, records: int = 10_000) -> dict:
    """With ``traffic.timeout`` set small through BENTOML_CONFIG, a slow request gets 504, not a hang."""
    config = Path(tempfile.mkstemp(prefix="vitalcheck-timeout-", suffix=".yaml")[1])
    config.write_text(f"services:\n  vitalcheck:\n    traffic:\n      timeout: {timeout_s}\n")
    env, token = server_env(BENTOML_CONFIG=str(config))
    headers = {"Authorization": f"Bearer {token}"}
    with Served(env) as server, httpx.Client(base_url=server.url, headers=headers, timeout=120) as client:
        client.post(ROUTES["breast_cancer"], json=EXAMPLES["breast_cancer"])  # warm up
        started = time.monotonic()
        slow = client.post(ROUTES["breast_cancer"] + "/batch", json={"records": [EXAMPLES["breast_cancer"]] * records})
        elapsed = time.monotonic() - started
        time.sleep(timeout_s)
        after = client.post(ROUTES["diabetes"], json=EXAMPLES["diabetes"])
    config.unlink()
    return {
        "scenario": f"a {records}-record batch against traffic.timeout = {timeout_s} s",
        "machine": machine(),
        "status": slow.status_code,
        "body": slow.text[:200],
        "answered_after_s": round(elapsed, 2),
        "next_request_status": after.status_code,
        "passed": slow.status_code == 504 and elapsed < timeout_s + 5 and after.status_code == 200,
    }
