"""JSON in and out of user code: every payload crosses the store as JSON text, typed by pydantic."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from pydantic import TypeAdapter, ValidationError
from pydantic_core import PydanticSerializationError, to_jsonable_python

from asynkron_durable.errors import SerializationError


def to_json(value: Any, what: str = "value") -> str:
    """Encode `value` (JSON types, dataclasses, pydantic models...) as JSON text, or name why not."""
    try:
        return json.dumps(to_jsonable_python(value), separators=(",", ":"))
    except (PydanticSerializationError, TypeError, ValueError) as exc:
        raise SerializationError(
            f"{what} of type {type(value).__name__} is not JSON-serialisable: {exc}"
        ) from None


def from_json(text: str | None) -> Any:
    """Decode JSON text into plain Python values; `None` stays `None`."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise SerializationError(f"stored payload is not valid JSON: {exc}") from None


@lru_cache(maxsize=512)
def _adapter(annotation: Any) -> TypeAdapter[Any]:
    return TypeAdapter(annotation)


def coerce(value: Any, annotation: Any, what: str = "value") -> Any:
    """Validate plain JSON data into `annotation` (a model, dataclass, list[int]...)."""
    if annotation is None or annotation is Any:
        return value
    try:
        return _adapter(annotation).validate_python(value)
    except ValidationError as exc:
        raise SerializationError(f"{what} does not match {_type_name(annotation)}: {exc}") from None
    except TypeError as exc:  # an annotation pydantic cannot build a validator for
        raise SerializationError(f"{what}: cannot validate into {annotation!r}: {exc}") from None


def _type_name(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or repr(annotation)
