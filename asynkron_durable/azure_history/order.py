"""The order rule: the host closes an episode with its terminal event (ExecutionCompleted,
ExecutionFailed, ContinueAsNew) before OrchestratorCompleted; our runtime writes it just after."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from asynkron_durable.history import (
    ContinuedAsNew,
    ExecutionCompleted,
    ExecutionFailed,
    HistoryEvent,
    OrchestratorCompleted,
)

T = TypeVar("T")

_TERMINAL = (ExecutionCompleted, ExecutionFailed, ContinuedAsNew)


def to_host_order(events: Sequence[HistoryEvent]) -> list[HistoryEvent]:
    """Our events in the host's order: each terminal event moved before its OrchestratorCompleted."""
    return _swap_pairs(events, _is_episode_end, _is_terminal)


def to_our_order(events: Sequence[HistoryEvent]) -> list[HistoryEvent]:
    """The host's events in our order: each terminal event moved after its OrchestratorCompleted."""
    return _swap_pairs(events, _is_terminal, _is_episode_end)


def _swap_pairs(items: Sequence[T], first: Callable[[T], bool], second: Callable[[T], bool]) -> list[T]:
    """`items` with every adjacent pair (a, b) where `first(a)` and `second(b)` swapped."""
    out = list(items)
    i = 0
    while i < len(out) - 1:
        if first(out[i]) and second(out[i + 1]):
            out[i], out[i + 1] = out[i + 1], out[i]
            i += 2
        else:
            i += 1
    return out


def _is_terminal(event: HistoryEvent) -> bool:
    return isinstance(event, _TERMINAL)


def _is_episode_end(event: HistoryEvent) -> bool:
    return isinstance(event, OrchestratorCompleted)
