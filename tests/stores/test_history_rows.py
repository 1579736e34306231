"""Decoding history rows: a commit's events as one JSON array, the one-event rows of version 1
stores, and values that are not events at all."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from asynkron_durable.errors import StoreError
from asynkron_durable.history import (
    EventRaised,
    HistoryEvent,
    OrchestratorStarted,
    event_to_json,
    events_to_json,
)
from asynkron_durable.stores._rows import decode_history_row, decode_history_rows

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
EVENTS: list[HistoryEvent] = [OrchestratorStarted(timestamp=T0), EventRaised(name="x", input='"x"')]


def test_a_row_decodes_from_text_or_bytes_as_an_array_or_a_single_event() -> None:
    row = events_to_json(EVENTS)
    assert decode_history_row(row, "a", 0) == EVENTS
    assert decode_history_row(row.encode(), "a", 0) == EVENTS
    assert decode_history_row(f" \n{row}", "a", 0) == EVENTS
    assert decode_history_row(event_to_json(EVENTS[1]), "a", 1) == [EVENTS[1]]
    assert decode_history_row(event_to_json(EVENTS[1]).encode(), "a", 1) == [EVENTS[1]]


@pytest.mark.parametrize("value", [42, None, "not json", '[{"kind": "Nope"}]', '{"kind": "Nope"}', "[1]"])
def test_a_row_that_holds_no_events_names_the_instance_and_the_row(value: Any) -> None:
    with pytest.raises(StoreError, match=r"instance 'a': cannot decode history row seq=7"):
        decode_history_row(value, "a", 7)


def test_rows_decode_per_instance_and_a_missing_row_names_the_instance_and_the_gap() -> None:
    row = events_to_json(EVENTS)
    histories: dict[str, list[HistoryEvent]] = {"a": [], "b": []}
    rows = [{"instance_id": "a", "seq": 0, "event": row}, {"instance_id": "b", "seq": 0, "event": row}]
    decode_history_rows([*rows, {"instance_id": "a", "seq": 1, "event": row}], histories)
    assert histories == {"a": EVENTS + EVENTS, "b": EVENTS}

    with pytest.raises(StoreError, match=r"instance 'a': history row seq=1 is missing \(the next is seq=2\)"):
        decode_history_rows([{"seq": 0, "event": row}, {"seq": 2, "event": row}], {}, "a")
    with pytest.raises(StoreError, match=r"instance 'b': history row seq=0 is missing"):
        decode_history_rows([{"instance_id": "b", "seq": 1, "event": row}], {})
