"""Opportunistic micro-batching: concurrent single-record requests scored with one vectorised call.

A :class:`MicroBatcher` queues each caller's item. While no batch is running, a batch starts
at once with everything queued (at most ``max_batch`` items): a lone request is never held
back waiting for company (no timer), and under load every request that arrived while the
previous batch was computing rides in the next one. A compiled VitalCheck tabular prediction
costs a near-fixed ~0.1 ms of NumPy calls per batch plus a few microseconds per record, so under
concurrency this multiplies throughput and adds nothing at concurrency 1 (docs/BENCHMARKS.md).

By default ``score`` runs on the event loop itself: handing ~0.1 ms of work to a worker thread
costs more than the work (the thread hop, and the GIL held by the loop meanwhile). Pass
``in_thread=True`` for a ``score`` that takes long enough to stall other requests.

BentoML's own adaptive batching (``@bentoml.api(batchable=True)``) is not used for the
single-record endpoints because it turns the request body into a JSON array.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import anyio.to_thread


class MicroBatcher:
    """Merge concurrent calls of ``score`` made on one event loop.

    Args:
        score: maps a list of items to a list of results of the same length and order. If it raises
            on a batch, each item of that batch is scored alone, so one bad item fails only its
            own caller.
        max_batch: most items per call of ``score`` (≥ 1; 1 disables merging).
        observe: called with the size of every batch (e.g. a Prometheus histogram's ``observe``).
        in_thread: run ``score`` in a worker thread rather than on the event loop.

    Raises:
        ValueError: ``max_batch`` < 1.

    """

    def __init__(
        self,
        score: Callable[[Sequence[Any]], Sequence[Any]],
        max_batch: int = 64,
        observe: Callable[[int], None] | None = None,
        in_thread: bool = False,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.score = score
        self.max_batch = max_batch
        self.observe = observe
        self.in_thread = in_thread
        self.batches = 0
        """Number of calls of ``score`` made so far (retries of a failed batch included)."""
        self.items = 0
        """Number of items scored so far."""
        self._queue: list[tuple[Any, asyncio.Future]] = []
        self._running = False
        self._loop: asyncio.AbstractEventLoop | None = None

    async def submit(self, item: Any) -> Any:
        """Score one item together with whatever else is queued; return its result or raise its error."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # first use, or a new event loop: nothing queued on the old one survives
            self._loop, self._queue, self._running = loop, [], False
        future = loop.create_future()
        self._queue.append((item, future))
        if not self._running:
            self._running = True
            loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
                try:
                    results = await self._call([item for item, _ in batch])
                except Exception:
                    for item, future in batch:  # one bad item must not fail the others
                        await self._alone(item, future)
                    continue
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():  # the caller may have gone (cancelled, timed out)
                        future.set_result(result)
        finally:
            self._running = False

    async def _call(self, items: list[Any]) -> Sequence[Any]:
        self.batches += 1
        self.items += len(items)
        if self.observe is not None:
            self.observe(len(items))
        results = await anyio.to_thread.run_sync(self.score, items) if self.in_thread else self.score(items)
        if len(results) != len(items):
            raise ValueError(f"score returned {len(results)} results for {len(items)} items")
        return results

    async def _alone(self, item: Any, future: asyncio.Future) -> None:
        try:
            (result,) = await self._call([item])
        except Exception as exc:
            if not future.done():
                future.set_exception(exc)
        else:
            if not future.done():
                future.set_result(result)
