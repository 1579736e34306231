"""What a round hands to the episode thread: each episode as a `Job`, with its deadline (the
orchestrator's own, or the runtime's), a name for messages and the result it gets if it never comes
back; and the steps that came back, sorted from the results that must go through the inbox."""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Sequence
from datetime import datetime
from functools import partial

from asynkron_durable.entities.ids import is_entity_instance
from asynkron_durable.errors import StoreError
from asynkron_durable.history import HistoryEvent, RuntimeStatus
from asynkron_durable.registry import Registry
from asynkron_durable.stores.base import ActivityResult, ActivityStep, EpisodeCommit, OrchestrationWorkItem
from asynkron_durable.worker.episode_cache import CachedExecution, StepGroup
from asynkron_durable.worker.episode_thread import Job
from asynkron_durable.worker.episodes import (
    Episode,
    StepOutcome,
    failed_episode,
    failed_step,
    run_claimed,
    step_for,
    stuck_entity,
)

log = logging.getLogger("asynkron_durable.runtime")


def claimed_job(
    item: OrchestrationWorkItem,
    history: Sequence[HistoryEvent] | StoreError,
    cached: CachedExecution | None,
    registry: Registry,
    default_deadline: float,
    now: datetime,
    on_operation: Callable[[], None],
) -> Job[Episode]:
    """The episode of one claimed instance (an orchestration's, or an entity's batch, where each
    operation has the deadline: `on_operation` starts its clock)."""
    record = item.record
    run = partial(run_claimed, item, history, registry, cached, now, on_operation)
    if is_entity_instance(record.instance_id):
        what = f"an operation of entity {record.instance_id!r}"
        return Job(run, default_deadline, what, partial(stuck_entity, item, now=now))
    what = f"orchestrator {record.name!r} (instance {record.instance_id!r})"
    deadline = registry.deadlines.get(record.name, default_deadline)
    return Job(run, deadline, what, partial(failed_episode, item, now=now))


def step_job(
    cached: CachedExecution,
    results: list[ActivityResult],
    registry: Registry,
    default_deadline: float,
    now: datetime,
) -> Job[StepOutcome]:
    """The next episode of a kept execution, given its finished activities."""
    record = cached.record
    return Job(
        partial(step_for, cached, results, now),
        registry.deadlines.get(record.name, default_deadline),
        f"orchestrator {record.name!r} (instance {record.instance_id!r})",
        partial(failed_step, cached, results, now=now),
    )


def report_failures(commits: Sequence[EpisodeCommit], rejected: Collection[str] = ()) -> None:
    """Log each instance that an applied commit fails, once: at WARNING, with its id, name and why.
    (A commit that moves the record on and leaves it Failed is the failure itself; messages that
    reach an instance which had failed already leave its record as it was.)"""
    for commit in commits:
        record = commit.record
        failed_now = (
            record.runtime_status is RuntimeStatus.FAILED and record.version > commit.expected_version
        )
        if failed_now and record.instance_id not in rejected:
            failure = record.failure
            first_line = failure.message.strip().split("\n", 1)[0] if failure else ""
            reason = f"{failure.error_type}: {first_line}" if failure else "no reason recorded"
            log.warning("instance %s (%s) failed: %s", record.instance_id, record.name, reason)


def sort_steps(
    groups: Sequence[StepGroup], outcomes: Sequence[StepOutcome | None]
) -> tuple[list[ActivityResult], list[ActivityStep], dict[str, CachedExecution]]:
    """The results to record plain (their episode failed to run, or never ran), the steps, and the
    executions to keep once their step is applied."""
    plain: list[ActivityResult] = []
    steps: list[ActivityStep] = []
    keeps: dict[str, CachedExecution] = {}
    for (cached, group), outcome in zip(groups, outcomes, strict=True):
        step, keep = outcome or (None, None)
        if step is None:
            plain += group
            continue
        steps.append(step)
        if keep is not None:
            keeps[cached.record.instance_id] = keep
    return plain, steps, keeps
