"""Retries: an activity that fails twice succeeds on its third attempt; one that always fails is
given up on, and the orchestrator handles the error.

    asynkron-durable run samples/azure/retries fetch_with_retries --input '{"succeed_on_attempt": 3}'
    asynkron-durable run samples/azure/retries charge_with_fallback --input '"4242"'

print "inventory fetched on attempt 3" and "gave up: card 4242 declined". `flaky_fetch` counts
its attempts in a file named after the instance (in the input's `state_dir`, default the system
temp dir), so the count holds whichever worker process runs each attempt.
"""

import tempfile
from collections.abc import Generator
from pathlib import Path
from typing import Any

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)

# The waits between attempts are durable timers, first_retry_interval_in_milliseconds apart.
FETCH_RETRY = df.RetryOptions(first_retry_interval_in_milliseconds=100, max_number_of_attempts=5)
CHARGE_RETRY = df.RetryOptions(first_retry_interval_in_milliseconds=100, max_number_of_attempts=2)


@app.orchestration_trigger(context_name="context")
def fetch_with_retries(context: df.DurableOrchestrationContext) -> Generator[Any, Any, str]:
    options = context.get_input() or {}
    request = {
        "attempts_file": f"{context.instance_id}.attempts",
        "state_dir": options.get("state_dir"),
        "succeed_on_attempt": options.get("succeed_on_attempt", 3),
    }
    attempt = yield context.call_activity_with_retry(flaky_fetch, FETCH_RETRY, request)
    return f"inventory fetched on attempt {attempt}"


@app.activity_trigger(input_name="request")
def flaky_fetch(request: dict[str, Any]) -> int:
    """Fails until its `succeed_on_attempt`-th call, like a service that is still starting."""
    attempts_file = Path(request["state_dir"] or tempfile.gettempdir()) / request["attempts_file"]
    attempt = int(attempts_file.read_text()) + 1 if attempts_file.exists() else 1
    if attempt < request["succeed_on_attempt"]:
        attempts_file.write_text(str(attempt))
        raise ConnectionError(f"inventory unavailable (attempt {attempt})")
    attempts_file.unlink(missing_ok=True)
    return attempt


@app.orchestration_trigger(context_name="context")
def charge_with_fallback(context: df.DurableOrchestrationContext) -> Generator[Any, Any, str]:
    card = context.get_input()
    try:
        yield context.call_activity_with_retry(charge_card, CHARGE_RETRY, card)
    except Exception as error:
        # The first line of the message is the activity's error; the stack trace follows.
        return f"gave up: {str(error).splitlines()[0].strip()}"
    return f"card {card} charged"


@app.activity_trigger(input_name="card")
def charge_card(card: str) -> str:
    raise ValueError(f"card {card} declined")
