"""The real Azure SDK as a test oracle: what its orchestrator handle returns for a host request,
compared with our `execute_orchestrator` at every prefix of a history."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import azure.durable_functions as df
from asynkron_durable_azure.protocol import execute_orchestrator

OUT_OF_PROC_MARKER = "\n\n$OutOfProcData$:"
SCHEMAS = {"v1": 0, "v2": 1, "v3": 2}


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


def request(history: list[dict[str, Any]], instance_id: str, input_json: str | None, schema: int) -> str:
    """The host's orchestrator request for `history` (IsPlayed set as the host sets it)."""
    last_start = max(i for i, e in enumerate(history) if e["EventType"] == 12)
    played = [{**e, "IsPlayed": i < last_start} for i, e in enumerate(history)]
    return json.dumps(
        {
            "history": played,
            "instanceId": instance_id,
            "input": input_json,
            "isReplaying": last_start > 0,
            "parentInstanceId": None,
            "upperSchemaVersion": schema,
        }
    )


def assert_parity_at_every_prefix(
    fn: Callable[..., Any], instance_id: str, input_json: str | None, history: list[dict[str, Any]]
) -> int:
    """Give every prefix of `history`, in every schema, to the SDK and to us; they must agree.
    Returns how many states were compared."""
    compared = 0
    for schema in SCHEMAS.values():
        for cut in range(2, len(history) + 1):
            body = request(history[:cut], instance_id, input_json, schema)
            theirs = sdk_state(fn, body)
            ours = json.loads(execute_orchestrator(fn, body))
            assert ours == theirs, f"prefix of {cut} events, schema {schema}:\n{json.dumps(history[:cut])}"
            compared += 1
    return compared
