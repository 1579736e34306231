"""Orchestrator and entity code runs on a thread of its own, under a deadline, never on the loop.

A batch of episodes goes to the episode thread in one hop and comes back in one. While it runs, the
event loop stays free (other work, lease renewals, signals, the HTTP API) and watches the clock: an
episode still running past its deadline gets `OrchestratorDeadlock` raised inside it, with a
message naming where its code was, which fails that instance alone. Code that swallows the
exception is interrupted again. Code blocked outside Python (a C call) cannot be interrupted at
all: after a grace period the thread is given up, the episode gets the result its job names for
that case, the episodes after it are handed back unrun, and `lost` says why, for the runtime to
stop (a supervisor then starts a fresh process). When the worker stops, an episode still running
shortly after is interrupted and handed back unrun, so a stop is never held up by user code.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import linecache
import logging
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from queue import SimpleQueue
from types import FrameType
from typing import Any, Generic, TypeVar

from asynkron_durable.errors import OrchestratorDeadlock

T = TypeVar("T")

log = logging.getLogger("asynkron_durable.runtime")

MAX_INTERRUPTIONS = 20
"""Interruptions that reach code which catches them and runs on, before the thread is given up."""

_OURS = "asynkron_durable"
"""Modules named so are ours (the core and its adapters); the frames after the last of them are the
user's code."""


@dataclass(frozen=True, slots=True)
class Job(Generic[T]):
    """One episode: `run` must not raise (an episode's own failures are its result)."""

    run: Callable[[], T]
    deadline: float
    """Seconds the episode may run."""
    what: str
    """What runs, for messages: "orchestrator 'spin' (instance 'abc')"."""
    if_stuck: Callable[[OrchestratorDeadlock], T]
    """The result when the deadline passed and the error could not be raised inside the code."""


@dataclass(slots=True)
class _Batch(Generic[T]):
    jobs: Sequence[Job[T]]
    future: asyncio.Future[list[T | None]]
    results: list[T | None]
    running: int | None = None
    """The job the thread is in, or None between jobs."""
    since: float = 0.0
    """When the running job started (monotonic)."""
    interrupted: float | None = None
    """When the running job was first interrupted."""
    last_interrupt: float = 0.0
    delivered: int = 0
    """Interruptions of the running job that reached its code (it caught them and went on)."""
    abandoned: bool = False
    """The loop has answered for this batch: the thread must not touch it again."""
    messages: dict[int, str] = field(default_factory=dict)


class _Unset:
    """No result yet (a job's result may be None)."""


_UNSET = _Unset()


class EpisodeThread:
    """Runs batches of episodes, one at a time and in order, on a daemon thread.

    Code interrupted at its deadline and still running after as long again (at least `grace`
    seconds) is taken to be blocked where it cannot be interrupted, and the thread is given up. Code
    that swallows the interruption is interrupted again every `interrupt_every` seconds."""

    def __init__(self, name: str, *, grace: float = 1.0, interrupt_every: float = 0.25) -> None:
        self._name = name
        self._grace = grace
        self._interrupt_every = interrupt_every
        self._lock = threading.Lock()
        self._queue: SimpleQueue[_Batch[Any] | None] | None = None
        self._thread: threading.Thread | None = None
        self._batches: list[_Batch[Any]] = []
        """Batches handed over and not yet answered for, oldest (running) first."""
        self._stop_by: float | None = None
        self.lost: str | None = None
        """Why the thread was given up, once it was: nothing more runs here."""

    async def run(self, jobs: Sequence[Job[T]]) -> list[T | None]:
        """Run `jobs` in order; their results, None for those that never ran or did not finish (the
        thread was lost, or the worker stopped): give their work back."""
        if not jobs or self.lost is not None:
            return [None] * len(jobs)
        batch: _Batch[T] = _Batch(jobs, asyncio.get_running_loop().create_future(), [None] * len(jobs))
        with self._lock:
            self._batches.append(batch)
        self._hand_over(batch)
        try:
            while True:
                done, _ = await asyncio.wait({batch.future}, timeout=self._watch(batch))
                if done:
                    return batch.future.result()
                if batch.abandoned:
                    return batch.results
        finally:
            with self._lock:
                self._batches.remove(batch)

    def restart_clock(self) -> None:
        """Called by the running job, on the episode thread, as it begins a new part (an entity's
        next operation): its deadline counts from now, and an interruption meant for the part before
        is taken back."""
        ident = threading.get_ident()
        with self._lock:
            for batch in self._batches:
                if batch.running is not None:
                    batch.since, batch.interrupted, batch.delivered = time.monotonic(), None, 0
            _take_back(ident)

    def stop(self, allowance: float = 1.0) -> None:
        """The worker is stopping: an episode still running `allowance` seconds from now is
        interrupted and its result dropped (its instance's lease is given back, and another worker
        runs the episode again)."""
        self._stop_by = time.monotonic() + allowance

    def shutdown(self) -> None:
        """Let the thread end once the batches handed over so far are done."""
        with self._lock:
            if self._queue is not None:
                self._queue.put(None)
            self._queue, self._thread = None, None

    def _hand_over(self, batch: _Batch[Any]) -> None:
        with self._lock:
            if self._queue is None:
                self._queue = SimpleQueue()
                self._thread = threading.Thread(
                    target=self._work, args=(self._queue,), name=self._name, daemon=True
                )
                self._thread.start()
            self._queue.put(batch)

    # ----- the loop's side --------------------------------------------------------------------

    def _watch(self, batch: _Batch[Any]) -> float:
        """Check the running job against its deadline; returns how long to wait before the next
        check (short, so a stop is seen soon). Interrupts an overdue job, gives the thread up
        (`lost`) when the job does not let go, abandons the batches at a stop."""
        now = time.monotonic()
        with self._lock:
            thread, index = self._thread, batch.running
            if index is None or thread is None or thread.ident is None:
                return 0.05
            if self._stop_by is not None and now >= self._stop_by:
                log.warning("the worker is stopping: %s is interrupted, to run again", batch.jobs[index].what)
                self._let_go(thread.ident, "the worker is stopping")
                return 0.0
            job = batch.jobs[index]
            overdue = now - batch.since - job.deadline
            if overdue < 0:
                return min(0.1, max(0.01, -overdue))
            if batch.interrupted is None:
                batch.interrupted, batch.last_interrupt = now, 0.0
                batch.messages[index] = (
                    f"{job.what} ran {now - batch.since:.1f} s without yielding (its deadline is "
                    f"{job.deadline:g} s); stopped at {_where(thread.ident)}"
                )
            delivered = thread.ident not in OrchestratorDeadlock._pending
            blocked = not delivered and now - batch.interrupted >= max(self._grace, job.deadline)
            if blocked or batch.delivered >= MAX_INTERRUPTIONS:
                why = (
                    "could not be interrupted (the code is blocked outside Python)"
                    if blocked
                    else f"kept running after {batch.delivered} interruptions (the code catches them)"
                )
                message = f"{batch.messages[index]}, and {why}; the worker stops so that it can be restarted"
                log.error("%s", message)
                batch.results[index] = job.if_stuck(OrchestratorDeadlock(message))
                self.lost = message
                self._let_go(thread.ident, None)
                return 0.0
            if delivered and now - batch.last_interrupt >= self._interrupt_every:
                if batch.last_interrupt:  # the one before reached the code, which went on
                    batch.delivered += 1
                batch.last_interrupt = now
                _interrupt(thread.ident, batch.messages[index])
            return min(0.1, self._interrupt_every)

    def _let_go(self, ident: int, interruption: str | None) -> None:
        """Answer for every batch handed over (the unfinished jobs as unrun), and leave the thread
        behind: interrupted with `interruption` so it can end, or left alone (None). The next
        batch gets a thread of its own. Called with the lock held."""
        for batch in self._batches:
            batch.abandoned = True  # results are recorded only as jobs finish: the rest stay None
        if interruption is not None:
            _interrupt(ident, interruption)
        else:
            _take_back(ident)
        if self._queue is not None:
            self._queue.put(None)
        self._queue, self._thread = None, None

    # ----- the thread's side ------------------------------------------------------------------

    def _work(self, queue: SimpleQueue[_Batch[Any] | None]) -> None:
        ident = threading.get_ident()
        while (batch := queue.get()) is not None:
            for index, job in enumerate(batch.jobs):
                if not self._run_job(batch, index, job, ident):
                    return  # the loop answered for this batch and left this thread behind
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
                batch.future.get_loop().call_soon_threadsafe(_resolve, batch)

    def _run_job(self, batch: _Batch[T], index: int, job: Job[T], ident: int) -> bool:
        """Run one job and record its result; False if the batch was abandoned meanwhile. An
        interruption that lands outside the episode's own handlers makes `if_stuck` its result;
        one that lands after the episode returned leaves the result as it is."""
        value: T | _Unset = _UNSET
        stuck: OrchestratorDeadlock | None = None
        while True:
            try:
                if isinstance(value, _Unset) and stuck is not None:
                    value = job.if_stuck(stuck)
                if isinstance(value, _Unset):
                    with self._lock:
                        if batch.abandoned:
                            return False
                        batch.running, batch.since, batch.interrupted = index, time.monotonic(), None
                        batch.delivered = 0
                    value = job.run()
                with self._lock:
                    _take_back(ident)  # an interruption still on its way was for this job
                    if batch.abandoned:
                        return False
                    batch.running = None
                    batch.results[index] = value
                return True
            except OrchestratorDeadlock as exc:
                stuck = exc


def _resolve(batch: _Batch[Any]) -> None:
    if not batch.future.done():
        batch.future.set_result(batch.results)


def _raise_in(thread_id: int, exception: type[BaseException] | None) -> None:
    """Have `thread_id` raise `exception` at its next Python instruction (None: take it back)."""
    target = ctypes.py_object(exception) if exception is not None else None
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), target)


def _take_back(thread_id: int) -> None:
    """Withdraw an interruption issued to the thread and not delivered yet (its message is still
    pending: delivery takes it), without a call into the interpreter when none was issued."""
    if OrchestratorDeadlock._pending.pop(thread_id, None) is not None:
        _raise_in(thread_id, None)


def _interrupt(thread_id: int, message: str) -> None:
    """Raise `OrchestratorDeadlock(message)` in the thread's code."""
    OrchestratorDeadlock._pending[thread_id] = message
    _raise_in(thread_id, OrchestratorDeadlock)


def _where(thread_id: int) -> str:
    """Where the thread is in user code: the first frame the runtime (or an adapter of ours) called
    into, the user's orchestrator or entity function at the line it is on, and the innermost frame
    too when that is elsewhere (a library, or our own code the user called)."""
    frame = sys._current_frames().get(thread_id)
    frames: list[FrameType] = []
    while frame is not None:
        frames.append(frame)
        frame = frame.f_back
    frames.reverse()
    if not frames:
        return "an unknown place"
    ours = [str(f.f_globals.get("__name__", "")).startswith(_OURS) for f in frames]
    first_ours = ours.index(True) if True in ours else 0
    entered = next((i for i in range(first_ours, len(frames)) if not ours[i]), None)
    if entered is None:
        return _describe(frames[-1])
    if entered == len(frames) - 1:
        return _describe(frames[entered])
    return f"{_describe(frames[entered])}, inside {_describe(frames[-1])}"


def _describe(frame: FrameType) -> str:
    code = frame.f_code
    line = linecache.getline(code.co_filename, frame.f_lineno).strip()
    return f"{code.co_filename}:{frame.f_lineno} in {code.co_name}" + (f": {line}" if line else "")
