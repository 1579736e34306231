"""The OpenAPI 3.0 document of the management API (served at `openapi.json`), written out by hand
so it says exactly what the handlers answer: tools and the schema fuzz test read it."""

from __future__ import annotations

from typing import Any

from asynkron_durable.history import RuntimeStatus
from asynkron_durable.http.urls import ApiLocation, management_urls

_ERROR = {"$ref": "#/components/schemas/Error"}
_JSON_ANY: dict[str, Any] = {}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    described = {
        400: "Malformed request",
        401: "Missing or wrong API key",
        404: "No such instance, entity or entity function",
        409: "An instance with this id is still running",
        410: "The instance is in a state that does not allow this (finished; rewind: not Failed)",
        413: "Request body too large",
    }
    return {str(code): _json(_ERROR, described[code]) for code in codes}


def _path(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string"},
    }


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}


_BOOL = {"type": "string", "enum": ["true", "false"]}
_DEAD_LETTER = {"$ref": "#/components/schemas/DeadLetter"}
_WORKER = {"$ref": "#/components/schemas/Worker"}
_POLL = {
    "Location": {"description": "The status URL", "required": True, "schema": {"type": "string"}},
    "Retry-After": {"description": "Seconds to wait before polling", "schema": {"type": "string"}},
}
_INSTANCE = _path("instanceId", "The orchestration instance id")
_REASON = _query("reason", {"type": "string"}, "Why (kept in history)")
_FILTERS = [
    _query("createdTimeFrom", {"type": "string", "format": "date-time"}, "Created at or after"),
    _query("createdTimeTo", {"type": "string", "format": "date-time"}, "Created at or before"),
    _query(
        "runtimeStatus",
        {"type": "string", "enum": [s.value for s in RuntimeStatus]},
        "Runtime status (comma-separated list allowed)",
    ),
    _query("instanceIdPrefix", {"type": "string"}, "Instance id prefix"),
]
_TOKEN = {
    "name": "x-ms-continuation-token",
    "in": "header",
    "required": False,
    "description": "Continue a listing where the previous page ended (that page's response header)",
    "schema": {"type": "string"},
}
_NEXT_PAGE = {
    "x-ms-continuation-token": {
        "description": "Present when there are more: send it back for the next page",
        "schema": {"type": "string"},
    }
}
_ENTITY = {
    "type": "object",
    "required": ["entityId", "lastOperationTime"],
    "properties": {
        "entityId": {
            "type": "object",
            "required": ["name", "key"],
            "properties": {"name": {"type": "string"}, "key": {"type": "string"}},
        },
        "lastOperationTime": {"type": "string"},
        "state": _JSON_ANY,
    },
}
_BODY = {"required": False, "content": {"application/json": {"schema": _JSON_ANY}}}


def _control(summary: str) -> dict[str, Any]:
    return {
        "post": {
            "summary": summary,
            "parameters": [_INSTANCE, _REASON],
            "responses": {"202": {"description": "Accepted"}, **_errors(400, 401, 404, 410, 413)},
        }
    }


def _paths() -> dict[str, Any]:
    payload = {
        **_json({"$ref": "#/components/schemas/ManagementPayload"}, "Started; where to manage it"),
        "headers": _POLL,
    }
    status = {"$ref": "#/components/schemas/Status"}
    entities: dict[str, Any] = {
        "summary": "List entities (with a name: of that entity function)",
        "parameters": [
            _query("top", {"type": "integer", "minimum": 1}, "Page size (at most 500)"),
            _query("fetchState", _BOOL, "Include state"),
            _TOKEN,
        ],
        "responses": {
            "200": {**_json({"type": "array", "items": _ENTITY}, "Entities"), "headers": _NEXT_PAGE},
            **_errors(400, 401),
        },
    }
    start = {
        "summary": "Start an orchestration",
        "requestBody": _BODY,
        "responses": {"202": payload, **_errors(400, 401, 409, 413)},
    }
    return {
        "orchestrators/{functionName}": {
            "post": {**start, "parameters": [_path("functionName", "Orchestrator name")]}
        },
        "orchestrators/{functionName}/{instanceId}": {
            "post": {**start, "parameters": [_path("functionName", "Orchestrator name"), _INSTANCE]}
        },
        "instances": {
            "get": {
                "summary": "Query instances",
                "parameters": [
                    *_FILTERS,
                    _query("top", {"type": "integer", "minimum": 1}, "At most this many (then paged)"),
                    _query("showInput", _BOOL, "Include inputs"),
                    _TOKEN,
                ],
                "responses": {
                    "200": {
                        **_json({"type": "array", "items": status}, "Instances"),
                        "headers": _NEXT_PAGE,
                    },
                    **_errors(400, 401),
                },
            },
            "delete": {
                "summary": "Purge instances matching a filter",
                "parameters": _FILTERS,
                "responses": {
                    "200": _json({"$ref": "#/components/schemas/Purged"}, "Purged"),
                    **_errors(400, 401, 404),
                },
            },
        },
        "instances/{instanceId}": {
            "get": {
                "summary": "Instance status",
                "parameters": [
                    _INSTANCE,
                    _query("showHistory", _BOOL, "Include history"),
                    _query("showHistoryOutput", _BOOL, "Include results in history"),
                    _query("showInput", _BOOL, "Include the input"),
                    _query("returnInternalServerErrorOnFailure", _BOOL, "Answer 500 for a Failed instance"),
                    _query(
                        "timeout",
                        {"type": "integer", "minimum": 1, "maximum": 300},
                        "Hold the request until the instance finishes or this many seconds pass",
                    ),
                ],
                "responses": {
                    "200": _json(status, "Completed, failed or terminated"),
                    "202": {**_json(status, "Still running"), "headers": _POLL},
                    "500": _json(status, "Failed (only with returnInternalServerErrorOnFailure=true)"),
                    **_errors(400, 401, 404),
                },
            },
            "delete": {
                "summary": "Purge one instance",
                "parameters": [_INSTANCE],
                "responses": {
                    "200": _json({"$ref": "#/components/schemas/Purged"}, "Purged"),
                    **_errors(400, 401, 404, 410),
                },
            },
        },
        "instances/{instanceId}/raiseEvent/{eventName}": {
            "post": {
                "summary": "Raise an event",
                "parameters": [_INSTANCE, _path("eventName", "Event name")],
                "requestBody": _BODY,
                "responses": {"202": {"description": "Accepted"}, **_errors(400, 401, 404, 410, 413)},
            }
        },
        "instances/{instanceId}/terminate": _control("Terminate"),
        "instances/{instanceId}/suspend": _control("Suspend"),
        "instances/{instanceId}/resume": _control("Resume"),
        "instances/{instanceId}/rewind": _control("Rewind a failed instance"),
        "instances/{instanceId}/restart": {
            "post": {
                "summary": "Restart with the same input",
                "parameters": [_INSTANCE, _query("restartWithNewInstanceId", _BOOL, "New instance id")],
                "responses": {"202": payload, **_errors(400, 401, 404, 410, 413)},
            }
        },
        "deadletters": {
            "get": {
                "summary": "List messages set aside because they could not be read (newest first)",
                "parameters": [
                    _query("instanceId", {"type": "string"}, "Only this instance's"),
                    _query("top", {"type": "integer", "minimum": 1}, "At most this many (default 100)"),
                ],
                "responses": {
                    "200": _json(
                        {"type": "array", "items": _DEAD_LETTER},
                        "The messages",
                    ),
                    **_errors(400, 401),
                },
            }
        },
        "workers": {
            "get": {
                "summary": "List the workers registered in the store and what they run",
                "responses": {
                    "200": _json({"type": "array", "items": _WORKER}, "The workers"),
                    **_errors(401),
                },
            }
        },
        "entities": {"get": entities},
        "entities/{entityName}": {
            "get": {**entities, "parameters": [_path("entityName", "Entity name"), *entities["parameters"]]}
        },
        "entities/{entityName}/{entityKey}": {
            "get": {
                "summary": "Read an entity's state",
                "parameters": [_path("entityName", "Entity name"), _path("entityKey", "Entity key")],
                "responses": {"200": _json(_JSON_ANY, "The state"), **_errors(400, 401, 404)},
            },
            "post": {
                "summary": "Signal an entity",
                "parameters": [
                    _path("entityName", "Entity name"),
                    _path("entityKey", "Entity key"),
                    _query("op", {"type": "string"}, "Operation name"),
                ],
                "requestBody": _BODY,
                "responses": {"202": {"description": "Accepted"}, **_errors(400, 401, 404, 413)},
            },
        },
    }


def _with_route_not_found(spec: dict[str, Any]) -> dict[str, Any]:
    """Any request can miss every route: a path segment holding an (encoded) `/` or a line break
    matches none, and that is a 404 too."""
    for operation in spec.values():
        operation["responses"].setdefault("404", _json(_ERROR, "No such route"))
    return spec


def openapi_document(location: ApiLocation) -> dict[str, Any]:
    """The document for the API served at `location` (paths under the webhook prefix)."""
    return {
        "openapi": "3.0.3",
        "info": {"title": "asynkron-durable management API", "version": "1"},
        "servers": [{"url": location.webhook_base.rstrip("/")}],
        "paths": {f"/{path}": _with_route_not_found(spec) for path, spec in _paths().items()},
        "components": {
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {"error": {"type": "string"}, "ExceptionMessage": {"type": "string"}},
                },
                "Purged": {
                    "type": "object",
                    "required": ["instancesDeleted"],
                    "properties": {"instancesDeleted": {"type": "integer", "minimum": 0}},
                },
                "ManagementPayload": {
                    "type": "object",
                    "required": ["id", "statusQueryGetUri"],
                    "properties": {key: {"type": "string"} for key in management_urls(location, "id")},
                },
                "Status": {
                    "type": "object",
                    "required": ["name", "instanceId", "runtimeStatus", "createdTime", "lastUpdatedTime"],
                    "properties": {
                        "name": {"type": "string"},
                        "instanceId": {"type": "string"},
                        "runtimeStatus": {"type": "string", "enum": [s.value for s in RuntimeStatus]},
                        "input": _JSON_ANY,
                        "customStatus": _JSON_ANY,
                        "output": _JSON_ANY,
                        "createdTime": {"type": "string"},
                        "lastUpdatedTime": {"type": "string"},
                        "historyEvents": {"type": "array", "items": {"type": "object"}, "nullable": True},
                        "unreadable": {"type": "string"},
                        "deadLetters": {"type": "integer", "minimum": 1},
                        "waiting": {"type": "string"},
                    },
                },
                "Worker": {
                    "type": "object",
                    "required": ["workerId", "host", "pid", "startedTime", "lastHeartbeatTime"],
                    "properties": {
                        "workerId": {"type": "string"},
                        "host": {"type": "string"},
                        "pid": {"type": "integer"},
                        "version": {"type": "string"},
                        "startedTime": {"type": "string"},
                        "lastHeartbeatTime": {"type": "string"},
                        "secondsSinceHeartbeat": {"type": "number"},
                        "orchestrationsAndEntities": {"type": "array", "items": {"type": "string"}},
                        "activities": {"type": "array", "items": {"type": "string"}},
                    },
                },
                "DeadLetter": {
                    "type": "object",
                    "required": ["messageId", "instanceId", "error", "deadTime", "message"],
                    "properties": {
                        "messageId": {"type": "integer"},
                        "instanceId": {"type": "string"},
                        "error": {"type": "string"},
                        "deadTime": {"type": "string"},
                        "message": {"type": "string"},
                    },
                },
            }
        },
    }
