"""The `subscribe` and `on_ended` halves of the store protocol, shared by every backend."""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable

from asynkron_durable.stores.base import ActivityStep, EpisodeCommit, Work

_log = logging.getLogger("asynkron_durable.stores")


class Subscribers:
    """Callbacks to run when work was enqueued; one failing callback never stops the others."""

    def __init__(self) -> None:
        self._callbacks: list[Callable[[Work], None]] = []
        self._endings: list[Callable[[Collection[str]], None]] = []

    def add_ended(self, callback: Callable[[Collection[str]], None]) -> None:
        """Register `callback` for the ids of instances that ended (or were purged)."""
        self._endings.append(callback)

    def ended(self, instance_ids: Collection[str]) -> None:
        """Run every ending callback with `instance_ids`; nothing when there are none."""
        if not instance_ids:
            return
        for callback in list(self._endings):
            try:
                callback(instance_ids)
            except Exception:
                _log.exception("store subscriber %r failed", callback)

    def commits_ended(self, commits: Iterable[EpisodeCommit], rejected: Collection[str] = ()) -> None:
        """`ended` with the instances that `commits` (those not `rejected`) left terminal."""
        self.ended(
            [
                commit.record.instance_id
                for commit in commits
                if commit.record.runtime_status.is_terminal and commit.record.instance_id not in rejected
            ]
        )

    def add(self, callback: Callable[[Work], None]) -> None:
        """Register `callback`."""
        self._callbacks.append(callback)

    def notify(self, work: Work) -> None:
        """Run every callback with `work` (from the event loop); nothing when `work` is NONE."""
        if not work:
            return
        for callback in list(self._callbacks):
            try:
                callback(work)
            except Exception:
                _log.exception("store subscriber %r failed", callback)

    def steps_ended(self, steps: Iterable[ActivityStep], applied: Collection[str]) -> None:
        """`ended` with the instances that the `applied` activity steps left terminal."""
        self.commits_ended(step.commit for step in steps if step.commit.record.instance_id in applied)
