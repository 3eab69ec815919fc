import asyncio

import numpy as np

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
