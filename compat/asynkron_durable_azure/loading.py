"""Load an Azure Functions Python app folder the way the Functions host indexes it.

v2 model: `function_app.py` defines one `df.DFApp` (or `func.FunctionApp`), blueprints registered
on it; its functions and bindings come from `app.get_functions()`. v1 model: the folder has a
`host.json` and one sub-folder per function, a `function.json` naming the bindings beside the
`__init__.py` that defines `main`; the host imports each folder as the package `__app__.<folder>`,
so functions share code with `from ..shared import x`. Both models end up as one `AzureApp`: the
user functions by kind, unwrapped from the SDK's handles.

The azure packages are imported only once `spec` is known to be an Azure app: this module is
imported for every app the command line loads, and `azure.durable_functions` is slow to import and
inspects the working directory.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import inspect
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from asynkron_durable.app_loader import AppLoadError, describe_exception, load_file
from asynkron_durable.registry import Registry

V2_SCRIPT = "function_app.py"
HOST_JSON = "host.json"
FUNCTION_JSON = "function.json"
_V1_PACKAGE = "__app__"  # the package the Functions host imports v1 function folders under
_CLIENT_BINDINGS = ("durableClient", "orchestrationClient")  # the second is the v1 model's old name

Model = Literal["v1", "v2"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AzureActivity:
    """An activity function: the host binds its input to the trigger's parameter, by name.

    `other_params`: required parameters besides the input, which the host would fill from other
    bindings (a `context`, a blob...) and we cannot."""

    name: str
    fn: Callable[..., Any]
    input_name: str
    other_params: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class AzureHttpFunction:
    """An HTTP-triggered function, to be served on `route` (a template such as `orchestrators/
    {functionName}`, below the host's `api/` prefix) for `methods`.

    `fn` is the user's function: in the v2 model it takes the durable client as an object, in the
    v1 model as the binding's JSON string (the user builds `df.DurableOrchestrationClient` from it).
    """

    name: str
    route: str
    methods: tuple[str, ...]
    fn: Callable[..., Any]
    request_name: str
    client_name: str | None
    model: Model
    auth_level: str = "function"
    """`anonymous`, `function` or `admin` (Azure's default is `function`): with an API key
    configured, only anonymous functions are served without it."""


@dataclass(frozen=True)
class AzureApp:
    """The functions of an Azure app by kind and name (orchestrator, activity and entity names are
    the ones the Durable extension registers). Orchestrators and entities are the user's functions
    of the SDK-shaped context, not the SDK's handles."""

    root: Path
    model: Model
    orchestrators: dict[str, Callable[..., Any]]
    activities: dict[str, AzureActivity]
    entities: dict[str, Callable[..., Any]]
    http_functions: list[AzureHttpFunction]
    orchestrator_input_types: dict[str, type] = field(default_factory=dict)
    """`@app.orchestration_trigger(input_type=...)` by orchestrator: what `get_input()` decodes into."""
    task_hub: str | None = None
    """host.json's `extensions.durableTask.hubName` (a `%SETTING%` read from the environment)."""


@dataclass(frozen=True, slots=True)
class _Declared:
    """A function as either model declares it: its bindings as function.json has them."""

    name: str
    source: Path  # the file that declares it, for messages
    trigger: dict[str, Any]
    bindings: list[dict[str, Any]]
    fn: Callable[..., Any]


def load_azure_registry(spec: str) -> Registry | None:
    """The `asynkron_durable.app_loaders` entry point: the registry of the Azure app `spec` names,
    or None when `spec` is no Azure app (another loader may know it)."""
    if locate_app(Path(spec)) is None:
        return None
    from asynkron_durable_azure.registration import azure_registry  # it imports this module

    return azure_registry(entry_point_app(spec))


_ENTRY_POINT_APPS: dict[Path, AzureApp] = {}


def entry_point_app(spec: str) -> AzureApp:
    """The app the entry points load, imported once per process: `serve` asks for its registry and
    for its HTTP routes, and both must see the same modules (and module-level state)."""
    key = Path(spec).resolve()
    if key not in _ENTRY_POINT_APPS:
        _ENTRY_POINT_APPS[key] = load_azure_app(spec)
    return _ENTRY_POINT_APPS[key]


def load_azure_app(path: str | Path) -> AzureApp:
    """Import the app at `path` (an app folder, or its function_app.py) and collect its functions."""
    path = Path(path)
    if not path.exists():
        raise AppLoadError(f"app path {str(path)!r} not found")
    located = locate_app(path)
    if located is None:
        if path.is_dir():
            raise AppLoadError(f"{path} contains neither {V2_SCRIPT} (v2 model) nor {HOST_JSON} (v1 model)")
        raise AppLoadError(f"{path} is not an Azure Functions app: name its folder or its {V2_SCRIPT}")
    model, target = located
    importlib.invalidate_caches()  # the app's files may be newer than the import system's view
    declared = _declared_v2(target) if model == "v2" else _declared_v1(target)
    return _collect(target.parent.resolve() if model == "v2" else target.resolve(), model, declared)


def hub_name(root: Path) -> str | None:
    """The task hub host.json at `root` names (`extensions.durableTask.hubName`), if any; a
    `%SETTING%` reference is read from the environment, as the host reads app settings."""
    try:
        host = json.loads((root / HOST_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    durable = host.get("extensions", {}).get("durableTask", {}) if isinstance(host, dict) else {}
    name = durable.get("hubName") if isinstance(durable, dict) else None
    if not isinstance(name, str) or not name:
        return None
    if len(name) > 2 and name.startswith("%") and name.endswith("%"):
        return os.environ.get(name[1:-1]) or None
    return name


def locate_app(path: Path) -> tuple[Model, Path] | None:
    """Which model `path` uses, and the v2 script or the v1 folder; None if it is no Azure app.
    A v2 app has a host.json too: function_app.py decides, as it does for the host."""
    if path.is_file():
        return ("v2", path) if path.name == V2_SCRIPT else None
    if (path / V2_SCRIPT).is_file():
        return "v2", path / V2_SCRIPT
    if (path / HOST_JSON).is_file():
        return "v1", path
    return None


def _declared_v2(script: Path) -> list[_Declared]:
    """Import function_app.py (its folder on sys.path) and list the functions of its app object."""
    from azure.functions import FunctionRegister

    module = load_file(str(script))
    apps = {id(value): value for value in vars(module).values() if isinstance(value, FunctionRegister)}
    if not apps:
        raise AppLoadError(f"{script} defines no function app (a module-level df.DFApp or func.FunctionApp)")
    if len(apps) > 1:
        raise AppLoadError(f"{script} defines {len(apps)} function apps; the Functions host indexes only one")
    (app,) = apps.values()
    try:
        with _without_auth_level_notice():
            functions = app.get_functions()
    except ValueError as exc:  # no trigger, two functions of one name
        raise AppLoadError(f"{script}: {' '.join(str(exc).split())}") from None
    declared = []
    for function in functions:
        bindings: list[dict[str, Any]] = json.loads(function.get_function_json())["bindings"]
        name = function.get_function_name() or function.get_user_function().__name__
        trigger = _trigger(bindings, f"{script}: function {name!r}")
        declared.append(_Declared(name, script, trigger, bindings, function.get_user_function()))
    return declared


@contextmanager
def _without_auth_level_notice() -> Iterator[None]:
    """`get_functions()` logs on the root logger that an app without HTTP functions ignores its
    auth level: advice for Azure deployments, noise on our command line."""

    def keep(record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Auth level is not applied")

    root = logging.getLogger()
    root.addFilter(keep)
    try:
        yield
    finally:
        root.removeFilter(keep)


def _declared_v1(folder: Path) -> list[_Declared]:
    """Each sub-folder with a function.json is a function named after the folder."""
    root = folder.resolve()
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))  # as the host does: `import shared_code` works too
    _install_v1_package(root)
    return [
        _declared_v1_function(root, function_dir)
        for function_dir in sorted(folder.iterdir())
        if (function_dir / FUNCTION_JSON).is_file()
    ]


def _install_v1_package(root: Path) -> None:
    """The `__app__` namespace package over the app folder (replacing one over another app's)."""
    current = sys.modules.get(_V1_PACKAGE)
    if current is not None and list(getattr(current, "__path__", [])) == [str(root)]:
        return
    for name in [name for name in sys.modules if name.partition(".")[0] == _V1_PACKAGE]:
        del sys.modules[name]
    spec = importlib.machinery.ModuleSpec(_V1_PACKAGE, None, is_package=True)
    spec.submodule_search_locations = [str(root)]
    sys.modules[_V1_PACKAGE] = importlib.util.module_from_spec(spec)


def _declared_v1_function(root: Path, function_dir: Path) -> _Declared:
    config_path = function_dir / FUNCTION_JSON
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError both are
        raise AppLoadError(f"{config_path} is not valid JSON: {exc}") from None
    bindings = config.get("bindings") if isinstance(config, dict) else None
    if not isinstance(bindings, list) or not all(isinstance(binding, dict) for binding in bindings):
        raise AppLoadError(f"{config_path} has no 'bindings' list of objects")
    trigger = _trigger(bindings, str(config_path))
    script = function_dir / str(config.get("scriptFile") or "__init__.py")
    entry_point = str(config.get("entryPoint") or "main")
    module = _import_v1_script(root, script)
    fn = getattr(module, entry_point, None)
    if not callable(fn):
        raise AppLoadError(
            f"{script} has no function {entry_point!r} (the entry point of {function_dir.name})"
        )
    return _Declared(function_dir.name, script, trigger, bindings, fn)


def _import_v1_script(root: Path, script: Path) -> Any:
    """Import `script` as the host does: `<folder>/__init__.py` as the package `__app__.<folder>`,
    another file as a module of it."""
    if not script.is_file():
        raise AppLoadError(f"{script} not found")
    try:
        parts = script.resolve().with_suffix("").relative_to(root).parts
    except ValueError:
        raise AppLoadError(f"{script} lies outside the app folder {root}") from None
    if script.suffix != ".py":
        raise AppLoadError(f"{script} is not a Python file")
    if parts[-1] == "__init__":
        parts = parts[:-1]
    try:
        return importlib.import_module(".".join((_V1_PACKAGE, *parts)))
    except Exception as exc:
        raise AppLoadError(f"loading {script} failed: {describe_exception(exc)}") from None


def _trigger(bindings: list[dict[str, Any]], where: str) -> dict[str, Any]:
    """The function's one trigger binding (binding types of triggers end in `Trigger`)."""
    triggers = [binding for binding in bindings if str(binding.get("type", "")).endswith("Trigger")]
    if not triggers:
        raise AppLoadError(f"{where} has no trigger binding")
    if len(triggers) > 1:
        raise AppLoadError(f"{where} has {len(triggers)} trigger bindings; a function has exactly one")
    if not isinstance(triggers[0].get("name"), str):
        raise AppLoadError(f"{where}: its {triggers[0]['type']} binding has no 'name'")
    return triggers[0]


def _collect(root: Path, model: Model, declared: list[_Declared]) -> AzureApp:
    """Sort the functions by trigger. A durable trigger's own name (`orchestration`, `activity`,
    `entityName`) overrides the function name, as in the Durable extension."""
    from asynkron_durable_azure.orchestration import declared_input_type  # imports the SDK

    app = AzureApp(
        root, model, orchestrators={}, activities={}, entities={}, http_functions=[], task_hub=hub_name(root)
    )
    for function in declared:
        trigger = function.trigger
        kind = trigger["type"]
        if kind == "orchestrationTrigger":
            name = trigger.get("orchestration") or function.name
            app.orchestrators[name] = _inner(function, "orchestrator_function", "df.Orchestrator.create")
            input_type = declared_input_type(function.fn)
            if input_type is not None:
                app.orchestrator_input_types[name] = input_type
        elif kind == "activityTrigger":
            name = trigger.get("activity") or function.name
            app.activities[name] = _activity(function, name)
        elif kind == "entityTrigger":
            name = trigger.get("entityName") or function.name
            app.entities[name] = _inner(function, "entity_function", "df.Entity.create")
        elif kind == "httpTrigger":
            app.http_functions.append(_http_function(function, model))
        else:
            _log.warning(
                "%s: function %r has a %s, which asynkron-durable does not run", root, function.name, kind
            )
    return app


def _inner(function: _Declared, attribute: str, factory: str) -> Callable[..., Any]:
    """The user's function inside the handle the SDK's `factory` made (v2 decorators make them too)."""
    inner: object = getattr(function.fn, attribute, None)
    if not callable(inner):
        raise AppLoadError(f"{function.source}: {function.name!r} is not made by {factory}(fn)")
    return inner


def _user_code(fn: Callable[..., Any]) -> Callable[..., Any]:
    """`fn` without the v2 `durable_client_input` wrapper, which builds the client from its JSON."""
    inner: object = getattr(fn, "client_function", None)
    if callable(inner):
        return inner
    return fn


def _activity(function: _Declared, name: str) -> AzureActivity:
    fn = _user_code(function.fn)
    input_name: str = function.trigger["name"]
    parameters = inspect.signature(fn).parameters
    takes_any_keyword = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    if input_name not in parameters and not takes_any_keyword:
        raise AppLoadError(
            f"{function.source}: activity {name!r} has no parameter {input_name!r} "
            "for its activityTrigger input"
        )
    other_params = tuple(
        parameter.name
        for parameter in parameters.values()
        if parameter.name != input_name
        and parameter.default is inspect.Parameter.empty
        and parameter.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    )
    return AzureActivity(name, fn, input_name, other_params)


def _http_function(function: _Declared, model: Model) -> AzureHttpFunction:
    from azure.functions.decorators.http import HttpMethod

    trigger = function.trigger
    methods = trigger.get("methods") or [method.value for method in HttpMethod]
    client_name = next(
        (binding["name"] for binding in function.bindings if binding.get("type") in _CLIENT_BINDINGS),
        None,
    )
    return AzureHttpFunction(
        name=function.name,
        route=str(trigger.get("route") or function.name),
        methods=tuple(str(method).upper() for method in methods),
        fn=_user_code(function.fn),
        request_name=trigger["name"],
        client_name=client_name,
        model=model,
        auth_level=str(trigger.get("authLevel") or "function").lower(),
    )
