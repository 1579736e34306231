"""`compare`: chain, dbos and limit one after the other on the same database; ratios of steps/s.

DBOS runs at each of `dbos_concurrency` (its queue's worker_concurrency: how many workflows its one
executor process runs at once) and the best of those runs is the reference, so the ratio is against
DBOS as well tuned as this harness tried, not against one setting."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bench.modes import chain, external
from bench.results import show

DBOS_CONCURRENCY = (8, 32)
"""DBOS reached its best here at about 8 (PostgreSQL, 2 cores): 60/s, against 33/s at 1, 55/s at 32
and 44/s at 128."""


async def run(
    store_url: str,
    instances: int = 2000,
    workers_count: int = 1,
    processes: bool = False,
    batch: int = 200,
    dbos_concurrency: Sequence[int] = DBOS_CONCURRENCY,
) -> dict[str, Any]:
    ours = await chain.run(store_url, instances, workers_count, processes)
    dbos_runs = [await external.run_dbos(store_url, instances, n) for n in dbos_concurrency]
    dbos = max(dbos_runs, key=lambda figures: figures["steps_per_s"])
    limit = await external.run_limit(store_url, instances, batch)
    figures = {
        "chain": ours,
        "dbos": dbos,
        "dbos_runs": dbos_runs,
        "limit": limit,
        "ours_over_dbos": ours["steps_per_s"] / dbos["steps_per_s"],
        "ours_over_limit": ours["steps_per_s"] / limit["steps_per_s"],
        "workers": workers_count,
        "processes": processes,
    }
    print(f"compare (steps/s; DBOS at its best, concurrency {dbos['workers']}):")
    show("ours / DBOS", figures["ours_over_dbos"], "x")
    show("ours / plain-SQL limit", figures["ours_over_limit"], "x")
    return figures
