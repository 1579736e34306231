"""Reading the host's JSON objects field by field, every problem a `ValueError` saying where."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from asynkron_durable.azure_history.event_types import parse_time

Base = dict[str, Any]
"""The fields every event shares (`event_id`, `timestamp`), as keyword arguments for our events."""


def texts(value: Any) -> tuple[str, ...] | None:
    """`value` as a tuple of texts, or None when it is not a list of texts."""
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return tuple(value)
    return None


class Fields:
    """A JSON object read field by field; every problem is a `ValueError` saying where it is."""

    def __init__(self, where: str, raw: Mapping[str, Any]) -> None:
        self.where = where
        self.raw = raw

    def error(self, problem: str) -> ValueError:
        return ValueError(f"{self.where}: {problem}")

    def optional_text(self, key: str) -> str | None:
        value = self.raw.get(key)
        if value is not None and not isinstance(value, str):
            raise self.error(f"{key} must be text or null, got {type(value).__name__}")
        return value

    def text(self, key: str) -> str:
        value = self.optional_text(key)
        if value is None:
            raise self.error(f"missing {key}")
        return value

    def optional_integer(self, key: str) -> int | None:
        value = self.raw.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise self.error(f"{key} must be an integer, got {type(value).__name__}")
        return value

    def integer(self, key: str) -> int:
        value = self.optional_integer(key)
        if value is None:
            raise self.error(f"missing {key}")
        return value

    def flag(self, key: str) -> bool:
        value = self.raw.get(key, False)
        if not isinstance(value, bool):
            raise self.error(f"{key} must be true or false, got {type(value).__name__}")
        return value

    def optional_time(self, key: str) -> datetime | None:
        value = self.optional_text(key)
        if value is None:
            return None
        try:
            return parse_time(value)
        except ValueError:
            raise self.error(f"{key} {value!r} is not an ISO 8601 time") from None

    def time(self, key: str) -> datetime:
        value = self.optional_time(key)
        if value is None:
            raise self.error(f"missing {key}")
        return value

    def text_list(self, key: str) -> tuple[str, ...]:
        value = texts(self.raw.get(key))
        if value is None:
            raise self.error(f"{key} must be a list of texts")
        return value

    def nested(self, key: str) -> Fields | None:
        """The object at `key` (None when missing or null)."""
        value = self.raw.get(key)
        if value is None:
            return None
        if not isinstance(value, Mapping):
            raise self.error(f"{key} must be an object or null, got {type(value).__name__}")
        return Fields(f"{self.where}, {key}", value)

    def decoded(self, key: str) -> Any:
        """The JSON value encoded in the text at `key` (None when missing or null)."""
        text = self.optional_text(key)
        if text is None:
            return None
        try:
            return json.loads(text)
        except ValueError:
            raise self.error(f"{key} is not JSON text") from None

    def embedded(self, key: str) -> Fields:
        """The object encoded as JSON text at `key` (an entity request or response message)."""
        value = self.decoded(key)
        if not isinstance(value, dict):
            raise self.error(f"{key} must hold a JSON object, got {type(value).__name__}")
        return Fields(f"{self.where}, {key}", value)
