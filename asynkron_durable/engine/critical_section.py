"""Critical sections: an orchestration holding several entities locked, so that only its own calls
reach them until it leaves. Entities are locked in sorted order, so two sections never deadlock."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import TracebackType

from asynkron_durable.engine.tasks import ScheduledTask
from asynkron_durable.history import (
    EntityLockFailed,
    EntityLockScheduled,
    EntityUnlockSent,
    HistoryEvent,
    OrchestratorStarted,
)


class CriticalSection:
    """The entities an orchestration holds locked. Leaving the `with` block releases them; an
    orchestration that ends (completes, fails, is terminated) inside one releases them too."""

    def __init__(self, lock_sequence: int, entity_ids: tuple[str, ...], release: Callable[[], None]) -> None:
        self.lock_sequence = lock_sequence
        self.entity_ids = entity_ids
        self._release = release
        self.released = False

    def release(self) -> None:
        """Unlock the entities now (idempotent)."""
        if not self.released:
            self.released = True
            self._release()

    def __enter__(self) -> CriticalSection:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


class LockTask(ScheduledTask):
    """Completes with a `CriticalSection` once every entity is locked. `yield` it in a generator
    (`with (yield ctx.lock(ids)):`) or use `async with ctx.lock(ids):` in an `async def`; it cannot
    go into `task_any` / `task_all`."""

    combinable = False  # a lock request cannot be raced or abandoned: it is granted or fails

    def __init__(self, sequence: int, section: CriticalSection) -> None:
        super().__init__(sequence, f"lock of {', '.join(section.entity_ids)}")
        self._section = section

    async def __aenter__(self) -> CriticalSection:
        section: CriticalSection = await self
        return section

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._section.release()


def outstanding_locks(history: Sequence[HistoryEvent]) -> list[tuple[int, tuple[str, ...]]]:
    """The critical sections an execution asked for and has not given back (lock sequence,
    entity ids): what must be unlocked when it is purged or replaced without ending."""
    requested: dict[int, tuple[str, ...]] = {}
    for event in history:
        match event:
            case EntityLockScheduled(event_id=seq, entity_ids=entity_ids):
                requested[seq] = entity_ids
            case EntityUnlockSent(lock_task_id=seq) | EntityLockFailed(task_scheduled_id=seq):
                requested.pop(seq, None)
    return list(requested.items())


def failed_inside_critical_section(history: Sequence[HistoryEvent]) -> bool:
    """Whether the execution ended holding (or waiting for) a critical section: one never given
    back, or given back in its last episode, where leaving a `with` block on the way out records
    the unlock. Such locks are gone, so its work cannot be rewound as if they were still held."""
    last_episode = max((i for i, e in enumerate(history) if isinstance(e, OrchestratorStarted)), default=0)
    return bool(outstanding_locks(history) or outstanding_locks(history[:last_episode]))
