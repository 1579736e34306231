"""Retries: an activity that fails twice is retried with exponential backoff on durable timers.

    asynkron-durable run samples/retries.py retries --input '"inventory"'

prints "inventory fetched on attempt 3": attempts 1 and 2 fail, and the retries wait 100 ms,
then 200 ms. Attempts are counted per input in this process, so in a long-lived worker use a
new input each time to see the failures again.
"""

from __future__ import annotations

from collections.abc import Generator
from datetime import timedelta
from typing import Any

from asynkron_durable import DurableApp, OrchestrationContext, RetryOptions

app = DurableApp()

_attempts: dict[str, int] = {}

RETRY = RetryOptions(
    first_retry_interval=timedelta(milliseconds=100),
    max_number_of_attempts=5,
    backoff_coefficient=2,
)


@app.activity()
def flaky_fetch(resource: str) -> int:
    """Fails on its first two calls per resource, like a service that is still starting."""
    attempt = _attempts[resource] = _attempts.get(resource, 0) + 1
    if attempt < 3:
        raise ConnectionError(f"{resource} unavailable (attempt {attempt})")
    return attempt


@app.orchestrator()
def retries(ctx: OrchestrationContext) -> Generator[Any, Any, str]:
    resource: str = ctx.get_input() or "inventory"
    attempt = yield ctx.call_activity_with_retry(flaky_fetch, RETRY, resource)
    return f"{resource} fetched on attempt {attempt}"
