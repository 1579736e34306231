"""A base for the tests' store wrappers: what a wrapper does not override goes to the wrapped store."""

from __future__ import annotations

from typing import Any

from asynkron_durable.stores import StateStore


class StoreWrapper:
    """Wraps `inner`; subclasses override the calls they spy on or break."""

    def __init__(self, inner: StateStore) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)
