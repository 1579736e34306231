"""Who a runtime takes for dead (`worker/presence.py`): silent past the timeout, or silent for a few
beats with its process or session seen gone; never itself, never one that is merely quiet."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from support.chaos import poll_until

from asynkron_durable import DurableFunctionRuntime
from asynkron_durable.stores import WorkerRecord
from asynkron_durable.worker.presence import beat_interval, dead_workers

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def silent_for(worker_id: str, seconds: float, alive: bool | None) -> WorkerRecord:
    beat = NOW - timedelta(seconds=seconds)
    return WorkerRecord(worker_id, "host", 1, beat, beat, alive)


def test_a_worker_silent_past_the_timeout_is_dead_whatever_the_store_sees() -> None:
    workers = [silent_for("quiet", 9, True), silent_for("silent", 11, True), silent_for("unknown", 11, None)]
    assert [w.worker_id for w in dead_workers(workers, NOW, 10, "me")] == ["silent", "unknown"]


def test_a_worker_whose_process_is_gone_is_dead_after_a_few_missed_beats() -> None:
    workers = [
        silent_for("just-beat", 1, False),
        silent_for("gone", 3.5, False),
        silent_for("alive", 3.5, True),
    ]
    assert [w.worker_id for w in dead_workers(workers, NOW, 10, "me")] == ["gone"]


def test_a_worker_never_takes_itself_for_dead() -> None:
    assert dead_workers([silent_for("me", 100, False)], NOW, 10, "me") == []


def test_short_timeouts_beat_more_often() -> None:
    assert beat_interval(10) == 1.0
    assert beat_interval(2) == pytest.approx(0.4)


def test_the_worker_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError, match="worker_timeout"):
        DurableFunctionRuntime("memory://", worker_timeout=0)


async def test_a_running_runtime_is_registered_until_it_stops() -> None:
    runtime = DurableFunctionRuntime("memory://")

    async def registered() -> list[str]:
        return [worker.worker_id for worker in await runtime.store.workers.registered()]

    async def is_registered() -> bool:
        return await registered() == [runtime.worker_id]

    async with runtime:
        await poll_until(is_registered, 5, "the runtime to register")
    assert await registered() == []
