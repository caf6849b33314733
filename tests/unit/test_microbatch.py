"""vitalcheck.microbatch.MicroBatcher: merging, order, isolation of failures, limits."""

import asyncio
import threading

import pytest

from vitalcheck.microbatch import MicroBatcher


class Recorder:
    """A ``score`` that records each batch it gets; optionally blocks until released."""

    def __init__(self, fail_on=None):
        self.batches: list[list] = []
        self.fail_on = fail_on
        self.release = threading.Event()
        self.release.set()

    def __call__(self, items):
        self.release.wait(5)
        self.batches.append(list(items))
        if self.fail_on is not None and self.fail_on in items:
            raise ValueError("bad item")
        return [item * 10 for item in items]


def test_lone_request_is_scored_alone_and_at_once():
    score = Recorder()
    batcher = MicroBatcher(score)
    assert asyncio.run(batcher.submit(3)) == 30
    assert score.batches == [[3]]
    assert (batcher.batches, batcher.items) == (1, 1)


def test_requests_arriving_during_a_batch_ride_in_the_next_one_in_order():
    score = Recorder()
    sizes = []
    batcher = MicroBatcher(score, observe=sizes.append)

    async def scenario():
        score.release.clear()  # hold the first batch in its thread while 9 more arrive
        first = asyncio.ensure_future(batcher.submit(0))
        await asyncio.sleep(0.05)
        rest = [asyncio.ensure_future(batcher.submit(i)) for i in range(1, 10)]
        await asyncio.sleep(0.05)
        score.release.set()
        return await asyncio.gather(first, *rest)

    assert asyncio.run(scenario()) == [i * 10 for i in range(10)]
    assert score.batches == [[0], list(range(1, 10))]
    assert sizes == [1, 9]


def test_max_batch_splits_the_queue():
    score = Recorder()
    batcher = MicroBatcher(score, max_batch=4)

    async def scenario():
        score.release.clear()
        first = asyncio.ensure_future(batcher.submit(0))
        await asyncio.sleep(0.05)
        rest = [asyncio.ensure_future(batcher.submit(i)) for i in range(1, 11)]
        await asyncio.sleep(0.05)
        score.release.set()
        return await asyncio.gather(first, *rest)

    assert asyncio.run(scenario()) == [i * 10 for i in range(11)]
    assert [len(b) for b in score.batches] == [1, 4, 4, 2]


def test_one_bad_item_fails_only_its_caller():
    score = Recorder(fail_on=5)
    batcher = MicroBatcher(score)

    async def scenario():
        score.release.clear()
        first = asyncio.ensure_future(batcher.submit(0))
        await asyncio.sleep(0.05)
        rest = [asyncio.ensure_future(batcher.submit(i)) for i in (4, 5, 6)]
        await asyncio.sleep(0.05)
        score.release.set()
        return await asyncio.gather(first, *rest, return_exceptions=True)

    results = asyncio.run(scenario())
    assert results[0] == 0 and results[1] == 40 and results[3] == 60
    assert isinstance(results[2], ValueError)
    assert [4, 5, 6] in score.batches and [4] in score.batches and [6] in score.batches


def test_a_score_returning_the_wrong_count_is_an_error():
    batcher = MicroBatcher(lambda items: [])
    with pytest.raises(ValueError, match="0 results for 1 items"):
        asyncio.run(batcher.submit(1))


def test_usable_from_successive_event_loops():
    batcher = MicroBatcher(Recorder())
    assert [asyncio.run(batcher.submit(i)) for i in range(3)] == [0, 10, 20]


def test_max_batch_must_be_positive():
    with pytest.raises(ValueError):
        MicroBatcher(Recorder(), max_batch=0)
