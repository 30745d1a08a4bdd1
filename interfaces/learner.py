"""A synthesizer's learning step on a thread of its own, off the agent's path.

Why: M's prediction is needed now, its learning is not. Where the agent's process has a spare core, the
learning step (forward, backward and optimizer step: most of M's cost) can run beside the agent's own work
instead of inside it. torch releases the GIL inside its kernels and each agent runs one intra-op thread,
so the two threads use two cores. The queue is bounded: a learner that falls behind makes the agent wait
(backpressure), it never drops targets. An error in the thread is raised in the agent's thread at its
next call, with the thread's traceback as its cause.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any

_STOP = object()


class BackgroundLearner:
    """Runs ``fit(*item)`` for each submitted item, in order, on one daemon thread."""

    def __init__(self, fit: Callable[..., dict[str, float]], capacity: int, name: str = "sg-learner") -> None:
        self._fit = fit
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max(1, capacity))
        self._stats: list[dict[str, float]] = []
        self._stats_lock = threading.Lock()
        self._error: BaseException | None = None
        self.waits = 0  # submissions that found the queue full and waited for the thread
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is _STOP:
                    return
                if self._error is None:  # after a failure, drain without fitting
                    stats = self._fit(*item)
                    with self._stats_lock:
                        self._stats.append(stats)
            except BaseException as err:  # noqa: BLE001 - handed to the agent's thread by check()
                self._error = err
            finally:
                self._queue.task_done()

    def check(self) -> None:
        """Raise here what the thread raised (RuntimeError, with the original as its cause)."""
        if self._error is not None:
            raise RuntimeError(f"the synthesizer's learner thread failed: {self._error!r}") from self._error

    def submit(self, *item: Any) -> None:
        self.check()
        if self._queue.full():
            self.waits += 1
        self._queue.put(item)

    def results(self) -> dict[str, float] | None:
        """The mean of each statistic over the steps fitted since the last call (None if none)."""
        self.check()
        with self._stats_lock:
            done, self._stats = self._stats, []
        if not done:
            return None
        return {key: sum(s[key] for s in done) / len(done) for key in done[0]}

    @property
    def backlog(self) -> int:
        """Items submitted and not yet fitted."""
        return self._queue.qsize()

    def drain(self) -> None:
        """Wait until every submitted item is fitted."""
        self._queue.join()
        self.check()

    def close(self) -> None:
        """Fit what is queued, then stop the thread."""
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join()
        self.check()
