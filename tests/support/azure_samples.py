"""The Azure samples as samples/azure/README.md documents them: the command that runs each one and
the output it must print. Shared by the command-line test and the parity oracle."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
AZURE_SAMPLES = REPO / "samples" / "azure"
README = AZURE_SAMPLES / "README.md"
RUN_PREFIX = "asynkron-durable run samples/azure/"

HELLO = ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]

# (sample folder, orchestrator) -> the output its README command prints on its last line.
EXPECTED_OUTPUT: dict[tuple[str, str], Any] = {
    ("hello_chaining_v2", "hello_orchestrator"): HELLO,
    ("hello_chaining_v1", "HelloOrchestrator"): HELLO,
    ("fan_out_fan_in", "fan_out_fan_in"): 385,
    ("monitor", "monitor_job"): 3,
    ("human_interaction", "approval_workflow"): "timed out",
    ("sub_orchestrations", "ship_order"): {
        "shipped": ["book packed, book shipped", "lamp packed, lamp shipped"],
        "receipt": "receipt: 2 items shipped",
    },
    ("retries", "fetch_with_retries"): "inventory fetched on attempt 3",
    ("retries", "charge_with_fallback"): "gave up: card 4242 declined",
    ("custom_status", "order_progress"): {"done": ["validate ok", "charge ok", "ship ok"], "progress": "3/3"},
    ("continue_as_new", "count_to"): 5,
    ("counter_entity", "counter_orchestrator"): 15,
    ("custom_classes", "make_invoice"): {"sku": "tea", "quantity": 3, "total": 13.5},
}


def documented_commands(text: str) -> dict[tuple[str, str], list[str]]:
    """The `asynkron-durable run samples/azure/...` lines of `text` that leave the store to the
    caller, as arguments, by (sample folder, orchestrator); a sample documented twice fails."""
    commands: dict[tuple[str, str], list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith(RUN_PREFIX):
            continue
        args = shlex.split(line)[1:]
        if "--store" in args:
            continue
        key = (Path(args[1]).relative_to("samples/azure").parts[0], args[2])
        assert key not in commands, f"{key} is documented twice"
        commands[key] = args
    return commands


README_COMMANDS = documented_commands(README.read_text())
