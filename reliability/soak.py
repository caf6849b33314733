"""Soak: closed-loop load at concurrency 32 over the whole mix for N minutes.

Reports per minute the requests, errors, p50 and p99 latency, and the resident memory (RSS) of
the `bentoml serve` process tree, sampled every 5 s; memory growth is measured from minute 2
(after warm-up; for runs under 4 minutes, from the middle) to the end.
"""

from __future__ import annotations

import asyncio
import time

from reliability.common import machine, server_env, tree_rss
from reliability.load import Load, percentile, request_mix, summarise
from tests.utils.serving import Served

GROWTH_LIMIT = 0.10
"""Largest accepted RSS growth from minute 2 to the end."""


def soak(minutes: float = 10, *, concurrency: int = 32, sample_s: float = 5.0) -> dict:
    """Run the soak; return per-minute figures, memory samples and ``passed``."""
    duration = minutes * 60
    env, token = server_env()
    with Served(env) as server:
        load = Load(server.url, token, request_mix(), concurrency=concurrency, duration_s=duration)
        samples: list[tuple[float, int]] = []

        async def sampler():
            while not load.stop.is_set():
                samples.append((round(time.monotonic() - load.t0, 1), tree_rss(server.process.pid)))
                try:
                    await asyncio.wait_for(load.stop.wait(), timeout=sample_s)
                except TimeoutError:
                    pass

        async def scenario():
            sampling = asyncio.create_task(sampler())
            results = await load.run()
            load.stop.set()
            await sampling
            return results

        results = asyncio.run(scenario())
        alive = server.process.poll() is None
    per_minute = []
    for minute in range(int(-(-duration // 60))):
        window = [r for r in results if minute * 60 <= r.started < (minute + 1) * 60]
        ok = [r.latency * 1000 for r in window if r.ok]
        rss = [m for t, m in samples if minute * 60 <= t < (minute + 1) * 60]
        per_minute.append(
            {
                "minute": minute + 1,
                "requests": len(window),
                "errors": sum(not r.ok for r in window),
                "p50_ms": _round(percentile(ok, 50)),
                "p99_ms": _round(percentile(ok, 99)),
                "rss_mib": round(max(rss) / 2**20, 1) if rss else None,
            }
        )
    baseline_at = 120 if duration >= 240 else duration / 2
    baseline = [m for t, m in samples if abs(t - baseline_at) <= sample_s]
    final = [m for t, m in samples[-3:]]
    growth = (sum(final) / len(final)) / (sum(baseline) / len(baseline)) - 1 if baseline and final else None
    total = summarise(results)
    return {
        "scenario": f"soak: {minutes} min at concurrency {concurrency} over every endpoint",
        "machine_at_end": machine(),
        "minutes": minutes,
        "concurrency": concurrency,
        "total": total,
        "throughput_rps": round(len(results) / duration, 1),
        "per_minute": per_minute,
        "rss_baseline_at_s": baseline_at,
        "rss_growth": None if growth is None else round(growth, 4),
        "rss_samples": samples,
        "server_still_running": alive,
        "passed": bool(alive and total["errors"] == 0 and growth is not None and growth < GROWTH_LIMIT),
    }


def _round(value):
    return None if value is None else round(value, 1)
