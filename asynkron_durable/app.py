"""`DurableApp`: registrations without a store, for apps that a command line or a host loads."""

from __future__ import annotations

from asynkron_durable.registry import Registrations, Registry
from asynkron_durable.stores.hubs import check_task_hub


class DurableApp(Registrations):
    """Holds orchestrators and activities; `runtime.register_app(app)` puts them on a runtime.
    `task_hub` names the task hub its workers serve when the command line runs it (`worker`,
    `run`, `serve`; a `--task-hub` option wins), default `default`.

    ```python
    app = DurableApp()

    @app.activity()
    def greet(name: str) -> str:
        return f"Hello {name}"
    ```
    """

    def __init__(self, *, task_hub: str | None = None) -> None:
        self.registry = Registry()
        self.registry.task_hub = None if task_hub is None else check_task_hub(task_hub)
