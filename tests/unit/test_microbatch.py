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


def burst(batcher, score, first, rest):
    """Submit ``first``; hold its batch in the scoring thread while ``rest`` arrive; release; gather all."""

    async def scenario():
        score.release.clear()
        head = asyncio.ensure_future(batcher.submit(first))
        await asyncio.sleep(0.05)
        tail = [asyncio.ensure_future(batcher.submit(i)) for i in rest]
        await asyncio.sleep(0.05)
        score.release.set()
        return await asyncio.gather(head, *tail, return_exceptions=True)

    return asyncio.run(scenario())


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
    assert burst(batcher, score, 0, range(1, 10)) == [i * 10 for i in range(10)]
    assert score.batches == [[0], list(range(1, 10))]
    assert sizes == [1, 9]


def test_max_batch_splits_the_queue():
    score = Recorder()
    batcher = MicroBatcher(score, max_batch=4)
    assert burst(batcher, score, 0, range(1, 11)) == [i * 10 for i in range(11)]
    assert [len(b) for b in score.batches] == [1, 4, 4, 2]


def test_one_bad_item_fails_only_its_caller():
    score = Recorder(fail_on=5)
    results = burst(MicroBatcher(score), score, 0, (4, 5, 6))
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
