"""asynkron-durable: self-hosted durable functions for Python on SQLite or PostgreSQL."""

from asynkron_durable.app import DurableApp
from asynkron_durable.client import OrchestrationClient, OrchestrationStatus, StatusPage
from asynkron_durable.engine import (
    CriticalSection,
    OrchestrationContext,
    OrchestrationExecutor,
    ReplayResult,
    RetryOptions,
    Task,
    TimerTask,
    replay_history,
)
from asynkron_durable.entities import (
    EntityContext,
    EntityId,
    EntityMetadata,
    EntityPage,
    EntityStateResponse,
    current_entity,
)
from asynkron_durable.errors import (
    DurableError,
    EventTimeoutError,
    InstanceAlreadyExists,
    InstanceNotFound,
    InvalidOperation,
    LeaseLost,
    NonDeterminismError,
    OrchestrationTimeout,
    SerializationError,
    StoreError,
    TaskFailedError,
    UnknownFunction,
)
from asynkron_durable.history import FailureDetails, HistoryEvent, InstanceRecord, RuntimeStatus
from asynkron_durable.registry import ActivityContext
from asynkron_durable.stores import (
    InMemoryStateStore,
    InstanceFilter,
    SqliteStateStore,
    StateStore,
    store_from_url,
)
from asynkron_durable.stores.postgres import ConcurrentPostgreSqlStateStore, PostgresStateStore
from asynkron_durable.stores.sqlite import ConcurrentSqliteStateStore
from asynkron_durable.worker import ConcurrentDurableFunctionRuntime, DurableFunctionRuntime

__all__ = [
    "ActivityContext",
    "ConcurrentDurableFunctionRuntime",
    "ConcurrentPostgreSqlStateStore",
    "ConcurrentSqliteStateStore",
    "CriticalSection",
    "DurableApp",
    "DurableError",
    "DurableFunctionRuntime",
    "EntityContext",
    "EntityId",
    "EntityMetadata",
    "EntityPage",
    "EntityStateResponse",
    "EventTimeoutError",
    "FailureDetails",
    "HistoryEvent",
    "InMemoryStateStore",
    "InstanceAlreadyExists",
    "InstanceFilter",
    "InstanceNotFound",
    "InstanceRecord",
    "InvalidOperation",
    "LeaseLost",
    "NonDeterminismError",
    "OrchestrationClient",
    "OrchestrationContext",
    "OrchestrationExecutor",
    "OrchestrationStatus",
    "OrchestrationTimeout",
    "PostgresStateStore",
    "ReplayResult",
    "RetryOptions",
    "RuntimeStatus",
    "SerializationError",
    "SqliteStateStore",
    "StateStore",
    "StatusPage",
    "StoreError",
    "Task",
    "TaskFailedError",
    "TimerTask",
    "UnknownFunction",
    "current_entity",
    "replay_history",
    "store_from_url",
]
