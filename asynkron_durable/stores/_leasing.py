"""Leasing on insert: an `ActivityClaim` taken up activity by activity within one store call."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from asynkron_durable.stores.base import ActivityClaim, ActivityTask, ActivityWorkItem


@dataclass(slots=True)
class Leasing:
    """The activities leased to `owner` so far as a call inserts them, up to `claim`'s limit
    (none without a claim); they come back to the caller as claimed work, in insertion order."""

    owner: str
    claim: ActivityClaim | None
    items: list[ActivityWorkItem] = field(default_factory=list)

    def next_lease(self, name: str) -> datetime | None:
        """The lease the next inserted activity, `name`, gets: None once the claim is used up, or
        for a name it does not take."""
        if self.claim is None or len(self.items) >= self.claim.limit:
            return None
        if self.claim.names is not None and name not in self.claim.names:
            return None
        return self.claim.lease_until

    def leased(self, activity_id: int, task: ActivityTask) -> None:
        """Record that the activity just inserted as `activity_id` got `next_lease()`."""
        self.items.append(ActivityWorkItem(activity_id, task, 1))
