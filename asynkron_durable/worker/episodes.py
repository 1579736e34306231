"""Running one claimed instance's episode: an orchestration's through the engine (replayed, kept in
memory, rewound) or an entity's batch, each ending in the one store commit it produces.

No I/O here: the runtime loads history and commits; `commits.py` decides what a commit holds. One
instance's trouble (unreadable history, a missing function, an engine error) fails that instance
alone, never the rest of its batch.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from asynkron_durable.engine import OrchestrationContext, OrchestrationExecutor, Orchestrator, plan_rewind
from asynkron_durable.entities.batch import run_entity_batch
from asynkron_durable.entities.classes import EntityFunction
from asynkron_durable.entities.document import EntityDocument, unlock_messages
from asynkron_durable.entities.ids import EntityId, is_entity_instance
from asynkron_durable.errors import StoreError, UnknownFunction
from asynkron_durable.history import (
    OUTCOMES,
    EntityCallFailed,
    EntityLockFailed,
    EntityLockRequest,
    EntityOperation,
    ExecutionRewound,
    ExecutionStarted,
    FailureDetails,
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
    Message,
    OrchestrationWorkItem,
)
from asynkron_durable.worker.commits import (
    episode_commit,
    failed_commit,
    late_grants,
    next_record,
    rewind_commit,
)
from asynkron_durable.worker.episode_cache import CachedExecution, StepGroup

log = logging.getLogger("asynkron_durable.runtime")
entity_log = logging.getLogger("asynkron_durable.entities")

Episode = tuple[EpisodeCommit, CachedExecution | None]
"""A commit, and the execution to keep in memory after it (None: it ended, or cannot be trusted)."""


def run_claimed(
    item: OrchestrationWorkItem,
    history: Sequence[HistoryEvent] | StoreError,
    registry: Registry,
    cached: CachedExecution | None,
    now: datetime,
) -> Episode:
    """The episode of one claimed instance, whatever it is: `history` is its loaded history (or
    the error that kept it from loading; unused for entities and kept executions)."""
    record = item.record
    if is_entity_instance(record.instance_id):
        try:
            return build_entity_commit(item, _entity(registry, record.name), now), None
        except Exception as exc:
            log.exception("batch of entity %s failed", record.instance_id)
            return failed_commit(item, exc, now), None
    if isinstance(history, StoreError):
        log.error("instance %s has unreadable history: %s", record.instance_id, history)
        return failed_commit(item, history, now), None
    try:
        return build_episode(item, history, _orchestrator(registry, record.name), now, cached)
    except Exception as exc:  # one instance's trouble must not hold up the rest of the batch
        log.exception("episode of instance %s failed", record.instance_id)
        return failed_commit(item, exc, now), None


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
    inbox events are applied. Otherwise a fresh executor replays `history` first."""
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
        commit = EpisodeCommit(
            record, record.version, late, ack, messages=late_grants(item.messages, record, now)
        )
        return commit, None

    if cached is not None and cached.fits(record):
        executor, started = cached.executor, cached.started
    else:
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


def build_steps(
    groups: Sequence[StepGroup], now: datetime
) -> tuple[list[ActivityStep], dict[str, CachedExecution], list[ActivityResult]]:
    """The steps of kept executions given their finished activities (`EpisodeCache.take_steps`),
    the executions to keep after each, and the results of those whose episode failed: the
    executor is spent, they go through the inbox and a replay from history meets the error again."""
    steps: list[ActivityStep] = []
    keeps: dict[str, CachedExecution] = {}
    unstepped: list[ActivityResult] = []
    for cached, group in groups:
        instance_id = cached.record.instance_id
        try:
            commit, keep = build_step(cached, [r.message.event for r in group], now)
        except Exception:
            log.exception("activity step of instance %s failed; recording plain results", instance_id)
            unstepped += group
            continue
        steps.append(ActivityStep(tuple(group), commit))
        if keep is not None:
            keeps[instance_id] = keep
    return steps, keeps, unstepped


def build_entity_commit(
    item: OrchestrationWorkItem, function: EntityFunction | Exception, now: datetime
) -> EpisodeCommit:
    """Process every message claimed for the entity, in order, as one batch and one commit (the
    same compare-and-swap under the lease as an orchestration's makes it safe across workers)."""
    record = item.record
    ack = [m.message_id for m in item.messages]
    try:
        document = EntityDocument.from_record(record)
    except StoreError as exc:
        return _unreadable_entity(item, exc, now)
    entity_id = EntityId.from_instance_id(record.instance_id)
    result = run_entity_batch(entity_id, document, [m.event for m in item.messages], function, now)
    updated = next_record(record, now, output=result.document.model_dump_json())
    return EpisodeCommit(updated, record.version, [], ack, messages=result.messages)


def _unreadable_entity(item: OrchestrationWorkItem, error: StoreError, now: datetime) -> EpisodeCommit:
    """A corrupt document is kept for inspection and the entity marked Failed. Nobody is left
    waiting: callers get the error, lock requests fail (the entities locked before this one are
    released), signals and unlocks are logged and dropped."""
    record = item.record
    entity_log.error("%s; failing its %d requests", error, len(item.messages))
    failure = FailureDetails.from_exception(error)
    replies: list[Message] = []
    for message in item.messages:
        match message.event:
            case EntityOperation(task_id=int(task_id), source_instance_id=str(source)):
                failed = EntityCallFailed(timestamp=now, task_scheduled_id=task_id, failure=failure)
                replies.append(Message(source, failed, execution_id=message.event.source_execution_id))
            case EntityLockRequest() as request:
                refused = EntityLockFailed(timestamp=now, task_scheduled_id=request.task_id, failure=failure)
                replies.append(
                    Message(request.owner_instance_id, refused, execution_id=request.owner_execution_id)
                )
                replies.extend(
                    unlock_messages(
                        request.owner_instance_id,
                        request.owner_execution_id,
                        request.task_id,
                        request.entity_ids[: request.position],
                        now,
                    )
                )
    failed_record = next_record(record, now, runtime_status=RuntimeStatus.FAILED, failure=failure)
    return EpisodeCommit(
        failed_record, record.version, [], [m.message_id for m in item.messages], messages=replies
    )


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
