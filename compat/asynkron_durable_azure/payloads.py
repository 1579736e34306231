"""Payloads the SDK's way: custom classes with `to_json`/`from_json` travel as
`{"__class__", "__module__", "__data__"}` objects. The core moves plain JSON values, so values are
turned into that plain form on the way in and decoded by the SDK's own codec on the way out."""

from __future__ import annotations

import json
from typing import Any

from azure.durable_functions.models.utils.df_serialization import df_dumps, df_loads


def to_plain(value: Any) -> Any:
    """`value` as the plain JSON data the SDK would put on the wire."""
    return json.loads(df_dumps(value))


def from_plain(value: Any, expected_type: type | None = None) -> Any:
    """Plain JSON data decoded as the SDK decodes a payload (custom classes rebuilt)."""
    if value is None:
        return None
    return df_loads(json.dumps(value), expected_type=expected_type)
