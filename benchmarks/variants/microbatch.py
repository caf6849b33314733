"""Opportunistic micro-batching: concurrent single-record calls scored with one vectorised call.

A :class:`MicroBatcher` queues each caller's record. While no batch is running, the next batch
starts at once with everything queued (at most ``max_batch`` records): a lone request is never
delayed waiting for company, and under load every request that arrived while the previous batch
was computing rides in the next one. Each VitalCheck prediction costs a near-fixed ~10 ms of
pandas/scikit-learn overhead per call plus well under 1 ms per record, so under concurrency
this multiplies throughput while adding no latency at concurrency 1.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import anyio.to_thread


class MicroBatcher:
    """Merge concurrent calls of ``score`` on one event loop.

    Args:
        score: maps a list of items to a list of results of the same length, in order. It runs
            in a worker thread so the event loop keeps accepting requests meanwhile.
        max_batch: most items per call of ``score``.

    """

    def __init__(self, score: Callable[[Sequence[Any]], Sequence[Any]], max_batch: int = 64) -> None:
        self.score = score
        self.max_batch = max_batch
        self._queue: list[tuple[Any, asyncio.Future]] = []
        self._running = False
        self.batch_sizes: list[int] = []

    async def submit(self, item: Any) -> Any:
        """Score one item (with whatever else is queued); return its result or raise its error."""
        future = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if not self._running:
            self._running = True
            asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
                self.batch_sizes.append(len(batch))
                try:
                    results = await anyio.to_thread.run_sync(self.score, [item for item, _ in batch])
                except Exception:
                    # One bad item must not fail the others: score them one by one.
                    for item, future in batch:
                        await self._single(item, future)
                    continue
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(result)
        finally:
            self._running = False

    async def _single(self, item: Any, future: asyncio.Future) -> None:
        try:
            (result,) = await anyio.to_thread.run_sync(self.score, [item])
        except Exception as exc:
            if not future.done():
                future.set_exception(exc)
        else:
            if not future.done():
                future.set_result(result)
