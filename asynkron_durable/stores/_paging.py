"""The opaque continuation token of `query_instances`, shared by every store.

The token is the sort key of the last row returned (creation time, instance id), so the next page
starts strictly after it: keyset paging stays correct while instances are created or purged.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime

_TOKEN_VERSION = 1


@dataclass(frozen=True, slots=True)
class PageKey:
    """The (created_at, instance_id) position a page ended at."""

    created_at: datetime
    instance_id: str


def encode_token(key: PageKey) -> str:
    """Encode `key` as an opaque URL-safe token."""
    payload = {"v": _TOKEN_VERSION, "c": key.created_at.isoformat(), "i": key.instance_id}
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode("ascii")


def decode_token(token: str) -> PageKey:
    """Decode a token made by `encode_token`; raises `ValueError` for anything else."""
    try:
        payload = json.loads(base64.urlsafe_b64decode(token.encode("ascii")))
        if not isinstance(payload, dict) or payload.get("v") != _TOKEN_VERSION:
            raise ValueError("unknown token format")
        created_raw, instance_id = payload["c"], payload["i"]
        if not isinstance(created_raw, str) or not isinstance(instance_id, str):
            raise ValueError("wrong field types")
        created_at = datetime.fromisoformat(created_raw)
        if created_at.tzinfo is None:
            raise ValueError("timestamp has no timezone")
    except (UnicodeError, binascii.Error, ValueError, KeyError) as exc:
        raise ValueError(
            f"invalid continuation token {token!r}: pass back, unchanged, a token an earlier page "
            f"of this query returned ({exc})"
        ) from exc
    return PageKey(created_at, instance_id)
