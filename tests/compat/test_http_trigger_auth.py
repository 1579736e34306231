"""With an API key configured, an app's HTTP functions need it unless they are anonymous (Azure's
`authLevel`), and a failing function answers 500 without telling the caller why."""

from __future__ import annotations

import azure.functions as func
import httpx
import pytest
from asynkron_durable_azure.http_triggers import http_function_routes
from asynkron_durable_azure.loading import AzureHttpFunction
from starlette.applications import Starlette

from asynkron_durable.http.urls import ApiLocation

KEY = "k3y"


def hello(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(f"hello {req.route_params['name']}")


def broken(req: func.HttpRequest) -> func.HttpResponse:
    raise RuntimeError("secret detail: registered orchestrators are x, y")


def function(name: str, fn: object, auth_level: str) -> AzureHttpFunction:
    return AzureHttpFunction(
        name=name,
        route=f"{name}/{{name}}",
        methods=("GET",),
        fn=fn,  # type: ignore[arg-type]
        request_name="req",
        client_name=None,
        model="v2",
        auth_level=auth_level,
    )


def client(api_key: str | None) -> httpx.AsyncClient:
    functions = [
        function("open", hello, "anonymous"),
        function("closed", hello, "function"),
        function("boom", broken, "anonymous"),
    ]
    app = Starlette(routes=http_function_routes(functions, ApiLocation("http://testserver", api_key=api_key)))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://testserver")


@pytest.mark.parametrize(
    ("path", "headers", "status"),
    [
        ("/api/open/ada", {}, 200),
        ("/api/closed/ada", {}, 401),
        ("/api/closed/ada?code=wrong", {}, 401),
        ("/api/closed/ada?code=k3y", {}, 200),
        ("/api/closed/ada", {"x-functions-key": KEY}, 200),
    ],
)
async def test_function_level_functions_need_the_key(path: str, headers: dict[str, str], status: int) -> None:
    async with client(KEY) as http:
        response = await http.get(path, headers=headers)
    assert response.status_code == status
    if status == 200:
        assert response.text == "hello ada"


async def test_without_a_key_configured_every_function_is_open() -> None:
    async with client(None) as http:
        assert (await http.get("/api/closed/ada")).status_code == 200


async def test_a_failing_function_is_500_without_its_details() -> None:
    async with client(None) as http:
        response = await http.get("/api/boom/ada")
    assert response.status_code == 500
    assert "secret detail" not in response.text
    assert "incident" in response.json()["error"]
