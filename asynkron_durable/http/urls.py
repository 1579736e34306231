"""The URLs of the management API, as Azure's Durable Functions extension lays them out.

Clients find them in two places: the management payload a start returns (`id`,
`statusQueryGetUri`, ...), and the client binding JSON the SDK's `DurableOrchestrationClient` is
built from (creation URLs, management URL templates with `INSTANCEID`, `rpcBaseUrl`). The same
routes are served under the webhook prefix and under the RPC base.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

WEBHOOK_PREFIX = "/runtime/webhooks/durabletask/"
RPC_PREFIX = "/durabletask/"
INSTANCE_ID_PLACEHOLDER = "INSTANCEID"


@dataclass(frozen=True, slots=True)
class ApiLocation:
    """Where the API is reached: the origin (`http://127.0.0.1:7071`), the task hub it serves and
    the key clients must send (`code` query parameter), if one is configured."""

    origin: str
    task_hub: str = "default"
    api_key: str | None = None

    @property
    def webhook_base(self) -> str:
        return self.origin.rstrip("/") + WEBHOOK_PREFIX

    @property
    def rpc_base(self) -> str:
        """The SDK client's base URL. It cannot send a key (no query string, no header), so with a
        key the key is a path segment: `/durabletask/code/KEY/`."""
        base = self.origin.rstrip("/") + RPC_PREFIX
        return f"{base}code/{quote(self.api_key, safe='')}/" if self.api_key else base

    @property
    def query(self) -> str:
        """The query string every management URL carries (task hub, and the key)."""
        params = {"taskHub": self.task_hub, "connection": "Storage"}
        if self.api_key:
            params["code"] = self.api_key
        return urlencode(params)

    def with_origin(self, origin: str) -> ApiLocation:
        return ApiLocation(origin, self.task_hub, self.api_key)


def management_urls(location: ApiLocation, instance_id: str) -> dict[str, str]:
    """Azure's management payload for one instance (what a start answers with)."""
    base = f"{location.webhook_base}instances/{quote(instance_id, safe='')}"
    q = location.query
    return {
        "id": instance_id,
        "statusQueryGetUri": f"{base}?{q}",
        "sendEventPostUri": f"{base}/raiseEvent/{{eventName}}?{q}",
        "terminatePostUri": f"{base}/terminate?reason={{text}}&{q}",
        "rewindPostUri": f"{base}/rewind?reason={{text}}&{q}",
        "purgeHistoryDeleteUri": f"{base}?{q}",
        "restartPostUri": f"{base}/restart?{q}",
        "suspendPostUri": f"{base}/suspend?reason={{text}}&{q}",
        "resumePostUri": f"{base}/resume?reason={{text}}&{q}",
    }


def client_binding(location: ApiLocation) -> dict[str, Any]:
    """The durable client binding JSON: `df.DurableOrchestrationClient(json.dumps(this))` from the
    unmodified SDK then talks to this API."""
    management = management_urls(location, INSTANCE_ID_PLACEHOLDER)
    create = f"{location.webhook_base}orchestrators/{{functionName}}[/{{instanceId}}]?{location.query}"
    return {
        "taskHubName": location.task_hub,
        "creationUrls": {
            "createNewInstancePostUri": create,
            "createAndWaitOnNewInstancePostUri": create.replace(
                "?", "?timeout={timeoutInSeconds}&pollingInterval={intervalInSeconds}&", 1
            ),
        },
        "managementUrls": management,
        "baseUrl": location.webhook_base,
        "requiredQueryStringParameters": urlencode({"code": location.api_key}) if location.api_key else "",
        "rpcBaseUrl": location.rpc_base,
    }
