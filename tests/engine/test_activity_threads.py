"""`ActivityThreads`: sync activity functions on a bounded set of threads, results back on the loop."""

from __future__ import annotations

import asyncio
import functools
import threading

import pytest

from asynkron_durable.worker.threads import ActivityThreads


async def test_returns_values_and_raises_errors_from_the_thread() -> None:
    threads = ActivityThreads(4, "test")
    names: list[str] = []

    def work(n: int) -> int:
        names.append(threading.current_thread().name)
        return n * 2

    def broken() -> None:
        raise ValueError("boom")

    try:
        results = await asyncio.gather(*(threads.run(functools.partial(work, n)) for n in range(50)))
        assert results == [n * 2 for n in range(50)]
        with pytest.raises(ValueError, match="boom"):
            await threads.run(broken)
    finally:
        threads.shutdown()
    assert all(name.startswith("test-") for name in names)
    assert threading.current_thread().name not in names


async def test_a_call_raising_stop_iteration_fails_as_a_runtime_error_without_stranding_others() -> None:
    threads = ActivityThreads(1, "test")

    def exhausted() -> None:
        next(iter([]))

    try:
        stopped = asyncio.ensure_future(threads.run(exhausted))
        after = asyncio.ensure_future(threads.run(lambda: "after"))
        with pytest.raises(RuntimeError, match="StopIteration") as raised:
            await asyncio.wait_for(stopped, 10)
        assert isinstance(raised.value.__cause__, StopIteration)
        assert await asyncio.wait_for(after, 10) == "after"
    finally:
        threads.shutdown()


async def test_never_runs_more_calls_at_once_than_its_size() -> None:
    threads = ActivityThreads(2, "test")
    release = threading.Event()
    running = 0
    peak = 0
    lock = threading.Lock()
    two_running = threading.Event()

    def blocking() -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
            if running == 2:
                two_running.set()
        release.wait(10)
        with lock:
            running -= 1

    try:
        calls = [asyncio.ensure_future(threads.run(blocking)) for _ in range(5)]
        assert await asyncio.to_thread(two_running.wait, 10)
        assert not any(call.done() for call in calls)
        release.set()
        await asyncio.gather(*calls)
    finally:
        threads.shutdown()
    assert peak == 2


async def test_shutdown_cancels_waiting_calls_and_refuses_new_ones() -> None:
    threads = ActivityThreads(1, "test")
    started = threading.Event()
    release = threading.Event()
    ran: list[str] = []

    def first() -> str:
        started.set()
        release.wait(10)
        ran.append("first")
        return "first"

    def second() -> str:
        ran.append("second")
        return "second"

    running = asyncio.ensure_future(threads.run(first))
    assert await asyncio.to_thread(started.wait, 10)
    waiting = asyncio.ensure_future(threads.run(second))
    await asyncio.sleep(0)  # let it reach the queue
    threads.shutdown()
    release.set()

    assert await running == "first"  # the call in progress finishes
    with pytest.raises(asyncio.CancelledError):
        await waiting
    with pytest.raises(RuntimeError, match="shut down"):
        await threads.run(second)
    assert ran == ["first"]


async def test_a_cancelled_caller_does_not_stop_the_others_getting_results() -> None:
    threads = ActivityThreads(2, "test")
    release = threading.Event()
    try:
        abandoned = asyncio.ensure_future(threads.run(lambda: release.wait(10)))
        kept = asyncio.ensure_future(threads.run(lambda: release.wait(10)))
        await asyncio.sleep(0)
        abandoned.cancel()
        release.set()
        assert await kept is True
        assert abandoned.cancelled()
    finally:
        threads.shutdown()
