"""The rule a chosen orchestration instance id follows wherever it is given (the client, the command
line, the HTTP API, a sub-orchestration call): Azure's, so that every instance can also be reached
through the HTTP API, whose URLs carry the id as one path segment."""

from __future__ import annotations

MAX_INSTANCE_ID_LENGTH = 256
_FORBIDDEN = frozenset("/\\?#") | {chr(c) for c in range(32)} | {chr(127)}


def instance_id_problem(instance_id: str) -> str | None:
    """Why `instance_id` cannot name an orchestration instance (at most 256 characters, none of
    `/ \\ ? #` nor control characters, valid Unicode, not `.` or `..`, which a URL path cannot
    carry as a segment), or None when it can."""
    if len(instance_id) > MAX_INSTANCE_ID_LENGTH:
        return f"an instance id has at most {MAX_INSTANCE_ID_LENGTH} characters, got {len(instance_id)}"
    if instance_id in (".", ".."):
        return f"an instance id may not be {instance_id!r}: a URL cannot carry it"
    bad = sorted({c for c in instance_id if c in _FORBIDDEN or "\ud800" <= c <= "\udfff"})
    if bad:
        return f"an instance id may not contain {', '.join(repr(c) for c in bad)}"
    return None


def check_instance_id(instance_id: str) -> None:
    """Raise ValueError naming why `instance_id` cannot name an orchestration instance."""
    problem = instance_id_problem(instance_id)
    if problem is not None:
        raise ValueError(problem)
