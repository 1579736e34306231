"""Loading the histories a round must replay: only those of the claimed orchestrations that the
episode cache does not hold and that were committed before (an entity has no history)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from asynkron_durable.entities.ids import is_entity_instance
from asynkron_durable.errors import StoreError
from asynkron_durable.history import HistoryEvent, RuntimeStatus
from asynkron_durable.stores.base import OrchestrationWorkItem, StateStore
from asynkron_durable.worker.episode_cache import CachedExecution


async def histories_to_replay(
    store: StateStore, items: Sequence[OrchestrationWorkItem], cached: Mapping[str, CachedExecution]
) -> dict[str, list[HistoryEvent] | StoreError]:
    """The histories to replay by instance id. One unreadable history does not hold up the rest:
    it maps to the `StoreError` that names it, and its instance fails alone."""
    wanted = [
        item.record.instance_id
        for item in items
        if item.record.version > 0  # version 0: never committed, no history yet
        and item.record.instance_id not in cached
        and not is_entity_instance(item.record.instance_id)
    ]
    if not wanted:
        return {}
    histories: dict[str, list[HistoryEvent] | StoreError] = {}
    try:
        histories.update(await store.load_histories(wanted))
    except StoreError:
        for instance_id in wanted:  # find the unreadable instance(s), keep the rest going
            try:
                histories[instance_id] = (await store.load_histories([instance_id]))[instance_id]
            except StoreError as exc:
                histories[instance_id] = exc
    for item in items:  # a first commit always writes history: none left means it was deleted
        instance_id = item.record.instance_id
        if histories.get(instance_id) == [] and item.record.runtime_status is not RuntimeStatus.PENDING:
            histories[instance_id] = StoreError(
                f"instance {instance_id!r} is {item.record.runtime_status.value} but its history is "
                "gone (every history row was deleted): it cannot be replayed"
            )
    return histories
