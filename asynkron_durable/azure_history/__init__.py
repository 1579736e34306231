"""Our history events as the JSON history the Durable Functions host hands the Python SDK, and back.

The SDK (and code written against it) reads history as the host serialises DurableTask.Core's
events: `EventType` numbers, PascalCase fields, payloads as JSON text. Our stores keep typed
events. `to_azure_history` writes ours in the host's shape (for the SDK, parity tests and anyone
reading our histories with Azure tools); `from_azure_history` reads the host's (or ours) back.

`from_azure_history(to_azure_history(h))` gives `h` back for every history our runtime writes.
The field-by-field mapping, the order rule and what the host's format cannot tell apart are in
docs/azure-history-json.md.
"""

from asynkron_durable.azure_history.entity_messages import entity_request_id
from asynkron_durable.azure_history.failures import UNKNOWN_ERROR_TYPE
from asynkron_durable.azure_history.reader import from_azure_history
from asynkron_durable.azure_history.writer import to_azure_history

__all__ = ["UNKNOWN_ERROR_TYPE", "entity_request_id", "from_azure_history", "to_azure_history"]
