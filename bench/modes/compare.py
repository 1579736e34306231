"""`compare`: chain, dbos and limit one after the other on the same database; ratios of steps/s."""

from __future__ import annotations

from typing import Any

from bench.modes import chain, external
from bench.results import show


async def run(
    store_url: str, instances: int = 2000, workers_count: int = 1, processes: bool = False, batch: int = 64
) -> dict[str, Any]:
    ours = await chain.run(store_url, instances, workers_count, processes)
    dbos = await external.run_dbos(store_url, instances, workers_count)
    limit = await external.run_limit(store_url, instances, batch)
    figures = {
        "chain": ours,
        "dbos": dbos,
        "limit": limit,
        "ours_over_dbos": ours["steps_per_s"] / dbos["steps_per_s"],
        "ours_over_limit": ours["steps_per_s"] / limit["steps_per_s"],
        "workers": workers_count,
        "processes": processes,
    }
    print("compare (steps/s):")
    show("ours / DBOS", figures["ours_over_dbos"], "x")
    show("ours / plain-SQL limit", figures["ours_over_limit"], "x")
    return figures
