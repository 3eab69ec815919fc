"""Micro-batching: requests that arrive together share one model call.

A worker thread collects whatever arrives within `window_s` (up to `max_batch` images) and calls
the model once for all, so its fixed cost per call is shared as the load grows.
"""

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable

import numpy as np


class MicroBatcher:
    """Runs `predict_proba` on batches of whatever requests arrive together."""

    def __init__(self, predict_proba: Callable[[np.ndarray], np.ndarray], max_batch: int, window_s: float):
        self.predict_proba, self.max_batch, self.window_s = predict_proba, max_batch, window_s
        self.pending: list[tuple[np.ndarray, asyncio.Future, asyncio.AbstractEventLoop]] = []
        self.wakeup = threading.Condition()
        self.running = True
        self.thread = threading.Thread(target=self._work, name="digitrec-batcher", daemon=True)
        self.thread.start()

    async def submit(self, images: np.ndarray) -> np.ndarray:
        """Probabilities for `(n, 28, 28)` images, computed with other requests' images."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future = loop.create_future()
        with self.wakeup:
            self.pending.append((images, future, loop))
            self.wakeup.notify()
        return await future

    def close(self) -> None:
        with self.wakeup:
            self.running = False
            self.wakeup.notify()
        self.thread.join(timeout=5)

    def _work(self) -> None:
        while True:
            with self.wakeup:
                while self.running and not self.pending:
                    self.wakeup.wait()
                if not self.running:
                    return
            time.sleep(self.window_s)  # let concurrent requests join this batch
            with self.wakeup:
                batch: list[tuple[np.ndarray, asyncio.Future, asyncio.AbstractEventLoop]] = []
                count = 0
                while self.pending and (not batch or count + len(self.pending[0][0]) <= self.max_batch):
                    batch.append(self.pending.pop(0))
                    count += len(batch[-1][0])
            self._run(batch)

    def _run(self, batch: list) -> None:
        try:
            probs = self.predict_proba(np.concatenate([images for images, _, _ in batch]))
        except Exception as exc:  # answer every waiting request; the server itself lives on
            for _, future, loop in batch:
                loop.call_soon_threadsafe(_settle, future, None, exc)
            return
        start = 0
        for images, future, loop in batch:
            loop.call_soon_threadsafe(_settle, future, probs[start : start + len(images)], None)
            start += len(images)


def inline(
    predict_proba: Callable[[np.ndarray], np.ndarray],
) -> Callable[[np.ndarray], Awaitable[np.ndarray]]:
    """`predict_proba` behind the same awaitable interface as `MicroBatcher.submit`."""

    async def infer(images: np.ndarray) -> np.ndarray:
        return predict_proba(images)

    return infer


def _settle(future: asyncio.Future, result, error) -> None:
    if not future.done():
        future.set_exception(error) if error else future.set_result(result)
