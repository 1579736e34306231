"""Instance status in the Durable Functions HTTP API's JSON shape (`DurableOrchestrationStatus`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from asynkron_durable.client import OrchestrationStatus
from asynkron_durable.history import HistoryEvent, RuntimeStatus
from asynkron_durable.stores.base import DeadLetter, UnreadableInstance
from asynkron_durable.stores.workers import WorkerRecord

HistoryWriter = Callable[[Sequence[HistoryEvent], str], list[dict[str, Any]]]
"""Turns an instance's history into JSON events (the Azure host's shape)."""


def api_time(value: datetime) -> str:
    """Times as the API writes them: UTC, ISO 8601, `Z`."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def status_json(status: OrchestrationStatus, history: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """`{name, instanceId, runtimeStatus, input, customStatus, output, createdTime,
    lastUpdatedTime[, historyEvents][, unreadable][, deadLetters][, waiting]}` (`unreadable`: a stored
    payload that cannot be read, and why; `deadLetters`: how many of its messages were set aside
    unread; `waiting`: why no worker runs it). A failed instance's output is its failure message,
    as Azure reports it."""
    output = status.output
    if status.runtime_status is RuntimeStatus.FAILED and status.failure is not None:
        output = status.failure.message
    body: dict[str, Any] = {
        "name": status.name,
        "instanceId": status.instance_id,
        "runtimeStatus": status.runtime_status.value,
        "input": status.input,
        "customStatus": status.custom_status,
        "output": output,
        "createdTime": api_time(status.created_at),
        "lastUpdatedTime": api_time(status.last_updated_at),
    }
    if history is not None:
        body["historyEvents"] = history
    if status.unreadable is not None:
        body["unreadable"] = status.unreadable
    if status.dead_letters:
        body["deadLetters"] = status.dead_letters
    if status.waiting is not None:
        body["waiting"] = status.waiting
    return body


def dead_letter_json(letter: DeadLetter) -> dict[str, Any]:
    """A message set aside unread: `{messageId, instanceId, error, deadTime, message}` (the
    message as it was stored)."""
    return {
        "messageId": letter.message_id,
        "instanceId": letter.instance_id,
        "error": letter.error,
        "deadTime": api_time(letter.dead_at),
        "message": letter.event,
    }


def unreadable_json(instance: UnreadableInstance) -> dict[str, Any]:
    """A listed instance whose stored row cannot be read: its id and why, every other field null
    (the SDK's status model takes a null status), so one bad row never fails a listing."""
    return {
        "name": None,
        "instanceId": instance.instance_id,
        "runtimeStatus": None,
        "input": None,
        "customStatus": None,
        "output": None,
        "createdTime": None,
        "lastUpdatedTime": None,
        "unreadable": instance.reason,
    }


def worker_json(worker: WorkerRecord, now: datetime) -> dict[str, Any]:
    """A registered worker (ours, not Azure's): `{workerId, host, pid, version, startedTime,
    lastHeartbeatTime, secondsSinceHeartbeat, orchestrationsAndEntities, activities}`."""
    return {
        "workerId": worker.worker_id,
        "host": worker.host,
        "pid": worker.pid,
        "version": worker.version,
        "startedTime": api_time(worker.started_at),
        "lastHeartbeatTime": api_time(worker.heartbeat_at),
        "secondsSinceHeartbeat": round((now - worker.heartbeat_at).total_seconds(), 1),
        "orchestrationsAndEntities": sorted(worker.instance_names),
        "activities": sorted(worker.activity_names),
    }
