"""The in-memory store's rows: instances with their inbox and history, and queued activities."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from asynkron_durable.history import HistoryEvent, InstanceRecord
from asynkron_durable.stores.base import ActivityTask


@dataclass(frozen=True, slots=True)
class Queued:
    """An inbox message."""

    message_id: int
    event: HistoryEvent
    execution_id: str | None
    visible_at: datetime | None

    def visible(self, now: datetime) -> bool:
        return self.visible_at is None or self.visible_at <= now


@dataclass(slots=True)
class Instance:
    """An instance: its record, lease, history and inbox."""

    record: InstanceRecord
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None
    history: list[HistoryEvent] = field(default_factory=list)
    # Keyed by message id; insertion order is id order because ids only grow.
    inbox: dict[int, Queued] = field(default_factory=dict)


@dataclass(slots=True)
class Activity:
    """A queued activity and its lease."""

    task: ActivityTask
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None
    attempt: int = 0


def lease_free(owner: str | None, expires_at: datetime | None, now: datetime) -> bool:
    """Whether work under this lease may be claimed at `now` (no lease, or expired)."""
    return owner is None or (expires_at is not None and expires_at < now)
