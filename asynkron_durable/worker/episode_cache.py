"""The episode cache: orchestrations kept running in memory between their episodes.

A kept execution's next episode applies only its new events instead of replaying the whole
history. The rules of trust live here: an entry is used only for the execution and the exact record
version its own commit wrote, an entry in use is out of the cache until its commit succeeds, and
the least recently used entry goes first when the cache is full.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from asynkron_durable.engine import OrchestrationExecutor
from asynkron_durable.history import ExecutionStarted, InstanceRecord
from asynkron_durable.stores.base import ActivityResult, OrchestrationWorkItem


@dataclass(slots=True)
class CachedExecution:
    """An executor kept after its episode committed, with the record that commit wrote.

    It holds the orchestrator's live generator (user state), so it belongs to exactly one execution:
    `fits` accepts it only for that execution at exactly the record version its commit produced.
    Any other version means someone else wrote the instance (another worker, a restart...)."""

    executor: OrchestrationExecutor
    record: InstanceRecord
    """The record the episode's commit wrote (its version is the commit's expected_version + 1)."""
    started: ExecutionStarted | None
    """The execution's ExecutionStarted event (for continue-as-new and parent notifications)."""

    def fits(self, record: InstanceRecord) -> bool:
        """True if `record` is exactly the state this executor left behind."""
        return (
            record.version == self.record.version
            and record.execution_id == self.record.execution_id
            and not record.runtime_status.is_terminal
        )


StepGroup = tuple[CachedExecution, list[ActivityResult]]
"""A kept execution taken out of the cache with the finished activities of its next episode."""


class EpisodeCache(Mapping[str, CachedExecution]):
    """Up to `size` kept executions by instance id, least recently used first out (0: keep none).

    Read as a mapping; changed only through `take`, `take_steps`, `keep` and `clear`."""

    def __init__(self, size: int) -> None:
        if size < 0:
            raise ValueError("episode_cache_size must not be negative")
        self.size = size
        self._entries: OrderedDict[str, CachedExecution] = OrderedDict()

    def __getitem__(self, instance_id: str) -> CachedExecution:
        return self._entries[instance_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def take(self, items: Sequence[OrchestrationWorkItem]) -> dict[str, CachedExecution]:
        """Take the claimed instances' entries out, keeping only those that fit the claimed record
        exactly: any other version means the instance moved elsewhere (another worker, a restart,
        a purge...) and its history must be replayed."""
        found: dict[str, CachedExecution] = {}
        for item in items:
            entry = self._entries.pop(item.record.instance_id, None)
            if entry is not None and entry.fits(item.record):
                found[item.record.instance_id] = entry
        return found

    def take_steps(self, results: Sequence[ActivityResult]) -> tuple[list[ActivityResult], list[StepGroup]]:
        """Split finished activities into plain results and step groups: the results of each
        instance whose execution is kept here, every one of them for that execution, become its
        next episode (the entry leaves the cache until the store applied the step, and for good if
        it refused it); the rest are recorded as plain results."""
        by_instance: dict[str, list[ActivityResult]] = {}
        for result in results:
            by_instance.setdefault(result.message.instance_id, []).append(result)
        plain: list[ActivityResult] = []
        groups: list[StepGroup] = []
        for instance_id, group in by_instance.items():
            entry = self._entries.get(instance_id)
            if entry is None or not all(entry.record.addresses(r.message.execution_id) for r in group):
                plain += group
                continue
            del self._entries[instance_id]
            groups.append((entry, group))
        return plain, groups

    def keep(self, instance_id: str, entry: CachedExecution) -> None:
        """Keep `entry` as the most recently used, evicting the least recently used beyond `size`."""
        if self.size <= 0:
            return
        self._entries[instance_id] = entry
        self._entries.move_to_end(instance_id)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        """Forget every entry (the worker stopped: what it kept may be stale when it starts again)."""
        self._entries.clear()
