"""Failing retry loops write operable logs: a traceback the first time a cause appears, then at
most one summing-up line a second with a count, and a traceback again once it recovered and fails
anew; a runtime on a store that keeps failing writes a handful of lines, not one per retry."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from support.store_wrapper import StoreWrapper

from asynkron_durable import DurableFunctionRuntime, InMemoryStateStore, StoreError
from asynkron_durable.worker import retry_log
from asynkron_durable.worker.retry_log import RetryLog


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(retry_log.time, "monotonic", fake)
    return fake


def test_repeats_are_counted_into_one_line_a_second(clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.retry")
    retries = RetryLog(logger)
    with caplog.at_level(logging.ERROR, logger="test.retry"):
        for _ in range(50):  # 50 failures within half a second
            retries.failed("claiming failed", StoreError("database unreachable"))
            clock.now += 0.01
        clock.now += 0.6
        retries.failed("claiming failed", StoreError("database unreachable"))
    lines = [r for r in caplog.records if r.name == "test.retry"]
    assert len(lines) == 2
    assert lines[0].exc_info is not None and lines[0].getMessage() == "claiming failed; retrying"
    assert lines[1].exc_info is None
    assert lines[1].getMessage() == (
        "claiming failed (50 more times in 1 s, retrying): StoreError: database unreachable"
    )


def test_a_new_cause_or_a_failure_after_recovery_is_news(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    retries = RetryLog(logging.getLogger("test.retry"))
    with caplog.at_level(logging.ERROR, logger="test.retry"):
        retries.failed("round failed", StoreError("down"))
        retries.failed("round failed", OSError("disk full"))  # another cause: in full
        retries.recovered("round failed")
        retries.failed("round failed", StoreError("down"))  # after recovery: in full again
    assert [r.exc_info is not None for r in caplog.records if r.name == "test.retry"] == [True, True, True]


class _Unreachable(StoreWrapper):
    """Every claim fails, as with a database that is down."""

    async def claim_orchestrations(self, *args: Any, **kwargs: Any) -> Any:
        raise StoreError("PostgreSQL store (schema 'x' at postgresql://app:***@db/x): unreachable")

    async def claim_activities(self, *args: Any, **kwargs: Any) -> Any:
        raise StoreError("PostgreSQL store (schema 'x' at postgresql://app:***@db/x): unreachable")


async def test_a_runtime_on_a_failing_store_writes_a_few_lines_not_one_per_retry(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = _Unreachable(InMemoryStateStore())
    runtime = DurableFunctionRuntime(store, max_poll_interval=0.01)  # type: ignore[arg-type]
    with caplog.at_level(logging.ERROR, logger="asynkron_durable.runtime"):
        async with runtime:
            await asyncio.sleep(1.5)  # a window to count lines in: ~150 retries of each loop
    lines = [r for r in caplog.records if r.name == "asynkron_durable.runtime"]
    assert 2 <= len(lines) <= 6, [r.getMessage() for r in lines]
    assert sum(r.exc_info is not None for r in lines) == 2  # one traceback per failing loop
