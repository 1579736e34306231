"""The parity oracle over the Azure samples: each sample orchestrator runs on our runtime, loaded
from its app folder as the command line loads it, and every prefix of every history it recorded
(sub-orchestrations included) gives the same OrchestratorState from the real SDK and from us."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from asynkron_durable_azure.loading import load_azure_app
from asynkron_durable_azure.registration import azure_registry
from support.azure_samples import EXPECTED_OUTPUT, README_COMMANDS, REPO
from support.azure_sdk import assert_parity_at_every_prefix

from asynkron_durable import DurableFunctionRuntime, RuntimeStatus
from asynkron_durable.azure_history import to_azure_history


@pytest.fixture
def isolated_imports() -> Iterator[None]:
    """Samples all call their module `function_app`: forget each one's modules and path after."""
    modules, path = dict(sys.modules), list(sys.path)
    yield
    for name in set(sys.modules) - set(modules):
        del sys.modules[name]
    sys.path[:] = path


def command_input(args: list[str]) -> Any:
    return json.loads(args[args.index("--input") + 1]) if "--input" in args else None


@pytest.mark.usefixtures("isolated_imports")
@pytest.mark.parametrize("sample", sorted(EXPECTED_OUTPUT), ids=lambda key: "-".join(key))
async def test_every_sample_history_prefix_agrees_with_the_sdk(sample: tuple[str, str]) -> None:
    args = README_COMMANDS[sample]
    app = load_azure_app(REPO / Path(args[1]))
    runtime = DurableFunctionRuntime("memory://", max_poll_interval=0.02)
    runtime.registry.merge(azure_registry(app))
    async with runtime:
        instance_id = await runtime.client.start_new(args[2], command_input(args))
        status = await runtime.client.wait_for_completion(instance_id, timeout=30)
        assert status.runtime_status is RuntimeStatus.COMPLETED, status.failure
        assert status.output == EXPECTED_OUTPUT[sample]
        instances = (await runtime.client.list_instances(page_size=1000)).instances
        histories = {
            i.instance_id: await runtime.store.get_history(i.instance_id)
            for i in instances
            if i.name in app.orchestrators  # not the entities
        }
    compared = 0
    for instance in instances:
        if instance.instance_id not in histories:
            continue
        history = to_azure_history(histories[instance.instance_id], instance_id=instance.instance_id)
        started = next(e for e in history if e["EventType"] == 0)
        compared += assert_parity_at_every_prefix(
            app.orchestrators[instance.name], instance.instance_id, started["Input"], history
        )
    assert compared > 0
