"""The real Azure SDK as a test oracle: what its orchestrator handle returns for a host request."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import azure.durable_functions as df

OUT_OF_PROC_MARKER = "\n\n$OutOfProcData$:"


def sdk_state(fn: Callable[..., Any], body: str) -> dict[str, Any]:
    """The SDK's OrchestratorState for `body`: its return value, or the state it embeds in the
    exception it raises when user code failed."""
    handle = df.Orchestrator.create(fn)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the SDK warns about events that come before their waiter
        try:
            return dict(json.loads(handle(SimpleNamespace(body=body))))
        except Exception as exc:
            text = str(exc)
            if OUT_OF_PROC_MARKER not in text:
                raise
            return dict(json.loads(text.split(OUT_OF_PROC_MARKER, 1)[1]))
