"""Running one claimed instance's episode: an orchestration's through the engine (replayed, kept in
memory, rewound) or an entity's batch, each ending in the one store commit it produces.

No I/O here: the runtime loads history and commits; `commits.py` decides what a commit holds. One
instance's trouble (unreadable history, a missing function, an engine error) fails that instance
alone, never the rest of its batch.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from asynkron_durable.engine import OrchestrationContext, OrchestrationExecutor, Orchestrator, plan_rewind
from asynkron_durable.engine.unrun import episode_without_code
from asynkron_durable.entities.batch import run_entity_batch
from asynkron_durable.entities.classes import EntityFunction
from asynkron_durable.entities.document import EntityDocument
from asynkron_durable.entities.ids import EntityId, is_entity_instance
from asynkron_durable.errors import OrchestratorDeadlock, StoreError, UnknownFunction
from asynkron_durable.history import (
    OUTCOMES,
    ExecutionRewound,
    ExecutionStarted,
    HistoryEvent,
    InstanceRecord,
    OrchestratorStarted,
    RuntimeStatus,
)
from asynkron_durable.registry import Registry
from asynkron_durable.stores.base import (
    ActivityResult,
    ActivityStep,
    EpisodeCommit,
    OrchestrationWorkItem,
)
from asynkron_durable.worker.commits import (
    ended_commit,
    entity_commit,
    episode_commit,
    failed_commit,
    late_grants,
    rewind_commit,
    stuck_entity_commit,
    unreadable_entity_commit,
)
from asynkron_durable.worker.episode_cache import CachedExecution

log = logging.getLogger("asynkron_durable.runtime")
"""The runtime's logger (its name predates the worker package and is kept for log configurations)."""

Episode = tuple[EpisodeCommit, CachedExecution | None]
"""A commit, and the execution to keep in memory after it (None: it ended, or cannot be trusted)."""


def failed_episode(item: OrchestrationWorkItem, error: BaseException, now: datetime) -> Episode:
    """The episode of a claimed instance that could not run (or never came back): it fails,
    consuming the messages it was claimed with."""
    return failed_commit(item.record, error, now, [m.message_id for m in item.messages]), None


def stuck_entity(item: OrchestrationWorkItem, error: BaseException, now: datetime) -> Episode:
    """The batch of an entity that never came back (see `stuck_entity_commit`)."""
    return stuck_entity_commit(item, error, now), None


def run_claimed(
    item: OrchestrationWorkItem,
    history: Sequence[HistoryEvent] | StoreError,
    registry: Registry,
    cached: CachedExecution | None,
    now: datetime,
    on_operation: Callable[[], None] | None = None,
) -> Episode:
    """The episode of one claimed instance, whatever it is: `history` is its loaded history (or
    the error that kept it from loading; unused for entities and kept executions)."""
    record = item.record
    if is_entity_instance(record.instance_id):
        try:
            return build_entity_commit(item, _entity(registry, record.name), now, on_operation), None
        except OrchestratorDeadlock as exc:  # raised outside the operation's own code
            return stuck_entity(item, exc, now)
        except Exception as exc:
            log.exception("batch of entity %s failed", record.instance_id)
            return failed_episode(item, exc, now)
    if isinstance(history, StoreError):
        log.error("instance %s has unreadable history: %s", record.instance_id, history)
        return failed_episode(item, history, now)
    try:
        return build_episode(item, history, _orchestrator(registry, record.name), now, cached)
    except Exception as exc:  # one instance's trouble must not hold up the rest of the batch
        log.exception("episode of instance %s failed", record.instance_id)
        return failed_episode(item, exc, now)


def build_episode(
    item: OrchestrationWorkItem,
    history: Sequence[HistoryEvent],
    orchestrator: Orchestrator,
    now: datetime,
    cached: CachedExecution | None = None,
) -> Episode:
    """Run one episode and describe everything it changes; also return the executor to keep for
    the next episode if the execution goes on (None when it ended, continued as new or was rewound).

    With a `cached` executor that `fits` the record, `history` is not needed (pass []): only the
    inbox events are applied. Otherwise a fresh executor replays `history` first, unless the events
    terminate the execution or leave it suspended: that needs no code (`episode_without_code`)."""
    record = item.record
    ack = [m.message_id for m in item.messages]
    current = [m for m in item.messages if record.addresses(m.execution_id)]
    events = [m.event for m in current]
    if record.runtime_status.is_terminal:
        failed = record.runtime_status is RuntimeStatus.FAILED
        if failed and any(isinstance(e, ExecutionRewound) for e in events):
            return _rewind(record, [*history, *_outcomes(events)], orchestrator, now, ack), None
        # A failed instance keeps the results that arrive late, so a rewind does not wait for
        # (or re-run) work that finished after the failure; finished instances just drop them.
        late = _outcomes(events) if failed else []
        return ended_commit(record, late, ack, late_grants(item.messages, record, now)), None

    if cached is not None and cached.fits(record):
        executor, started = cached.executor, cached.started
    else:
        unrun = episode_without_code(history, events, record.runtime_status, record.custom_status, now)
        if unrun is not None:  # a terminate or suspend lands even when the code cannot run
            started = _execution_started(history) or _execution_started(events)
            return episode_commit(record, unrun, started, now, ack, unrun.new_history), None
        executor = OrchestrationExecutor(orchestrator, record.instance_id)
        executor.replay(history)
        started = _execution_started(history)
    result = executor.run_episode([OrchestratorStarted(timestamp=now), *events])
    started = started or _execution_started(events)
    commit = episode_commit(record, result, started, now, ack, list(result.new_history))
    stale = [m for m in item.messages if m not in current]  # for an execution that has ended
    commit.messages.extend(late_grants(stale, record, now))
    return commit, _keep(executor, commit, started)


def build_step(cached: CachedExecution, outcomes: Sequence[HistoryEvent], now: datetime) -> Episode:
    """The next episode of a kept executor given only its activities' outcomes: the commit of an
    `ActivityStep`, written in place of the outcomes' inbox messages (it acknowledges none)."""
    result = cached.executor.run_episode([OrchestratorStarted(timestamp=now), *outcomes])
    commit = episode_commit(cached.record, result, cached.started, now, [], list(result.new_history))
    return commit, _keep(cached.executor, commit, cached.started)


StepOutcome = tuple[ActivityStep | None, CachedExecution | None]
"""A kept execution's step, or None when its episode failed to run (its results then go through
the inbox, and a replay from history meets the error again), and the execution to keep after it."""


def step_for(cached: CachedExecution, results: Sequence[ActivityResult], now: datetime) -> StepOutcome:
    """The step of a kept execution given its finished activities (see `EpisodeCache.take_steps`)."""
    try:
        commit, keep = build_step(cached, [r.message.event for r in results], now)
    except OrchestratorDeadlock as exc:  # raised outside the orchestrator's own code
        return failed_step(cached, results, exc, now)
    except Exception:
        log.exception(
            "activity step of instance %s failed; recording plain results", cached.record.instance_id
        )
        return None, None
    return ActivityStep(tuple(results), commit), keep


def failed_step(
    cached: CachedExecution, results: Sequence[ActivityResult], error: BaseException, now: datetime
) -> StepOutcome:
    """The step of a kept execution whose episode never came back: the instance fails."""
    return ActivityStep(tuple(results), failed_commit(cached.record, error, now)), None


def build_entity_commit(
    item: OrchestrationWorkItem,
    function: EntityFunction | Exception,
    now: datetime,
    on_operation: Callable[[], None] | None = None,
) -> EpisodeCommit:
    """Process every message claimed for the entity, in order, as one batch and one commit (the
    same compare-and-swap under the lease as an orchestration's makes it safe across workers)."""
    record = item.record
    ack = [m.message_id for m in item.messages]
    try:
        document = EntityDocument.from_record(record)
    except StoreError as exc:
        return unreadable_entity_commit(item, exc, now)
    entity_id = EntityId.from_instance_id(record.instance_id)
    requests = [m.event for m in item.messages]
    result = run_entity_batch(entity_id, document, requests, function, now, on_operation)
    return entity_commit(record, result.document.model_dump_json(), ack, result.messages, now)


def _rewind(
    record: InstanceRecord,
    history: Sequence[HistoryEvent],
    orchestrator: Orchestrator,
    now: datetime,
    ack: list[int],
) -> EpisodeCommit:
    plan = plan_rewind(history)
    executor = OrchestrationExecutor(orchestrator, record.instance_id)
    executor.replay(plan.history)
    result = executor.run_episode([OrchestratorStarted(timestamp=now), ExecutionRewound(timestamp=now)])
    return rewind_commit(record, plan, result, _execution_started(plan.history), now, ack)


def _keep(
    executor: OrchestrationExecutor, commit: EpisodeCommit, started: ExecutionStarted | None
) -> CachedExecution | None:
    """The executor to keep after `commit`, if its execution goes on in this executor."""
    if executor.is_finished or executor.nondeterminism is not None or commit.reset_history:
        return None
    return CachedExecution(executor, commit.record, started)


def _orchestrator(registry: Registry, name: str) -> Orchestrator:
    """The registered orchestrator, or one that fails the instance naming what is registered."""
    found = registry.orchestrators.get(name)
    if found is not None:
        return found
    known = list(registry.orchestrators)

    def unknown(_: OrchestrationContext) -> Any:
        raise UnknownFunction("orchestrator", name, known)

    return unknown


def _entity(registry: Registry, name: str) -> EntityFunction | Exception:
    try:
        return registry.entity(name)
    except UnknownFunction as exc:
        return exc


def _outcomes(events: Sequence[HistoryEvent]) -> list[HistoryEvent]:
    return [e for e in events if isinstance(e, OUTCOMES)]


def _execution_started(events: Sequence[HistoryEvent]) -> ExecutionStarted | None:
    return next((e for e in events if isinstance(e, ExecutionStarted)), None)
