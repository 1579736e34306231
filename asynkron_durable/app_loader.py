"""Find the registrations the command line runs: `path/to/file.py:attr` or `package.module:attr`.

The attribute may be a `DurableApp` or a `DurableFunctionRuntime`; without `:attr` the loader looks
for `app`, then `runtime`. Installed packages can teach the loader other kinds of app (entry point
group `asynkron_durable.app_loaders`, e.g. Azure Functions apps); they are asked first. Every way
this can go wrong becomes an `AppLoadError` with a one-line message, because the command line
reports it to a person rather than to a debugger.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import sys
import sysconfig
import traceback
from pathlib import Path
from types import ModuleType

from asynkron_durable.app import DurableApp
from asynkron_durable.errors import DurableError
from asynkron_durable.registry import Registry
from asynkron_durable.worker import DurableFunctionRuntime

APP_LOADERS_GROUP = "asynkron_durable.app_loaders"
"""Entry point group of functions `(spec: str) -> Registry | None`: None means "not my kind of app"."""

_DEFAULT_ATTRIBUTES = ("app", "runtime")
# Where an import error's useful line is not: importlib's frozen frames, the stdlib, installed packages.
_NOT_USER_CODE = ("<", *{sysconfig.get_path(name) for name in ("stdlib", "platstdlib", "purelib", "platlib")})


class AppLoadError(DurableError):
    """The APP argument names no file, no module, no attribute, or an object of the wrong type."""


def load_registry(spec: str) -> Registry:
    """The registry of the app `spec` names: whatever an installed app loader makes of it, else the
    `DurableApp` or `DurableFunctionRuntime` it names."""
    registry = _plugin_registry(spec)
    if registry is not None:
        return registry
    target, separator, attribute = spec.rpartition(":")
    if not separator:
        target, attribute = spec, ""
    if not target:
        raise AppLoadError(f"app {spec!r} names no file or module; use FILE.py[:ATTR] or MODULE[:ATTR]")
    if _is_path(target) and Path(target).is_dir():
        raise AppLoadError(
            f"app {target!r} is a folder that no installed app loader recognises; "
            "use FILE.py[:ATTR] or MODULE[:ATTR]"
        )
    module = load_file(target) if _is_path(target) else _import_module(target)
    names = (attribute,) if attribute else _DEFAULT_ATTRIBUTES
    for name in names:
        if hasattr(module, name):
            return _registry_of(getattr(module, name), f"{target}:{name}")
    if attribute:
        raise AppLoadError(f"{target} has no attribute {attribute!r}")
    raise AppLoadError(f"{target} defines neither 'app' nor 'runtime'; name one as {target}:ATTR")


def _plugin_registry(spec: str) -> Registry | None:
    """The first registry an installed app loader makes of `spec`; the core imports no plugin by name."""
    for entry_point in importlib.metadata.entry_points(group=APP_LOADERS_GROUP):
        try:
            loader = entry_point.load()
        except Exception as exc:
            raise AppLoadError(
                f"app loader {entry_point.name!r} ({entry_point.value}) failed to import: "
                f"{describe_exception(exc)}"
            ) from None
        registry = loader(spec)
        if registry is None:
            continue
        if not isinstance(registry, Registry):
            kind = type(registry).__name__
            raise AppLoadError(f"app loader {entry_point.name!r} returned a {kind}, not a Registry")
        return registry
    return None


def _is_path(target: str) -> bool:
    """A file path, not a dotted module name: a `.py` name, a path with a folder, or a file that
    exists here (`README.md` is not module `README` with attribute `md`)."""
    return target.endswith(".py") or "/" in target or "\\" in target or Path(target).is_file()


def load_file(target: str) -> ModuleType:
    """Execute a Python file as a module, with its directory on `sys.path` so siblings import."""
    path = Path(target).resolve()
    if not path.is_file():
        raise AppLoadError(f"app file {target!r} not found")
    if path.suffix != ".py":
        raise AppLoadError(f"app file {target!r} is not a Python file; use FILE.py[:ATTR] or MODULE[:ATTR]")
    directory = str(path.parent)
    if directory not in sys.path:
        sys.path.insert(0, directory)
    # Registered under its own name so siblings can import it, unless that name is taken (`json.py`).
    name = path.stem if path.stem not in sys.modules else f"_durable_app_{path.stem}"
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
        raise AppLoadError(f"app file {target!r} cannot be loaded as a Python module")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    try:
        module_spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise AppLoadError(f"loading {target} failed: {describe_exception(exc)}") from None
    return module


def _import_module(target: str) -> ModuleType:
    """Import a module by dotted name, looking in the working directory first (as `python -m`)."""
    if "" not in sys.path:
        sys.path.insert(0, "")
    try:
        return importlib.import_module(target)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (target + ".").startswith(exc.name + "."):
            raise AppLoadError(f"no module named {target!r}") from None
        raise AppLoadError(f"importing {target} failed: {describe_exception(exc)}") from None
    except Exception as exc:
        raise AppLoadError(f"importing {target} failed: {describe_exception(exc)}") from None


def describe_exception(exc: BaseException) -> str:
    """`Type: message (file:line)` of where user code raised: enough to find it, in one line.
    A SyntaxError's message already names its file and line."""
    frames = [
        frame
        for frame in traceback.extract_tb(exc.__traceback__)
        if frame.filename != __file__ and not frame.filename.startswith(_NOT_USER_CODE)
    ]
    where = ""
    if frames and not isinstance(exc, SyntaxError):
        where = f" ({Path(frames[-1].filename).name}:{frames[-1].lineno})"
    message = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {message}{where}"


def _registry_of(value: object, label: str) -> Registry:
    if isinstance(value, DurableApp | DurableFunctionRuntime):
        return value.registry
    kind = type(value).__name__
    raise AppLoadError(f"{label} is a {kind}, not a DurableApp or DurableFunctionRuntime")
