"""`DurableOrchestrationContext`'s shape on the core engine.

Every public member of the SDK's context, with its semantics and values (sequence numbers taken
on first yield, the SDK's `new_uuid`, actions recorded as the SDK records them so the out-of-proc
protocol can report them), implemented by calling the core `OrchestrationContext`. The SDK's own
value types (`df.RetryOptions`, `df.EntityId`, its action classes) are used as they are.
"""

from __future__ import annotations

import datetime
import json
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from azure.durable_functions.constants import DATETIME_STRING_FORMAT
from azure.durable_functions.models.actions.CallActivityAction import CallActivityAction
from azure.durable_functions.models.actions.CallActivityWithRetryAction import CallActivityWithRetryAction
from azure.durable_functions.models.actions.CallEntityAction import CallEntityAction
from azure.durable_functions.models.actions.CallHttpAction import CallHttpAction
from azure.durable_functions.models.actions.CallSubOrchestratorAction import CallSubOrchestratorAction
from azure.durable_functions.models.actions.CallSubOrchestratorWithRetryAction import (
    CallSubOrchestratorWithRetryAction,
)
from azure.durable_functions.models.actions.ContinueAsNewAction import ContinueAsNewAction
from azure.durable_functions.models.actions.CreateTimerAction import CreateTimerAction
from azure.durable_functions.models.actions.SignalEntityAction import SignalEntityAction
from azure.durable_functions.models.actions.WaitForExternalEventAction import WaitForExternalEventAction
from azure.durable_functions.models.DurableHttpRequest import DurableHttpRequest
from azure.durable_functions.models.FunctionContext import FunctionContext
from azure.durable_functions.models.ReplaySchema import ReplaySchema
from azure.durable_functions.models.utils.type_discovery import (
    activity_output_type,
    sub_orchestrator_output_type,
)

from asynkron_durable import EntityId, OrchestrationContext, Task
from asynkron_durable_azure.function_names import function_name
from asynkron_durable_azure.http_activity import HTTP_ACTIVITY_NAME
from asynkron_durable_azure.payloads import from_plain, to_plain
from asynkron_durable_azure.tasks import (
    AtomicTask,
    AzureTask,
    EntityCallTask,
    RetryTask,
    Start,
    TimerTask,
    WhenAllTask,
    WhenAnyTask,
)

_UUID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_OID, "9e952958-5e33-4daf-827f-2fa12937b875")


class AzureOrchestrationContext:
    """What an Azure-style orchestrator receives as `context`, running on our engine."""

    def __init__(
        self,
        core: OrchestrationContext,
        schema: ReplaySchema = ReplaySchema.V2,
        histories: Sequence[Any] = (),
        version: str | None = None,
        function_context: FunctionContext | None = None,
        input_type: type | None = None,
    ) -> None:
        self._core = core
        self._input_type = input_type
        self._replay_schema = schema
        self._histories = list(histories)
        self._version = version
        self._function_context = function_context or FunctionContext()
        self._actions_v1: list[list[Any]] = []
        self._actions_v2: list[Any] = []
        self._custom_status: Any = None
        self._continue_as_new_flag = False
        self._new_uuid_counter = 0

    # ----- identity, time, input, status ----------------------------------------------------

    @property
    def instance_id(self) -> str:
        """This orchestration instance's id."""
        return self._core.instance_id

    @property
    def parent_instance_id(self) -> str | None:
        """The parent's instance id when this is a sub-orchestration."""
        return self._core.parent_instance_id

    @property
    def is_replaying(self) -> bool:
        """True while the code re-runs past steps from history."""
        return self._core.is_replaying

    @property
    def current_utc_datetime(self) -> datetime.datetime:
        """The deterministic time of the current episode."""
        return self._core.current_utc_datetime

    @property
    def version(self) -> str | None:
        """The version the instance was created with (None: we keep no versions)."""
        return self._version

    @property
    def histories(self) -> list[Any]:
        """The host's history events, where the host gave them (the out-of-proc protocol)."""
        return self._histories

    @property
    def function_context(self) -> FunctionContext:
        """Function-level attributes the host passed along."""
        return self._function_context

    @property
    def custom_status(self) -> Any:
        """The last value given to `set_custom_status`."""
        return self._custom_status

    @property
    def will_continue_as_new(self) -> bool:
        """True once `continue_as_new` was called."""
        return self._continue_as_new_flag

    def get_input(self, expected_type: type | None = None) -> Any:
        """The orchestration input, decoded as the SDK decodes it (into `expected_type`, else the
        trigger's declared `input_type`)."""
        return from_plain(self._core.get_input(), expected_type or self._input_type)

    def set_custom_status(self, status: Any) -> None:
        """Publish a JSON-serialisable status for clients."""
        self._custom_status = status
        self._core.set_custom_status(to_plain(status))

    def new_uuid(self) -> str:
        """A replay-safe UUID, the same the SDK derives from the instance, time and a counter."""
        name = (
            f"{self.instance_id}_{self.current_utc_datetime.strftime(DATETIME_STRING_FORMAT)}"
            f"_{self._new_uuid_counter}"
        )
        self._new_uuid_counter += 1
        return str(uuid.uuid5(_UUID_NAMESPACE, name))

    def new_guid(self) -> uuid.UUID:
        """A replay-safe GUID, as the SDK's `new_guid`."""
        name = f"{self.instance_id}_{self.current_utc_datetime}_{self._new_uuid_counter}"
        self._new_uuid_counter += 1
        return uuid.uuid5(uuid.NAMESPACE_URL, name)

    # ----- scheduling -------------------------------------------------------------------------

    def call_activity(
        self, name: str | Callable[..., Any], input_: Any = None, expected_type: type | None = None
    ) -> AzureTask:
        """Run an activity (by name, or the v2 decorated function)."""
        activity = function_name(name, "activity")
        plain = to_plain(input_)
        task = self._task(
            CallActivityAction(activity, input_), lambda core: core.call_activity(activity, plain)
        )
        task._expected_type = expected_type or activity_output_type(name)
        return task

    def call_activity_with_retry(
        self,
        name: str | Callable[..., Any],
        retry_options: Any,
        input_: Any = None,
        expected_type: type | None = None,
    ) -> AzureTask:
        """Run an activity, retrying failures as `retry_options` (a `df.RetryOptions`) says."""
        activity = function_name(name, "activity")
        plain = to_plain(input_)
        attempt = self._task(
            CallActivityWithRetryAction(activity, retry_options, input_),
            lambda core: core.call_activity(activity, plain),
        )
        attempt._expected_type = expected_type or activity_output_type(name)
        return self._retry(attempt, retry_options)

    def call_sub_orchestrator(
        self,
        name: str | Callable[..., Any],
        input_: Any = None,
        instance_id: str | None = None,
        version: str | None = None,
        expected_type: type | None = None,
    ) -> AzureTask:
        """Start a child orchestration and wait for its output."""
        orchestrator = function_name(name, "orchestrator")
        plain = to_plain(input_)
        task = self._task(
            CallSubOrchestratorAction(orchestrator, input_, instance_id, version),
            lambda core: core.call_sub_orchestrator(orchestrator, plain, instance_id),
        )
        task._expected_type = expected_type or sub_orchestrator_output_type(name)
        return task

    def call_sub_orchestrator_with_retry(
        self,
        name: str | Callable[..., Any],
        retry_options: Any,
        input_: Any = None,
        instance_id: str | None = None,
        version: str | None = None,
        expected_type: type | None = None,
    ) -> AzureTask:
        """`call_sub_orchestrator`, retrying failures as `retry_options` says."""
        orchestrator = function_name(name, "orchestrator")
        plain = to_plain(input_)
        attempt = self._task(
            CallSubOrchestratorWithRetryAction(orchestrator, retry_options, input_, instance_id, version),
            lambda core: core.call_sub_orchestrator(orchestrator, plain, instance_id),
        )
        attempt._expected_type = expected_type or sub_orchestrator_output_type(name)
        return self._retry(attempt, retry_options)

    def call_http(
        self,
        method: str,
        uri: str,
        content: Any = None,
        headers: dict[str, str] | None = None,
        token_source: Any = None,
        is_raw_str: bool = False,
    ) -> AzureTask:
        """A durable HTTP request (the host's built-in HTTP activity, 202 polling included); the
        result is `{"statusCode", "headers", "content"}`. `content` other than a raw string is
        sent as JSON."""
        if is_raw_str and not isinstance(content, str):
            raise TypeError("call_http: is_raw_str=True needs content of type str")
        body = None if content is None else content if is_raw_str else json.dumps(content)
        request = DurableHttpRequest(method, uri, body, headers, token_source)
        payload = request.to_json()
        return self._task(
            CallHttpAction(request), lambda core: core.call_activity(HTTP_ACTIVITY_NAME, payload)
        )

    def create_timer(self, fire_at: datetime.datetime) -> TimerTask:
        """A durable timer firing at `fire_at`; the task has `cancel()`."""
        action = CreateTimerAction(fire_at)
        return TimerTask(self._repr(action), lambda core: core.create_timer(fire_at))

    def wait_for_external_event(self, name: str, expected_type: type | None = None) -> AzureTask:
        """Wait for the event `name` raised on this instance."""
        task = self._task(WaitForExternalEventAction(name), lambda core: core.wait_for_external_event(name))
        task.id = name
        task._expected_type = expected_type
        return task

    def task_all(self, activities: Sequence[AzureTask]) -> AzureTask:
        """Completes with every task's result in order; fails with the first failure."""
        return WhenAllTask(activities, self._is_v2)

    def task_any(self, activities: Sequence[AzureTask]) -> AzureTask:
        """Completes with the first task to finish (the task itself)."""
        return WhenAnyTask(activities, self._is_v2)

    # ----- entities ---------------------------------------------------------------------------

    def call_entity(
        self, entityId: Any, operationName: str, operationInput: Any = None, expected_type: type | None = None
    ) -> AzureTask:
        """Run an entity operation and wait for its result (a `df.EntityId` names the entity)."""
        target = _core_entity_id(entityId)
        plain = to_plain(operationInput)
        task = EntityCallTask(
            self._repr(CallEntityAction(entityId, operationName, operationInput)),
            lambda core: core.call_entity(target, operationName, plain),
        )
        task._expected_type = expected_type
        return task

    def signal_entity(self, entityId: Any, operationName: str, operationInput: Any = None) -> AzureTask:
        """Send an operation to an entity without waiting; sent at once, as in the SDK."""
        action = SignalEntityAction(entityId, operationName, operationInput)
        self._core.signal_entity(_core_entity_id(entityId), operationName, to_plain(operationInput))
        self._add_to_actions(self._repr(action))
        return self._task(action, lambda _core: Task())

    def continue_as_new(self, input_: Any) -> None:
        """Finish this execution and start a fresh one with `input_`."""
        self._add_to_actions(self._repr(ContinueAsNewAction(input_)))
        self._continue_as_new_flag = True
        self._core.continue_as_new(to_plain(input_))

    # ----- for the driver and the protocol ----------------------------------------------------

    @property
    def _is_v2(self) -> bool:
        return bool(self._replay_schema.value >= ReplaySchema.V2.value)

    @property
    def _actions(self) -> list[list[Any]]:
        """The actions so far, in the host's layout: a list per yield (V1) or one flat list (V2+)."""
        return self._actions_v1 if not self._is_v2 else [self._actions_v2]

    def _yielded(self, task: AzureTask) -> Task:
        """The orchestrator yielded `task`: record its action the first time, and start it."""
        if not task._is_scheduled:
            self._add_to_actions(task.action_repr)
        return task._materialize(self._core)

    def _add_to_actions(self, action_repr: Any) -> None:
        if self._continue_as_new_flag:
            return
        if self._is_v2:
            self._actions_v2.append(action_repr)
        else:
            self._actions_v1.append(action_repr)

    def _repr(self, action: Any) -> Any:
        return action if self._is_v2 else [action]

    def _task(self, action: Any, start: Start) -> AtomicTask:
        return AtomicTask(self._repr(action), start)

    def _retry(self, attempt: AtomicTask, retry_options: Any) -> RetryTask:
        return RetryTask(
            attempt,
            retry_options.first_retry_interval_in_milliseconds,
            retry_options.max_number_of_attempts,
            self._is_v2,
            self,
        )

    def _retry_fire_at(self, delay_ms: int) -> datetime.datetime:
        return self.current_utc_datetime + datetime.timedelta(milliseconds=delay_ms)


def _core_entity_id(entity_id: Any) -> EntityId:
    """A `df.EntityId` (name, key) as the core's id."""
    try:
        return EntityId(entity_id.name, entity_id.key)
    except AttributeError:
        raise TypeError(f"expected a df.EntityId, got {entity_id!r}") from None
