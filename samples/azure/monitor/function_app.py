"""Monitor: poll a job's status on a durable timer until it reports done.

    asynkron-durable run samples/azure/monitor monitor_job --input '{"done_after_polls": 3}'

prints 3, the number of polls it took, after two one-second timers. The fake job reports "done" on
poll `done_after_polls`; a real one would ask the job's service.
"""

from collections.abc import Generator
from datetime import timedelta
from typing import Any

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.orchestration_trigger(context_name="context")
def monitor_job(context: df.DurableOrchestrationContext) -> Generator[Any, Any, int]:
    job = context.get_input() or {"done_after_polls": 3}
    polls = 0
    while True:
        polls += 1
        status = yield context.call_activity(get_job_status, {**job, "poll": polls})
        if status == "done":
            return polls
        # A durable timer: no worker is busy while it waits, and it survives restarts.
        next_check = context.current_utc_datetime + timedelta(seconds=1)
        yield context.create_timer(next_check)


@app.activity_trigger(input_name="job")
def get_job_status(job: dict[str, Any]) -> str:
    return "done" if job["poll"] >= job["done_after_polls"] else "running"
