"""`user`: the program a user writes after reading the README, at several sizes, against DBOS's
equivalent in the same run.

Ours: a runtime in this process on the run's store (or, with `--processes`, one
`asynkron-durable worker` process and a client here), `asyncio.gather` over `start_new` for N
five-step chains, then `asyncio.gather` over `wait_for_completion`. DBOS: `DBOS.start_workflow`
for each, then `get_result` on each handle (`bench/dbos_chain.py`, style "user"). The clock runs
from the first start to the last result; every chain's output is checked.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from asynkron_durable import DurableFunctionRuntime, OrchestrationClient
from bench import cpu
from bench.app import CHAIN_LENGTH, app
from bench.modes.external import optional_function
from bench.results import show
from bench.stores import BenchStore, fresh_store
from bench.workers import workers

SIZES = (500, 2000, 8000)
WAIT_TIMEOUT = 600.0
"""Seconds a chain may take before the run fails."""


async def run(
    store_url: str, sizes: Sequence[int] = SIZES, processes: bool = False, dbos: bool = True
) -> dict[str, Any]:
    """Ours and (with `dbos`) DBOS at each of `sizes`; ratios per size and the flatness of ours."""
    runs: list[dict[str, Any]] = []
    for size in sizes:
        async with fresh_store(store_url) as store:
            ours = await (_with_worker_process(store, size) if processes else _in_process(store, size))
            theirs = await _dbos(store.url, size) if dbos else None
        runs.append(
            {
                "instances": size,
                "ours": ours,
                "dbos": theirs,
                "ours_over_dbos": None if theirs is None else ours["per_s"] / theirs["orchestrations_per_s"],
            }
        )
        _show(store.kind, size, processes, ours, theirs)
    first, last = runs[0]["ours"]["per_s"], runs[-1]["ours"]["per_s"]
    figures = {"processes": processes, "runs": runs, "largest_over_smallest": last / first}
    show(f"ours at {sizes[-1]} / ours at {sizes[0]}", figures["largest_over_smallest"], "x")
    return figures


async def _in_process(store: BenchStore, size: int) -> dict[str, Any]:
    """The README's program: one runtime in this process, whose client starts and waits."""
    runtime = DurableFunctionRuntime(store.make())
    runtime.register_app(app)
    async with runtime:
        return await _program(runtime.client, size, [])


async def _with_worker_process(store: BenchStore, size: int) -> dict[str, Any]:
    """The same program as a client, with the work done by an `asynkron-durable worker` process."""
    async with (
        workers(store, 1, processes=True) as running,
        OrchestrationClient.connect(store.url) as client,
    ):
        return await _program(client, size, [process.pid for process in running.processes])


async def _program(client: OrchestrationClient, size: int, worker_pids: list[int]) -> dict[str, Any]:
    """Start `size` chains with gather, wait for them with gather; the figures, outputs checked."""
    before = cpu.sample(worker_pids)
    started = time.perf_counter()
    ids = await asyncio.gather(*(client.start_new("chain") for _ in range(size)))
    starting = time.perf_counter() - started
    done = await asyncio.gather(*(client.wait_for_completion(i, timeout=WAIT_TIMEOUT) for i in ids))
    elapsed = time.perf_counter() - started
    spent = cpu.per_step(before, cpu.sample(worker_pids), size * CHAIN_LENGTH)
    outputs = {status.output for status in done}
    if outputs != {CHAIN_LENGTH}:
        raise RuntimeError(f"chains returned {sorted(map(str, outputs))}, expected {CHAIN_LENGTH}")
    return {"seconds": elapsed, "per_s": size / elapsed, "starting_seconds": starting, **spent}


async def _dbos(store_url: str, size: int) -> dict[str, Any]:
    run_dbos = optional_function("bench.dbos_chain", "run_dbos")
    figures: dict[str, Any] = await run_dbos(store_url, size, 1, "user")
    return figures


def _show(kind: str, size: int, processes: bool, ours: dict[str, Any], theirs: dict[str, Any] | None) -> None:
    where = "a worker process" if processes else "a runtime in the same process"
    print(f"user on {kind}: {size} chains started with gather, waited with gather, {where}")
    show("ours", ours["per_s"], "chains/s")
    show("ours, all started after", ours["starting_seconds"], "s")
    if theirs is not None:
        show("DBOS start_workflow + get_result", theirs["orchestrations_per_s"], "chains/s")
        show("ours / DBOS", ours["per_s"] / theirs["orchestrations_per_s"], "x")
    cpu.show_split(ours)
