import asyncio
import time

import numpy as np
import pytest

from digitrec.batching import MicroBatcher, inline


def _sums(calls: list[int]):
    def predict_proba(images: np.ndarray) -> np.ndarray:
        calls.append(len(images))
        return images.reshape(len(images), -1).sum(axis=1, keepdims=True)

    return predict_proba


async def _submit_together(batcher: MicroBatcher, batches: list[np.ndarray]) -> list[np.ndarray]:
    return await asyncio.gather(*(batcher.submit(images) for images in batches))


def test_requests_arriving_together_share_one_call_and_get_their_own_rows():
    calls: list[int] = []
    batcher = MicroBatcher(_sums(calls), max_batch=8, window_s=0.2)
    batches = [np.full((n, 28, 28), k, np.float32) for k, n in enumerate((1, 2, 3), start=1)]
    try:
        answers = asyncio.run(_submit_together(batcher, batches))
    finally:
        batcher.close()
    assert calls == [6]
    assert [a[:, 0].tolist() for a in answers] == [[784.0], [1568.0] * 2, [2352.0] * 3]


def test_a_batch_never_grows_past_max_batch():
    calls: list[int] = []
    batcher = MicroBatcher(_sums(calls), max_batch=4, window_s=0.2)
    try:
        asyncio.run(_submit_together(batcher, [np.zeros((3, 28, 28), np.float32)] * 3))
    finally:
        batcher.close()
    assert calls == [3, 3, 3]


def test_a_failing_model_call_reaches_every_waiting_request():
    def broken(images: np.ndarray) -> np.ndarray:
        raise RuntimeError("model exploded")

    async def both(batcher: MicroBatcher) -> list:
        images = np.zeros((1, 28, 28), np.float32)
        return await asyncio.gather(batcher.submit(images), batcher.submit(images), return_exceptions=True)

    batcher = MicroBatcher(broken, max_batch=8, window_s=0.2)
    try:
        errors = asyncio.run(both(batcher))
    finally:
        batcher.close()
    assert [str(e) for e in errors] == ["model exploded"] * 2


def test_inline_answers_with_the_model_itself():
    calls: list[int] = []
    answer = asyncio.run(inline(_sums(calls))(np.ones((2, 28, 28), np.float32)))
    assert calls == [2] and answer[:, 0].tolist() == [784.0, 784.0]


def test_the_work_pool_keeps_what_runs_within_its_memory_budget():
    from digitrec.batching import WorkPool

    running: list[int] = []
    peak: list[int] = []

    def job(cost: int) -> int:
        running.append(cost)
        peak.append(sum(running))
        time.sleep(0.05)
        running.remove(cost)
        return cost

    async def main() -> list[int]:
        pool = WorkPool(workers=4, capacity_bytes=100, max_waiting=10)
        try:
            return await asyncio.gather(*(pool.run(cost, job, cost) for cost in (60, 60, 30, 30, 100)))
        finally:
            pool.close()

    assert asyncio.run(main()) == [60, 60, 30, 30, 100] and max(peak) <= 100


def test_a_job_whose_request_gave_up_while_waiting_never_runs_and_a_full_queue_is_busy():
    from digitrec.batching import Busy, WorkPool

    ran: list[str] = []

    def job(name: str) -> None:
        time.sleep(0.2)
        ran.append(name)

    async def main() -> None:
        pool = WorkPool(workers=2, capacity_bytes=10, max_waiting=1)
        first = asyncio.ensure_future(pool.run(10, job, "first"))
        await asyncio.sleep(0.01)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(pool.run(10, job, "timed out"), 0.05)  # waits, then gives up
        waiting = asyncio.ensure_future(pool.run(10, job, "third"))
        await asyncio.sleep(0.01)
        with pytest.raises(Busy, match="already waiting"):
            await pool.run(10, job, "refused")
        await asyncio.gather(first, waiting)
        assert pool.in_use == 0
        pool.close()

    asyncio.run(main())
    assert ran == ["first", "third"]
