"""An Azure app's functions as a core `Registry`: what `asynkron-durable run`/`worker` execute."""

from __future__ import annotations

from asynkron_durable.registry import Registry
from asynkron_durable_azure.activities import core_activity
from asynkron_durable_azure.entities import core_entity
from asynkron_durable_azure.http_activity import HTTP_ACTIVITY_NAME, http_activity
from asynkron_durable_azure.loading import AzureApp
from asynkron_durable_azure.orchestration import core_orchestrator


def azure_registry(app: AzureApp) -> Registry:
    """Every orchestrator, activity and entity of `app` under its Azure name (entity names
    lower-cased, as Azure's entity ids have them), plus the host's built-in activity behind
    `context.call_http`."""
    registry = Registry()
    for name, orchestrator in app.orchestrators.items():
        registry.add_orchestrator(
            core_orchestrator(orchestrator, app.orchestrator_input_types.get(name)), name
        )
    for name, activity in app.activities.items():
        registry.add_activity(core_activity(activity), name)
    for name, entity in app.entities.items():
        registry.add_entity(core_entity(entity), name)
    registry.add_activity(http_activity, HTTP_ACTIVITY_NAME)
    registry.task_hub = app.task_hub
    return registry
