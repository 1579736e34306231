"""Human interaction: wait for an approval event, escalate if nobody answers in time.

    asynkron-durable run samples/human_interaction.py human_interaction --input '{"timeout_seconds": 1}'

prints "escalated" after one second (and leaves the store, ./durable.db, that `start` needs). To
approve instead, start it and let a worker run it:

    asynkron-durable start human_interaction --instance-id approval-1
    asynkron-durable worker samples/human_interaction.py &
    asynkron-durable raise-event approval-1 Approval --data '"alice"'
    asynkron-durable status approval-1          # output: "approved by alice"

The input is {"timeout_seconds": seconds to wait, default 30}; the event data is the approver.
"""

from __future__ import annotations

from datetime import timedelta

from asynkron_durable import DurableApp, EventTimeoutError, OrchestrationContext

app = DurableApp()


@app.activity()
def request_approval(timeout_seconds: float) -> str:
    return f"approval requested; answer within {timeout_seconds:g}s"


@app.activity()
def escalate(instance_id: str) -> str:
    return f"{instance_id} escalated to a manager"


@app.orchestrator()
async def human_interaction(ctx: OrchestrationContext) -> str:
    """The wait is a durable timer: it survives restarts, and no worker is busy while it runs."""
    timeout_seconds = (ctx.get_input() or {}).get("timeout_seconds", 30)
    ctx.set_custom_status(await ctx.call_activity(request_approval, timeout_seconds))
    try:
        approver = await ctx.wait_for_external_event("Approval", timeout=timedelta(seconds=timeout_seconds))
    except EventTimeoutError:
        ctx.set_custom_status(await ctx.call_activity(escalate, ctx.instance_id))
        return "escalated"
    return f"approved by {approver}"
