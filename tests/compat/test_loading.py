"""Loading Azure Functions apps of both programming models, their activities as core activities,
and the command line's app loader plugin wiring.

Every app is written into tmp_path by the test; the modules it imported and the sys.path entries
it added are forgotten afterwards, so the next app's `function_app` is imported fresh.
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from importlib.metadata import EntryPoint
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from asynkron_durable_azure.activities import core_activity
from asynkron_durable_azure.loading import (
    AzureActivity,
    AzureApp,
    AzureHttpFunction,
    load_azure_app,
    load_azure_registry,
)

from asynkron_durable import DurableFunctionRuntime
from asynkron_durable.app_loader import APP_LOADERS_GROUP, AppLoadError, load_registry
from asynkron_durable.history import RuntimeStatus
from asynkron_durable.registry import Registry

REPO = Path(__file__).resolve().parents[2]

V2_APP = {
    "host.json": '{"version": "2.0"}',
    "function_app.py": """
        import azure.durable_functions as df
        import azure.functions as func

        from shapes import Point
        from starters import bp

        app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)
        app.register_functions(bp)


        @app.orchestration_trigger(context_name="context")
        def chain(context: df.DurableOrchestrationContext):
            greeting = yield context.call_activity("say_hello", context.get_input())
            moved = yield context.call_activity("move", Point(1, 2))
            return [greeting, moved.x, moved.y]


        @app.function_name("say_hello")
        @app.activity_trigger(input_name="city")
        def hello(city: str) -> str:
            return f"Hello {city}"


        @app.activity_trigger(input_name="point")
        async def move(point: Point) -> Point:
            assert isinstance(point, Point), point
            return Point(point.x + 10, point.y + 20)


        @app.activity_trigger(input_name="value")
        def echo(value):
            return [type(value).__name__, value]


        @app.activity_trigger(input_name="name")
        def needs_context(name: str, context) -> str:
            return name


        @app.entity_trigger(context_name="ctx", entity_name="Counter")
        def counter_entity(ctx: df.DurableEntityContext) -> None:
            ctx.set_state(ctx.get_state(lambda: 0) + ctx.get_input())


        @app.timer_trigger(schedule="0 */5 * * * *", arg_name="timer")
        def tick(timer: func.TimerRequest) -> None:
            pass
    """,
    "shapes.py": """
        class Point:
            def __init__(self, x: int, y: int) -> None:
                self.x, self.y = x, y

            @staticmethod
            def to_json(point: "Point") -> dict:
                return {"x": point.x, "y": point.y}

            @staticmethod
            def from_json(data: dict) -> "Point":
                return Point(data["x"], data["y"])
    """,
    "starters.py": """
        import azure.durable_functions as df
        import azure.functions as func

        bp = df.Blueprint()


        @bp.route(route="orchestrators/{name}", methods=["POST"])
        @bp.durable_client_input(client_name="client")
        async def http_start(req: func.HttpRequest, client: df.DurableOrchestrationClient):
            instance_id = await client.start_new(req.route_params["name"])
            return client.create_check_status_response(req, instance_id)


        @bp.route()
        def ping(req: func.HttpRequest) -> str:
            return "pong"
    """,
}

V1_APP = {
    "host.json": '{"version": "2.0"}',
    "shared_code/__init__.py": "",
    "shared_code/greetings.py": """
        def greeting(city: str) -> str:
            return f"Hello {city}"
    """,
    "Chain/function.json": {
        "bindings": [{"name": "context", "type": "orchestrationTrigger", "direction": "in"}]
    },
    "Chain/__init__.py": """
        import azure.durable_functions as df


        def chain(context: df.DurableOrchestrationContext):
            return (yield context.call_activity("SayHello", context.get_input()))


        main = df.Orchestrator.create(chain)
    """,
    "SayHello/function.json": {"bindings": [{"name": "city", "type": "activityTrigger", "direction": "in"}]},
    "SayHello/__init__.py": """
        from ..shared_code.greetings import greeting


        def main(city: str) -> str:
            return greeting(city)
    """,
    "Shout/function.json": {
        "scriptFile": "shout.py",
        "entryPoint": "run",
        "bindings": [{"name": "text", "type": "activityTrigger", "direction": "in"}],
    },
    "Shout/shout.py": """
        from ..shared_code.greetings import greeting


        def run(text: str) -> str:
            return greeting(text).upper()
    """,
    "Counter/function.json": {"bindings": [{"name": "ctx", "type": "entityTrigger", "direction": "in"}]},
    "Counter/__init__.py": """
        import azure.durable_functions as df


        def counter(ctx: df.DurableEntityContext) -> None:
            ctx.set_state(ctx.get_state(lambda: 0) + 1)


        main = df.Entity.create(counter)
    """,
    "HttpStart/function.json": {
        "bindings": [
            {
                "authLevel": "anonymous",
                "name": "req",
                "type": "httpTrigger",
                "direction": "in",
                "route": "orchestrators/{functionName}",
                "methods": ["post"],
            },
            {"name": "$return", "type": "http", "direction": "out"},
            {"name": "starter", "type": "durableClient", "direction": "in"},
        ]
    },
    "HttpStart/__init__.py": """
        import azure.durable_functions as df
        import azure.functions as func


        async def main(req: func.HttpRequest, starter: str) -> func.HttpResponse:
            client = df.DurableOrchestrationClient(starter)
            instance_id = await client.start_new(req.route_params["functionName"])
            return client.create_check_status_response(req, instance_id)
    """,
    "Ping/function.json": {
        "bindings": [
            {"name": "req", "type": "httpTrigger", "direction": "in"},
            {"name": "$return", "type": "http", "direction": "out"},
        ]
    },
    "Ping/__init__.py": """
        def main(req) -> str:
            return "pong"
    """,
}


def write_app(root: Path, files: dict[str, Any]) -> Path:
    """Write `files` (text, dedented, or JSON for dicts) under `root`; return `root`."""
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(content) if isinstance(content, dict) else textwrap.dedent(content).lstrip()
        path.write_text(text)
    return root


def _from(module: ModuleType, root: Path) -> bool:
    where = [getattr(module, "__file__", None), *getattr(module, "__path__", [])]
    return any(place and Path(place).is_relative_to(root) for place in where)


@pytest.fixture(autouse=True)
def forget_imported_apps(tmp_path: Path) -> Iterator[None]:
    path = list(sys.path)
    yield
    sys.path[:] = path
    for name in [name for name, module in list(sys.modules.items()) if _from(module, tmp_path)]:
        del sys.modules[name]


@pytest.fixture
def v2_app(tmp_path: Path) -> Path:
    return write_app(tmp_path / "v2app", V2_APP)


@pytest.fixture
def v1_app(tmp_path: Path) -> Path:
    return write_app(tmp_path / "v1app", V1_APP)


# --- what load_azure_app finds ---


def test_a_v2_app_yields_its_functions_and_its_blueprints_unwrapped_to_the_user_functions(
    v2_app: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = load_azure_app(v2_app)

    assert app.model == "v2"
    assert app.root == v2_app.resolve()
    assert list(app.orchestrators) == ["chain"]
    chain = app.orchestrators["chain"]
    assert inspect.isgeneratorfunction(chain)
    assert (chain.__module__, chain.__name__) == ("function_app", "chain")

    # `@app.function_name` names the function; the trigger's parameter receives the input.
    assert sorted(app.activities) == ["echo", "move", "needs_context", "say_hello"]
    hello = app.activities["say_hello"]
    assert (hello.name, hello.input_name, hello.other_params) == ("say_hello", "city", ())
    assert hello.fn("Oslo") == "Hello Oslo"
    assert app.activities["needs_context"].other_params == ("context",)

    # An entity trigger's `entity_name` is the entity's name, as in the Durable extension.
    assert list(app.entities) == ["Counter"]
    counter = app.entities["Counter"]
    assert counter.__name__ == "counter_entity"
    assert not hasattr(counter, "entity_function")

    start, ping = sorted(app.http_functions, key=lambda function: function.name)
    assert not hasattr(start.fn, "client_function")  # the user's code, not the client-building wrapper
    assert start == AzureHttpFunction(
        name="http_start",
        route="orchestrators/{name}",
        methods=("POST",),
        fn=start.fn,
        request_name="req",
        client_name="client",
        model="v2",
        auth_level="anonymous",
    )
    assert list(inspect.signature(start.fn).parameters) == ["req", "client"]
    assert (ping.route, ping.client_name) == ("ping", None)
    assert set(ping.methods) == {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"}

    # A function of another trigger is left out, and said so.
    assert [record.getMessage() for record in caplog.records] == [
        f"{v2_app.resolve()}: function 'tick' has a timerTrigger, which asynkron-durable does not run"
    ]


def test_the_hosts_auth_level_advice_for_apps_without_http_functions_is_not_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    script = """
        import azure.durable_functions as df

        app = df.DFApp()


        @app.activity_trigger(input_name="name")
        def greet(name: str) -> str:
            return name
    """
    app = load_azure_app(write_app(tmp_path / "app", {"function_app.py": script}))
    assert list(app.activities) == ["greet"]
    assert caplog.records == []


def test_a_v2_app_loads_from_its_function_app_file_too(v2_app: Path) -> None:
    app = load_azure_app(str(v2_app / "function_app.py"))
    assert (app.root, list(app.orchestrators)) == (v2_app.resolve(), ["chain"])


def test_a_v1_app_yields_one_function_per_folder_imported_as_packages_of_the_app(v1_app: Path) -> None:
    app = load_azure_app(v1_app)

    assert (app.model, app.root) == ("v1", v1_app.resolve())
    chain = app.orchestrators["Chain"]
    assert list(app.orchestrators) == ["Chain"]
    assert inspect.isgeneratorfunction(chain)
    assert chain.__name__ == "chain"

    # Folders are imported as `__app__.<folder>`, so `from ..shared_code import ...` works.
    assert sorted(app.activities) == ["SayHello", "Shout"]
    say_hello = app.activities["SayHello"]
    assert (say_hello.fn.__module__, say_hello.input_name) == ("__app__.SayHello", "city")
    assert say_hello.fn("Oslo") == "Hello Oslo"
    # function.json's scriptFile and entryPoint name another file and function.
    shout = app.activities["Shout"]
    assert (shout.fn.__module__, shout.fn.__name__, shout.input_name) == (
        "__app__.Shout.shout",
        "run",
        "text",
    )
    assert shout.fn("Oslo") == "HELLO OSLO"

    assert list(app.entities) == ["Counter"]
    assert app.entities["Counter"].__name__ == "counter"

    start, ping = sorted(app.http_functions, key=lambda function: function.name)
    assert start == AzureHttpFunction(
        name="HttpStart",
        route="orchestrators/{functionName}",
        methods=("POST",),
        fn=start.fn,
        request_name="req",
        client_name="starter",
        model="v1",
        auth_level="anonymous",
    )
    assert start.fn.__module__ == "__app__.HttpStart"
    assert (ping.route, ping.client_name, len(ping.methods)) == ("Ping", None, 7)


# --- what goes wrong, in one line naming the file ---

APP_WITH_ACTIVITY = {
    "host.json": "{}",
    "Act/function.json": {"bindings": [{"name": "x", "type": "activityTrigger", "direction": "in"}]},
}

LOAD_ERRORS: dict[str, tuple[dict[str, Any], str, str]] = {
    "missing path": ({}, "nowhere", "app path '{root}/nowhere' not found"),
    "folder of neither model": (
        {"notes.txt": ""},
        ".",
        "{root} contains neither function_app.py (v2 model) nor host.json (v1 model)",
    ),
    "a file other than function_app.py": (
        {"other.py": ""},
        "other.py",
        "{root}/other.py is not an Azure Functions app: name its folder or its function_app.py",
    ),
    "function_app.py without an app": (
        {"function_app.py": "import azure.functions as func\n"},
        ".",
        "{root}/function_app.py defines no function app (a module-level df.DFApp or func.FunctionApp)",
    ),
    "function_app.py with two apps": (
        {"function_app.py": "import azure.functions as f\na = f.FunctionApp()\nb = f.FunctionApp()\n"},
        ".",
        "{root}/function_app.py defines 2 function apps; the Functions host indexes only one",
    ),
    "error importing function_app.py": (
        {"function_app.py": "total = 1\nshare = total / 0\n"},
        "function_app.py",
        "loading {root}/function_app.py failed: ZeroDivisionError: division by zero (function_app.py:2)",
    ),
    "v2 activity without its input parameter": (
        {
            "function_app.py": """
                import azure.durable_functions as df

                app = df.DFApp()


                @app.activity_trigger(input_name="name")
                def greet(city: str) -> str:
                    return city
            """
        },
        ".",
        "{root}/function_app.py: activity 'greet' has no parameter 'name' for its activityTrigger input",
    ),
    "function.json not JSON": (
        {"host.json": "{}", "Act/function.json": "{bindings", "Act/__init__.py": ""},
        ".",
        "{root}/Act/function.json is not valid JSON: "
        "Expecting property name enclosed in double quotes: line 1 column 2 (char 1)",
    ),
    "function.json without bindings": (
        {"host.json": "{}", "Act/function.json": {"scriptFile": "__init__.py"}, "Act/__init__.py": ""},
        ".",
        "{root}/Act/function.json has no 'bindings' list of objects",
    ),
    "function.json without a trigger": (
        {
            "host.json": "{}",
            "Act/function.json": {"bindings": [{"name": "$return", "type": "http", "direction": "out"}]},
            "Act/__init__.py": "",
        },
        ".",
        "{root}/Act/function.json has no trigger binding",
    ),
    "no main": (
        {**APP_WITH_ACTIVITY, "Act/__init__.py": "def run(x):\n    return x\n"},
        ".",
        "{root}/Act/__init__.py has no function 'main' (the entry point of Act)",
    ),
    "no script": (APP_WITH_ACTIVITY, ".", "{root}/Act/__init__.py not found"),
    "error importing a v1 function": (
        {**APP_WITH_ACTIVITY, "Act/__init__.py": "import not_a_module_anywhere\n"},
        ".",
        "loading {root}/Act/__init__.py failed: ModuleNotFoundError: "
        "No module named 'not_a_module_anywhere' (__init__.py:1)",
    ),
    "v1 orchestrator that is not a handle": (
        {
            "host.json": "{}",
            "Orch/function.json": {"bindings": [{"name": "context", "type": "orchestrationTrigger"}]},
            "Orch/__init__.py": "def main(context):\n    yield None\n",
        },
        ".",
        "{root}/Orch/__init__.py: 'Orch' is not made by df.Orchestrator.create(fn)",
    ),
}


@pytest.mark.parametrize("files, target, message", LOAD_ERRORS.values(), ids=list(LOAD_ERRORS))
def test_each_way_an_app_fails_to_load_is_one_line_naming_the_file(
    tmp_path: Path, files: dict[str, Any], target: str, message: str
) -> None:
    root = write_app(tmp_path / "app", files)
    root.mkdir(exist_ok=True)
    path = root if target == "." else root / target
    with pytest.raises(AppLoadError) as raised:
        load_azure_app(path)
    assert str(raised.value) == message.format(root=root)


# --- activities: input decoded and output encoded the SDK's way ---


@pytest.mark.parametrize("value", [None, 3, 2.5, "text", True, [1, "two"], {"a": {"b": None}}])
def test_an_activity_receives_plain_json_values_as_the_host_passes_them(v2_app: Path, value: Any) -> None:
    echo = core_activity(load_azure_app(v2_app).activities["echo"])
    assert echo(value) == [type(value).__name__, value]


async def test_custom_objects_cross_as_the_sdks_class_module_data_objects(v2_app: Path) -> None:
    move = core_activity(load_azure_app(v2_app).activities["move"])
    assert inspect.iscoroutinefunction(move)  # the core awaits it on the loop, as the host does

    def point(x: int, y: int) -> dict[str, Any]:
        return {"__class__": "Point", "__module__": "shapes", "__data__": {"x": x, "y": y}}

    assert await move(point(1, 2)) == point(11, 22)


def test_the_core_registry_accepts_the_adapter_as_a_one_input_activity(v2_app: Path) -> None:
    app = load_azure_app(v2_app)
    registry = Registry()
    registry.add_activity(core_activity(app.activities["say_hello"]), "say_hello")
    registry.add_activity(core_activity(app.activities["move"]), "move")
    hello, move = registry.activity("say_hello"), registry.activity("move")
    assert (hello.takes_input, hello.is_async, hello.passes_context) == (True, False, False)
    assert (move.takes_input, move.is_async) == (True, True)


def test_activity_failures_say_what_went_wrong(v2_app: Path) -> None:
    app = load_azure_app(v2_app)
    with pytest.raises(TypeError, match=r"activity 'needs_context' needs parameter\(s\) context, bound by"):
        core_activity(app.activities["needs_context"])("Oslo")
    unknown = {"__class__": "Gone", "__module__": "not_loaded_anywhere", "__data__": {}}
    with pytest.raises(
        ValueError, match=r"input of activity 'echo' cannot be decoded: .*'not_loaded_anywhere'"
    ):
        core_activity(app.activities["echo"])(unknown)
    opaque = AzureActivity("opaque", lambda value: object(), "value", ())
    with pytest.raises(ValueError, match=r"output of activity 'opaque' is not JSON-serialisable: .*to_json"):
        core_activity(opaque)(1)


# --- the command line's loader plugin ---


def test_the_entry_point_claims_azure_apps_only(v2_app: Path, tmp_path: Path) -> None:
    assert load_azure_registry(str(tmp_path / "missing")) is None
    assert load_azure_registry(str(REPO / "samples" / "hello_cities.py")) is None
    assert load_azure_registry("hello_cities:app") is None
    assert isinstance(load_azure_registry(str(v2_app)), Registry)


@pytest.mark.parametrize(
    "app_name, spec_file", [("v2_app", None), ("v2_app", "function_app.py"), ("v1_app", None)]
)
def test_load_registry_hands_azure_apps_to_the_installed_loader(
    request: pytest.FixtureRequest, app_name: str, spec_file: str | None
) -> None:
    root: Path = request.getfixturevalue(app_name)
    registry = load_registry(str(root / spec_file if spec_file else root))
    app: AzureApp = load_azure_app(root)
    assert list(registry.orchestrators) == list(app.orchestrators)
    assert set(registry.activities) == {*app.activities, "BuiltIn::HttpActivity"}
    assert list(registry.entities) == ["counter"]  # entity names are lower-cased, as in Azure's ids


def test_native_apps_still_load_and_unknown_folders_are_refused(tmp_path: Path) -> None:
    assert "hello_cities" in load_registry(str(REPO / "samples" / "hello_cities.py")).orchestrators
    (tmp_path / "plain").mkdir()
    with pytest.raises(AppLoadError) as raised:
        load_registry(str(tmp_path / "plain"))
    assert str(raised.value) == (
        f"app '{tmp_path}/plain' is a folder that no installed app loader recognises; "
        "use FILE.py[:ATTR] or MODULE[:ATTR]"
    )


@pytest.mark.parametrize(
    "value, message",
    [
        (
            "not_a_module_anywhere:load",
            "app loader 'odd' (not_a_module_anywhere:load) failed to import: "
            "ModuleNotFoundError: No module named 'not_a_module_anywhere'",
        ),
        ("builtins:str", "app loader 'odd' returned a str, not a Registry"),
    ],
)
def test_a_loader_plugin_that_fails_is_named(
    monkeypatch: pytest.MonkeyPatch, value: str, message: str
) -> None:
    odd = EntryPoint(name="odd", value=value, group=APP_LOADERS_GROUP)
    monkeypatch.setattr("importlib.metadata.entry_points", lambda group: [odd])
    with pytest.raises(AppLoadError) as raised:
        load_registry(str(REPO / "samples" / "hello_cities.py"))
    assert str(raised.value) == message


async def test_a_loaded_v2_app_runs_on_the_core_runtime(v2_app: Path) -> None:
    runtime = DurableFunctionRuntime("memory://", max_poll_interval=0.02)
    runtime.registry.merge(load_registry(str(v2_app)))
    async with runtime:
        instance_id = await runtime.client.start_new("chain", "Tokyo")
        status = await runtime.client.wait_for_completion(instance_id, timeout=30)
    assert status.runtime_status is RuntimeStatus.COMPLETED, status.failure
    assert status.output == ["Hello Tokyo", 11, 22]


def test_the_command_line_runs_an_azure_app_folder(v1_app: Path, tmp_path: Path) -> None:
    command = [sys.executable, "-m", "asynkron_durable.cli", "run", str(v1_app), "Chain"]
    result = subprocess.run(
        [*command, "--input", '"Oslo"', "--store", "memory://"],
        cwd=tmp_path,
        env={name: value for name, value in os.environ.items() if name != "ASYNKRON_DURABLE_STORE"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == "Hello Oslo"
