"""Work off the event loop: micro-batches for the model, a bounded pool for decoding.

`MicroBatcher`: a worker thread collects whatever arrives within `window_s` (up to `max_batch`
images) and calls the model once for all, so its fixed cost per call is shared as the load grows.

`WorkPool`: decoding a large image or parsing a large JSON body on worker threads, with admission
control. Each job states what it will cost in memory; jobs start while what is in flight fits
`capacity_bytes`, in order of arrival, and a job arriving while `max_waiting` others wait is
refused at once (`Busy`). A job whose request is cancelled (its time limit passed) while it waits
never starts; one that has started runs to its end, as a thread cannot be interrupted, and holds
its share of the budget until then: memory stays bounded even after its request is answered 408.
"""

import asyncio
import collections
import concurrent.futures
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")


class Busy(Exception):
    """More work is waiting for the pool than it accepts: the request should be retried later."""


class WorkPool:
    """Runs CPU-heavy functions on `workers` threads within a memory budget (see the module doc)."""

    def __init__(self, workers: int, capacity_bytes: int, max_waiting: int):
        self.executor = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="digitrec-work")
        self.capacity, self.max_waiting = capacity_bytes, max_waiting
        self.in_use = 0  # bytes reserved by jobs queued in the executor or running
        self.waiting: collections.deque[tuple[int, asyncio.Future]] = collections.deque()

    async def run(self, cost_bytes: int, function: Callable[..., T], *args: Any) -> T:
        """`function(*args)` on a worker thread, once `cost_bytes` fits the budget."""
        cost = max(1, min(cost_bytes, self.capacity))
        loop = asyncio.get_running_loop()
        if self.waiting or self.in_use + cost > self.capacity:
            await self._wait_for_turn(cost, loop)
        else:
            self.in_use += cost
        job = self.executor.submit(function, *args)
        # Released when the thread is done (or the job is cancelled before it started), never
        # when the awaiting request gives up: a decode that runs on still holds its memory.
        job.add_done_callback(lambda _: loop.call_soon_threadsafe(self._release, cost))
        return await asyncio.wrap_future(job)

    async def _wait_for_turn(self, cost: int, loop: asyncio.AbstractEventLoop) -> None:
        if len(self.waiting) >= self.max_waiting:
            raise Busy(f"{len(self.waiting)} large requests are already waiting; retry in a few seconds")
        entry = (cost, loop.create_future())
        self.waiting.append(entry)
        try:
            await entry[1]
        except asyncio.CancelledError:
            if entry[1].done() and not entry[1].cancelled():
                self._release(cost)  # granted just as it was cancelled: give the share back
            else:
                self.waiting.remove(entry)
            raise

    def _release(self, cost: int) -> None:
        self.in_use -= cost
        while self.waiting and self.in_use + self.waiting[0][0] <= self.capacity:
            cost, turn = self.waiting.popleft()
            self.in_use += cost
            turn.set_result(None)

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)


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
