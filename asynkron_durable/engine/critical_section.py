"""Critical sections: an orchestration holding several entities locked, so that only its own calls
reach them until it leaves. Entities are locked in sorted order, so two sections never deadlock."""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType

from asynkron_durable.engine.tasks import ScheduledTask


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
    (`with (yield ctx.lock(ids)):`) or use `async with ctx.lock(ids):` in an `async def`."""

    def __init__(self, sequence: int, section: CriticalSection) -> None:
        super().__init__(sequence, f"lock of {', '.join(section.entity_ids)}")
        self.section = section

    async def __aenter__(self) -> CriticalSection:
        section: CriticalSection = await self
        return section

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.section.release()
