"""`DurableApp`: registrations without a store, for apps that a command line or a host loads."""

from __future__ import annotations

from asynkron_durable.registry import Registrations, Registry


class DurableApp(Registrations):
    """Holds orchestrators and activities; `runtime.register_app(app)` puts them on a runtime.

    ```python
    app = DurableApp()

    @app.activity()
    def greet(name: str) -> str:
        return f"Hello {name}"
    ```
    """

    def __init__(self) -> None:
        self.registry = Registry()
