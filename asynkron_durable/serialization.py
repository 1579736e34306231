"""JSON in and out of user code: every payload crosses the store as JSON text, typed by pydantic."""

from __future__ import annotations

import json
import math
from functools import lru_cache
from typing import Any

from pydantic import TypeAdapter, ValidationError
from pydantic_core import PydanticSerializationError, to_jsonable_python

from asynkron_durable.errors import SerializationError


def to_json(value: Any, what: str = "value") -> str:
    """Encode `value` (JSON types, dataclasses, pydantic models...) as JSON text, or name why not.
    NaN and infinity are refused: JSON has no form for them (pydantic would pass them on, to be
    written as non-JSON `NaN` or as null, depending on its version)."""
    try:
        plain = to_jsonable_python(value, inf_nan_mode="constants")
        text = json.dumps(plain, separators=(",", ":"), allow_nan=False)
    except (PydanticSerializationError, TypeError, ValueError) as exc:
        reason = "NaN and infinity have no JSON form" if "Out of range float" in str(exc) else exc
        raise SerializationError(
            f"{what} of type {type(value).__name__} is not JSON-serialisable: {reason}"
        ) from None
    problem = _lone_surrogate(text, plain)
    if problem is not None:
        raise SerializationError(f"{what} {problem}")
    return text


def parse_json(text: str | bytes) -> Any:
    """Decode JSON given by a user (a command-line option, a request body) strictly: NaN and
    Infinity, which Python's parser takes and no JSON answer can carry, and numbers too large for a
    float (`1e999` would read as infinity) raise ValueError naming them, as malformed text does."""
    if isinstance(text, bytes):  # UTF-8 strictly (json.loads would take surrogates and UTF-16)
        text = text.decode("utf-8-sig")
    else:
        text.encode("utf-8")  # a str holding a lone surrogate already: UnicodeEncodeError
    value = json.loads(text, parse_constant=_no_constant, parse_float=_finite_float)
    problem = _lone_surrogate(text, value)
    if problem is not None:
        raise ValueError(f"the JSON {problem}")
    return value


def _lone_surrogate(text: str, value: Any) -> str | None:
    """What is wrong when `value` (the JSON `text` decoded) holds a string with a lone surrogate
    (`"\\ud800"`): such text is no Unicode a store, an HTTP answer or another program can encode.
    Only JSON that spells a surrogate escape is looked at closely (a pair, an emoji, is fine)."""
    if "\\ud" not in text and "\\uD" not in text:  # json.dumps writes lower case; users may not
        return None
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = exc.object[exc.start : exc.end].encode("unicode_escape").decode("ascii")
        return f"holds text that is not valid Unicode (the lone surrogate {bad}), which cannot be stored"
    return None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is out of range for a number")
    return value


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
