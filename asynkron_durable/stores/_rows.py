"""Decoding stored rows into records and events, shared by the SQL backends."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from asynkron_durable.errors import StoreError
from asynkron_durable.history import (
    FailureDetails,
    HistoryEvent,
    InstanceRecord,
    RuntimeStatus,
    event_from_json,
    events_from_json,
)

_T = TypeVar("_T")

QUARANTINED = "!unreadable"
"""The lease owner of instances whose row cannot be decoded; nobody claims them."""


def _as_is(value: Any) -> datetime:
    if not isinstance(value, datetime):
        raise TypeError(f"expected a timestamp, got {type(value).__name__}")
    return value


def record_from_row(row: Any, to_datetime: Callable[[Any], datetime] = _as_is) -> InstanceRecord:
    """Decode an instances row (`to_datetime` reads the backend's time columns); raises
    `StoreError` naming the instance if it is corrupt."""
    try:
        failure = row["failure"]
        return InstanceRecord(
            instance_id=row["instance_id"],
            name=row["name"],
            execution_id=row["execution_id"],
            runtime_status=RuntimeStatus(row["runtime_status"]),
            input=row["input"],
            output=row["output"],
            custom_status=row["custom_status"],
            failure=None if failure is None else FailureDetails.model_validate_json(failure),
            created_at=to_datetime(row["created_at"]),
            last_updated_at=to_datetime(row["last_updated_at"]),
            parent_instance_id=row["parent_instance_id"],
            version=row["version"],
        )
    except (ValueError, TypeError, OverflowError) as exc:
        raise StoreError(f"instance {row['instance_id']!r}: corrupt instance row: {exc}") from exc


def decode_event(text: Any, instance_id: str, where: str) -> HistoryEvent:
    """Decode a stored event; raises `StoreError` naming the instance and row if it is corrupt."""
    return _decoded(event_from_json, text, instance_id, where)


def decode_history_row(text: Any, instance_id: str, seq: int) -> list[HistoryEvent]:
    """Decode a history row (the events one commit appended); raises `StoreError` naming the
    instance and row if it is corrupt."""
    return _decoded(events_from_json, text, instance_id, f"history row seq={seq}")


def _decoded(parse: Callable[[Any], _T], text: Any, instance_id: str, where: str) -> _T:
    try:
        return parse(text)
    except (ValueError, TypeError) as exc:
        raise StoreError(f"instance {instance_id!r}: cannot decode {where}: {exc}") from exc
