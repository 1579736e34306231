"""Threads for synchronous activity functions, cheaper per call than `loop.run_in_executor`.

Short activities come in bursts. Through `run_in_executor` each call costs a concurrent future
chained to an asyncio future and its own wake-up of the event loop (a write to its self-pipe). Here
a call is a queue entry and an asyncio future, and finished calls are handed back in batches: the
loop is woken once for whatever finished since it last looked.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

_T = TypeVar("_T")
_STOP = None


class LeftBehind(Exception):
    """`run` stopped waiting for a call that ran past its timeout (the call goes on)."""


class _Call:
    """A queued call, and the thread that took it (to leave that thread behind on a timeout)."""

    __slots__ = ("call", "future", "running", "thread")

    def __init__(self, future: asyncio.Future[Any], call: Callable[[], Any]) -> None:
        self.future = future
        self.call = call
        self.thread: threading.Thread | None = None
        self.running = False


class ActivityThreads:
    """Up to `size` threads, started as calls outnumber idle threads, running calls in arrival order.

    Threads are daemons: after `shutdown` a call that never returns does not keep the process alive
    (the runtime has released its lease by then, so another worker runs it again). A call that runs
    past its timeout is left behind with its thread, which no longer counts towards `size` and ends
    once the call returns."""

    def __init__(self, size: int, name: str) -> None:
        if size < 1:
            raise ValueError("size must be at least 1")
        self._size = size
        self._name = name
        self._calls: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._left_behind: set[threading.Thread] = set()
        self._finished: deque[tuple[asyncio.Future[Any], Any, BaseException | None]] = deque()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._waiting = 0
        self._queued = 0
        self._waking = False
        self._closed = False

    async def run(self, call: Callable[[], _T], timeout: float | None = None) -> _T:
        """Run `call` on one of the threads and return (or raise) what it did; `TimeoutError` if it
        runs longer than `timeout` seconds, `LeftBehind` (it goes on, on a thread of its own)."""
        future: asyncio.Future[_T] = asyncio.get_running_loop().create_future()
        item = _Call(future, call)
        with self._lock:
            if self._closed:
                raise RuntimeError("activity threads are shut down")
            self._queued += 1
            if self._queued > self._waiting and len(self._threads) < self._size:
                thread = threading.Thread(
                    target=self._work, name=f"{self._name}-{len(self._threads)}", daemon=True
                )
                self._threads.append(thread)
                thread.start()
        self._calls.put(item)
        if timeout is None:
            return await future
        try:
            done, _ = await asyncio.wait({future}, timeout=timeout)
        except asyncio.CancelledError:
            future.cancel()  # as awaiting the future would: a call not started yet never starts
            raise
        if done:
            return future.result()
        self._leave_behind(item)
        raise LeftBehind

    def _leave_behind(self, item: _Call) -> None:
        """Stop waiting for `item`: not started yet, it never will; running, its thread stops
        counting towards the pool and ends after it."""
        item.future.cancel()
        with self._lock:
            thread = item.thread
            if item.running and thread is not None and thread in self._threads:
                self._threads.remove(thread)
                self._left_behind.add(thread)

    def shutdown(self) -> None:
        """Cancel the calls not started yet and let every thread end after its current call."""
        with self._lock:
            self._closed = True
            count = len(self._threads)
        while True:
            try:
                item = self._calls.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                item.future.cancel()
        for _ in range(count):
            self._calls.put(_STOP)

    def _work(self) -> None:
        me = threading.current_thread()
        while True:
            with self._lock:
                self._waiting += 1
            item = self._calls.get()
            with self._lock:
                self._waiting -= 1
                self._queued -= 1
                if item is not None:
                    item.thread = me
                    item.running = not item.future.cancelled()
            if item is None:  # _STOP
                return
            if not item.running:  # cancelled (left behind, or its task cancelled) before it started
                continue
            try:
                self._finish(item.future, item.call(), None)
            except BaseException as exc:  # handed to the awaiting coroutine, as run_in_executor does
                self._finish(item.future, None, exc)
            with self._lock:
                item.running = False
                if me in self._left_behind:
                    self._left_behind.discard(me)
                    return

    def _finish(self, future: asyncio.Future[Any], value: Any, error: BaseException | None) -> None:
        self._finished.append((future, value, error))
        with self._lock:
            if self._waking:
                return  # a delivery is already on its way and will take this one too
            self._waking = True
        try:
            future.get_loop().call_soon_threadsafe(self._deliver)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            with self._lock:
                self._waking = False

    def _deliver(self) -> None:
        with self._lock:
            self._waking = False  # before draining: what finishes from here on schedules its own
        while self._finished:
            future, value, error = self._finished.popleft()
            if future.done():  # cancelled meanwhile
                continue
            if error is None:
                future.set_result(value)
            elif isinstance(error, StopIteration):  # a future refuses it (it would end a generator)
                failure = RuntimeError(f"activity raised StopIteration: {error}")
                failure.__cause__ = error
                future.set_exception(failure)
            else:
                future.set_exception(error)
