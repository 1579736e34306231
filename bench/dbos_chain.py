"""The chain workload on DBOS Transact: N workflows of five trivial steps, on the same kind of database.

    python bench/dbos_chain.py --store postgresql://postgres@127.0.0.1:5432/test --instances 1000 --workers 4

Needs the `bench` extra (`pip install -e .[bench]`, DBOS 3.4). Each run happens in a child process
(DBOS is a process-wide singleton with its own threads and logging), against a fresh system
database: on PostgreSQL a new database `dbos_bench_<hex>` on the same server, dropped afterwards; on
SQLite a new file `dbos-bench-<hex>.sqlite` beside the given path, removed afterwards.

Two styles. `queue` (the tuned run): every workflow is enqueued on one DBOS queue whose
`worker_concurrency` is `workers` (one executor process), with the queue polled every 10 ms
instead of DBOS's default 1 s, which would otherwise cap a closed loop at `workers` workflows a
second. `user` (what DBOS's documentation shows): `DBOS.start_workflow` for every workflow, then
`get_result` on every handle, with DBOS's defaults. Workflows and steps are plain (synchronous)
functions, run on DBOS's thread pool. Latencies run from the start to the last step's end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

STEPS = 5
POLLING_INTERVAL_S = 0.01
_SCRIPT = str(Path(__file__).resolve())


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else 0.0


def _child(system_database_url: str, instances: int, workers: int, style: str) -> dict[str, Any]:
    """Run in the child process: launch DBOS, run the chains, measure, shut down."""
    import logging
    from importlib.metadata import version

    from dbos import DBOS, DBOSConfig

    config: DBOSConfig = {
        "name": "asynkron-bench",
        "system_database_url": system_database_url,
        "log_level": "WARNING",
    }
    DBOS(config=config)

    finished: dict[str, float] = {}

    @DBOS.step()
    def step(value: int) -> int:
        if value + 1 == STEPS:  # a measurement side effect: the last step runs once per workflow
            finished[DBOS.workflow_id or ""] = time.perf_counter()
        return value + 1

    @DBOS.workflow()
    def chain(value: int) -> int:
        for _ in range(STEPS):
            value = step(value)
        return value

    DBOS.launch()
    logging.getLogger("dbos").setLevel(logging.WARNING)
    try:
        queue = DBOS.register_queue(
            "chain", worker_concurrency=workers, polling_interval_sec=POLLING_INTERVAL_S
        )
        started = time.perf_counter()
        enqueued: dict[str, float] = {}
        handles = []
        for _ in range(instances):
            handle = queue.enqueue(chain, 0) if style == "queue" else DBOS.start_workflow(chain, 0)
            enqueued[handle.get_workflow_id()] = time.perf_counter()
            handles.append(handle)
        results = [handle.get_result() for handle in handles]
        elapsed = time.perf_counter() - started
        if results != [STEPS] * instances:
            raise RuntimeError(f"unexpected results: {sorted(set(results))}")
        # From enqueue to the last step's end (get_result is awaited in order, so its return is no clock).
        latencies = [(finished[i] - enqueued[i]) * 1000 for i in enqueued if i in finished]
    finally:
        DBOS.destroy(destroy_registry=True)
    return {
        "orchestrations_per_s": instances / elapsed,
        "steps_per_s": instances * STEPS / elapsed,
        "p50_ms": _percentile(latencies, 0.5),
        "p99_ms": _percentile(latencies, 0.99),
        "instances": instances,
        "workers": workers,
        "style": style,
        "dbos_version": version("dbos"),
        "elapsed_s": elapsed,
    }


async def _run_child(system_database_url: str, instances: int, workers: int, style: str) -> dict[str, Any]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        _SCRIPT,
        "--child",
        system_database_url,
        "--instances",
        str(instances),
        "--workers",
        str(workers),
        "--style",
        style,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"DBOS run failed ({process.returncode}):\n{stderr.decode(errors='replace')}")
    last = stdout.decode().strip().splitlines()[-1]
    result: dict[str, Any] = json.loads(last)
    return result


def _fresh_sqlite(path: str) -> Path:
    folder = Path(path).parent if path else Path(".")
    return (folder if folder.is_dir() else Path(".")).resolve() / f"dbos-bench-{uuid.uuid4().hex[:12]}.sqlite"


def _remove_sqlite(file: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{file}{suffix}").unlink(missing_ok=True)


async def run_dbos(store_url: str, instances: int, workers: int, style: str = "queue") -> dict[str, Any]:
    """Run `instances` five-step chains on DBOS with queue worker concurrency `workers` (`style`
    "queue"), or started one by one and then awaited in order (`style` "user").

    Returns orchestrations_per_s, steps_per_s, p50_ms, p99_ms, instances, workers, dbos_version
    (and elapsed_s).
    """
    if instances < 1 or workers < 1:
        raise ValueError("instances and workers must be at least 1")
    if style not in ("queue", "user"):
        raise ValueError(f"style must be 'queue' or 'user', not {style!r}")
    scheme, _, rest = store_url.partition("://")
    scheme = scheme.lower()
    if scheme == "sqlite":
        file = _fresh_sqlite(rest[1:])
        try:
            return await _run_child(f"sqlite:///{file}", instances, workers, style)
        finally:
            _remove_sqlite(file)
    if scheme not in ("postgresql", "postgres"):
        raise ValueError(f"run_dbos needs a postgresql:// or sqlite:/// URL, not one with scheme {scheme!r}")
    import asyncpg  # type: ignore[import-untyped]

    base = store_url.split("?", 1)[0]
    server = "postgresql://" + base.partition("://")[2].rpartition("/")[0]
    database = f"dbos_bench_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(base)
    try:
        await admin.execute(f'CREATE DATABASE "{database}"')
        try:
            return await _run_child(f"{server}/{database}", instances, workers, style)
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    finally:
        await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--store", default=os.environ.get("ASYNKRON_DURABLE_PG_DSN") or "sqlite:///dbos.db")
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--style", choices=("queue", "user"), default="queue")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(_child(args.child, args.instances, args.workers[0], args.style)))
        return
    for workers in args.workers:
        print(json.dumps(asyncio.run(run_dbos(args.store, args.instances, workers, args.style))))


if __name__ == "__main__":
    main()
