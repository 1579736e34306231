"""Decoding stored rows into records and events, shared by the SQL backends."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
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
from asynkron_durable.stores._paging import PageKey, encode_token
from asynkron_durable.stores.base import ActivityTask, ActivityWorkItem, InstancePage, UnreadableInstance

_T = TypeVar("_T")

QUARANTINED = "!unreadable"
"""The lease owner of instances whose row cannot be decoded; nobody claims them."""


def _as_is(value: Any) -> datetime:
    if not isinstance(value, datetime):
        raise TypeError(f"expected a timestamp, got {type(value).__name__}")
    return value


def record_from_row(row: Any, to_datetime: Callable[[Any], datetime] = _as_is) -> InstanceRecord:
    """Decode an instances row (`to_datetime` reads the backend's time columns); raises
    `StoreError` naming the instance and the column if it is corrupt."""
    column = "runtime_status"
    try:
        status = RuntimeStatus(row[column])
        column = "failure"
        failure = None if row[column] is None else FailureDetails.model_validate_json(row[column])
        column = "created_at"
        created_at = to_datetime(row[column])
        column = "last_updated_at"
        last_updated_at = to_datetime(row[column])
        column = "a column"
        return InstanceRecord(
            instance_id=row["instance_id"],
            name=row["name"],
            execution_id=row["execution_id"],
            runtime_status=status,
            input=row["input"],
            output=row["output"],
            custom_status=row["custom_status"],
            failure=failure,
            created_at=created_at,
            last_updated_at=last_updated_at,
            parent_instance_id=row["parent_instance_id"],
            version=row["version"],
        )
    except (ValueError, TypeError, OverflowError) as exc:
        reason = " ".join(str(exc).split())
        raise StoreError(
            f"instance {row['instance_id']!r}: corrupt instance row, {column}: {reason}"
        ) from exc


def page_of(
    rows: Sequence[Any], page_size: int, to_datetime: Callable[[Any], datetime] = _as_is
) -> InstancePage:
    """A page of a query from up to `page_size + 1` rows (one more says another page follows). A
    row that cannot be decoded is reported in `unreadable`, and every other row listed as usual."""
    records: list[InstanceRecord] = []
    unreadable: list[UnreadableInstance] = []
    for row in rows[:page_size]:
        try:
            records.append(record_from_row(row, to_datetime))
        except StoreError as exc:
            unreadable.append(UnreadableInstance(row["instance_id"], str(exc)))
    token = None
    if len(rows) > page_size:
        last = rows[page_size - 1]
        try:
            key = PageKey(to_datetime(last["created_at"]), last["instance_id"])
        except (ValueError, TypeError, OverflowError):  # its time is unreadable: from the last good one
            if not records:
                raise StoreError(
                    f"instance {last['instance_id']!r}: corrupt created_at; cannot page on"
                ) from None
            key = PageKey(records[-1].created_at, records[-1].instance_id)
        token = encode_token(key)
    return InstancePage(records, token, unreadable)


def decode_event(text: Any, instance_id: str, where: str) -> HistoryEvent:
    """Decode a stored event; raises `StoreError` naming the instance and row if it is corrupt."""
    return _decoded(event_from_json, text, instance_id, where)


def decode_history_row(text: Any, instance_id: str, seq: int) -> list[HistoryEvent]:
    """Decode a history row (the events one commit appended); raises `StoreError` naming the
    instance and row if it is corrupt."""
    return _decoded(events_from_json, text, instance_id, f"history row seq={seq}")


def readable_records(
    rows: Iterable[Any], times: Callable[[Any], datetime] = _as_is
) -> dict[str, InstanceRecord]:
    """The records of `rows` by instance id, leaving out those that cannot be decoded (listings
    and `get_instance` name those)."""
    records: dict[str, InstanceRecord] = {}
    for row in rows:
        try:
            records[row["instance_id"]] = record_from_row(row, times)
        except StoreError:
            continue
    return records


def activity_item(row: Any) -> ActivityWorkItem:
    """A claimed activity from its row (`activity_id`, the task's columns and `attempt`)."""
    task = ActivityTask(
        instance_id=row["instance_id"],
        execution_id=row["execution_id"],
        task_id=row["task_id"],
        name=row["name"],
        input=row["input"],
    )
    return ActivityWorkItem(row["activity_id"], task, row["attempt"])


def decode_history_rows(
    rows: Iterable[Any], histories: dict[str, list[HistoryEvent]], instance_id: str | None = None
) -> None:
    """Append the events of `rows` (`seq` and `event`, with `instance_id` unless it is given; in
    seq order per instance) to their instances' lists in `histories`. Rows count up from 0 one
    commit at a time, so a gap means rows were deleted: replaying what is left would run the
    orchestration from a wrong past, and a `StoreError` naming the instance and row refuses it."""
    seen: dict[str, int] = {}
    for row in rows:
        owner = instance_id if instance_id is not None else row["instance_id"]
        expected = seen.get(owner, 0)
        if row["seq"] != expected:
            raise StoreError(
                f"instance {owner!r}: history row seq={expected} is missing (the next is "
                f"seq={row['seq']}): the history cannot be replayed"
            )
        seen[owner] = expected + 1
        histories.setdefault(owner, []).extend(decode_history_row(row["event"], owner, expected))


def _decoded(parse: Callable[[Any], _T], text: Any, instance_id: str, where: str) -> _T:
    try:
        return parse(text)
    except (ValueError, TypeError) as exc:
        raise StoreError(f"instance {instance_id!r}: cannot decode {where}: {exc}") from exc
