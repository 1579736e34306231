"""Azure activity functions as core activities.

The host hands an activity its input decoded by the SDK's codec (`df_loads`: custom classes with
`to_json`/`from_json` rebuilt from their `{"__class__", "__module__", "__data__"}` form) and bound
to the trigger's parameter by name, and encodes the return value with `df_dumps`. Our core moves
plain JSON values, so the adapter decodes the plain input the SDK's way and returns the SDK's
plain form of the result: custom objects cross our store exactly as they cross Azure's.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from asynkron_durable_azure.loading import AzureActivity
from asynkron_durable_azure.payloads import from_plain, to_plain


def core_activity(activity: AzureActivity) -> Callable[[Any], Any]:
    """A one-input core activity calling the user's function (sync or `async`, as it is)."""
    fn = activity.fn
    if inspect.iscoroutinefunction(fn):

        async def run_async(input: Any) -> Any:
            return _encoded(activity, await fn(**_arguments(activity, input)))

        return run_async

    def run(input: Any) -> Any:
        return _encoded(activity, fn(**_arguments(activity, input)))

    return run


def _arguments(activity: AzureActivity, input: Any) -> dict[str, Any]:
    if activity.other_params:
        raise TypeError(
            f"activity {activity.name!r} needs parameter(s) {', '.join(activity.other_params)}, "
            f"bound by the Functions host from other bindings; asynkron-durable binds only the "
            f"activityTrigger input {activity.input_name!r}"
        )
    try:
        value = from_plain(input)
    except Exception as exc:  # the class of a custom object is not loaded, or has no from_json
        raise ValueError(f"input of activity {activity.name!r} cannot be decoded: {exc}") from exc
    return {activity.input_name: value}


def _encoded(activity: AzureActivity, result: Any) -> Any:
    try:
        return to_plain(result)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"output of activity {activity.name!r} is not JSON-serialisable: {exc}") from exc
