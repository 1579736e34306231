"""The benchmark harness runs end to end at tiny sizes and reports sane figures (no timing limits)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from bench.modes import chain, fanout, latency, long, plot, user

STORES = ["sqlite:///", "memory://"]


def positive(figures: dict[str, Any], *keys: str) -> None:
    for key in keys:
        value = figures[key]
        assert isinstance(value, float | int) and math.isfinite(value) and value > 0, (key, value)


@pytest.mark.parametrize("store", STORES)
async def test_chain(store: str) -> None:
    # 60 chains (10 at a time, so the run stays short) spend several of the kernel's 10 ms CPU ticks
    # even on memory://; 12 could fit in one
    figures = await chain.run(store, instances=60, workers_count=2, inflight=10)
    positive(figures, "orchestrations_per_s", "activities_per_s", "latency_p50_ms", "latency_p99_ms")
    assert figures["activities_per_s"] == pytest.approx(5 * figures["orchestrations_per_s"])
    assert figures["latency_p99_ms"] >= figures["latency_p50_ms"]
    assert figures["cpu_us_per_step_this_process"] > 0  # the driver and in-process workers ran here
    assert figures["cpu_us_per_step_worker_processes"] == 0


@pytest.mark.parametrize("store", STORES)
async def test_user(store: str) -> None:
    figures = await user.run(store, sizes=(20, 40), dbos=False)
    assert [run["instances"] for run in figures["runs"]] == [20, 40]
    for run in figures["runs"]:
        positive(run["ours"], "per_s", "seconds", "starting_seconds")
        assert run["dbos"] is None and run["ours_over_dbos"] is None
    assert figures["largest_over_smallest"] == pytest.approx(
        figures["runs"][1]["ours"]["per_s"] / figures["runs"][0]["ours"]["per_s"]
    )


@pytest.mark.parametrize("store", STORES)
async def test_fanout(store: str) -> None:
    figures = await fanout.run(store, fanout=30)
    positive(figures, "seconds", "activities_per_s", "worker_peak_rss_mb")


@pytest.mark.parametrize("store", STORES)
async def test_long(store: str) -> None:
    figures = await long.run(store, steps=12)
    assert figures["finished"] and figures["steps_done"] == 12 and figures["window"] == 6
    positive(figures, "steps_per_s", "ms_per_step_first", "ms_per_step_last", "last_over_first")


@pytest.mark.parametrize("store", STORES)
async def test_latency(store: str) -> None:
    figures = await latency.run(store, runs=3, idle_gap=0.01, idle_cpu_seconds=0.1)
    positive(figures, "latency_p50_ms", "pickup_p50_ms", "activity_p99_ms", "timer_late_max_ms")
    assert figures["idle_cpu_percent"] >= 0


def test_plot_points_take_the_latest_run_of_each_point_whatever_its_mode(tmp_path: Path) -> None:
    def result(name: str, mode: str, figures: dict[str, Any]) -> None:
        (tmp_path / name).write_text(json.dumps({"mode": mode, "store": "postgres", "figures": figures}))

    run = {"workers": 1, "processes": True, "steps_per_s": 100.0}
    result("compare-postgres-20260101T000000Z.json", "compare", {"chain": run, "dbos": {}})
    result("chain-postgres-20260102T000000Z.json", "chain", {**run, "steps_per_s": 200.0})

    assert plot.points(tmp_path) == {"ours (postgres processes)": {1: 200.0}}
