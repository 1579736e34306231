"""Activities whose worker died while running them run alone on the next worker.

When a worker dies, every activity it ran or held leased comes back with its `attempt` raised, the
one that killed it (if one did) among them. Run together again, the culprit would take the others
down with it every time. So an activity back from such a death ("a suspect") waits until nothing
else runs on this worker, then runs alone, while the worker claims and leases nothing else and
gives back whatever else reaches it, other suspects included (a give-back does not count as a
start): if it kills the process again, only its own count rises. One that has died with its worker
`max_starts` times is not started again: `run_activity` fails it (`ActivityCrashed`).
"""

from __future__ import annotations

from collections import deque

from asynkron_durable.stores.base import ActivityWorkItem


class Isolation:
    """The suspects this worker holds, and the one it runs alone."""

    def __init__(self, max_starts: int) -> None:
        self.max_starts = max_starts
        self._waiting: deque[ActivityWorkItem] = deque()
        self._alone: int | None = None

    def is_suspect(self, item: ActivityWorkItem) -> bool:
        """Back from a worker's death, and to be started once more (not failed at once)."""
        return 2 <= item.attempt <= self.max_starts

    @property
    def holding(self) -> bool:
        """True while a suspect waits or runs: nothing else may start, be claimed or be leased."""
        return bool(self._waiting) or self._alone is not None

    def hold(self, item: ActivityWorkItem) -> None:
        """Keep a suspect (leased to this worker) until it can run alone; one at a time."""
        self._waiting.append(item)

    def next_alone(self, idle: bool) -> ActivityWorkItem | None:
        """The suspect to start now, if the worker is `idle` and none runs."""
        if not idle or self._alone is not None or not self._waiting:
            return None
        item = self._waiting.popleft()
        self._alone = item.activity_id
        return item

    def finished(self, activity_id: int) -> None:
        """An activity's result is recorded (or given up): if it ran alone, the next may start."""
        if self._alone == activity_id:
            self._alone = None

    def waiting_ids(self) -> list[int]:
        """The suspects still waiting: their leases are renewed like those of running work."""
        return [item.activity_id for item in self._waiting]

    def take_waiting(self) -> list[int]:
        """The suspects still waiting, to give back at shutdown."""
        ids = self.waiting_ids()
        self._waiting.clear()
        return ids
