"""Monitor: poll on a durable timer, publish progress, restart with continue-as-new each round.

    asynkron-durable run samples/monitor.py monitor --input '{"checks_left": 3, "interval_seconds": 0.2}'

checks a service every `interval_seconds` until `checks_left` runs out (or the service reports
"down") and prints the readings. Each round restarts the instance with a fresh history, so a
monitor can run forever without its history growing; `asynkron-durable status ID` shows the
custom status while it runs.
"""

from __future__ import annotations

from datetime import timedelta

from asynkron_durable import DurableApp, OrchestrationContext

app = DurableApp()


@app.activity()
def check_service(check_number: int) -> str:
    return f"check {check_number}: up"


@app.orchestrator()
async def monitor(ctx: OrchestrationContext) -> dict[str, object] | None:
    """One check per execution; the state to keep is carried in the continue-as-new input."""
    state = ctx.get_input() or {}
    checks_left: int = state.get("checks_left", 3)
    interval: float = state.get("interval_seconds", 5.0)
    readings: list[str] = [*state.get("readings", [])]
    readings.append(await ctx.call_activity(check_service, len(readings) + 1))
    ctx.set_custom_status({"checks_done": len(readings), "last": readings[-1]})
    if checks_left <= 1 or readings[-1].endswith("down"):
        return {"checks": len(readings), "readings": readings}
    await ctx.create_timer(timedelta(seconds=interval))
    ctx.continue_as_new({"checks_left": checks_left - 1, "interval_seconds": interval, "readings": readings})
    return None
