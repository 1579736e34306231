"""`dbos` and `limit`: the same chain on DBOS Transact (`bench/dbos_chain.py`) and a plain-SQL
ceiling (`bench/limit.py`). Imported only when asked for, so neither is needed for other modes."""

from __future__ import annotations

import importlib
from typing import Any

from bench import cpu
from bench.results import show
from bench.stores import fresh_store


def optional_function(module: str, name: str) -> Any:
    """`name` from `module`, which needs the `bench` extra: a clear exit naming it when missing."""
    try:
        return getattr(importlib.import_module(module), name)
    except ImportError as exc:
        raise SystemExit(
            f"{module} is not available ({exc}); install the extra: pip install -e '.[bench]'"
        ) from None


async def run_dbos(store_url: str, instances: int = 2000, workers_count: int = 1) -> dict[str, Any]:
    run = optional_function("bench.dbos_chain", "run_dbos")
    async with fresh_store(store_url) as store:
        figures: dict[str, Any] = dict(await run(store.url, instances, workers_count))
    figures.setdefault("instances", instances)
    figures.setdefault("workers", workers_count)
    print(
        f"dbos on {store.kind}: {instances} x 5-step chains on DBOS Transact, "
        f"worker_concurrency {workers_count}"
    )
    _show(figures)
    return figures


async def run_limit(store_url: str, instances: int = 2000, batch: int = 200) -> dict[str, Any]:
    run = optional_function("bench.limit", "run_limit")
    async with fresh_store(store_url) as store:
        figures: dict[str, Any] = dict(await run(store.url, instances, batch))
    figures.setdefault("instances", instances)
    figures.setdefault("batch", batch)
    print(f"limit on {store.kind}: {instances} x 5-step chains as plain SQL, batches of {batch}")
    _show(figures)
    return figures


def _show(figures: dict[str, Any]) -> None:
    show("orchestrations/s", figures["orchestrations_per_s"], "/s")
    show("steps/s", figures["steps_per_s"], "/s")
    for key in ("latency_p50_ms", "latency_p99_ms"):
        if isinstance(figures.get(key), int | float):
            show(key.replace("_ms", "").replace("_", " "), figures[key], "ms")
    cpu.show_split(figures)
