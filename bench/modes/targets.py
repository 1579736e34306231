"""`targets`: the runs the performance targets are read from, on one store, then one verdict per
target. Each run is its own `python -m bench` process, so its figures are what that command
prints alone (fanout's peak memory, for one, is its process's high-water mark, which runs before it
in the same process would raise). Targets set for the other database are measured all the same and
listed without a verdict."""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.modes.compare import DBOS_CONCURRENCY
from bench.stores import kind_of

DBOS_RATIO = 10.0
"""`user` at every size, and `chain`: at least this many times DBOS's chains/s (PostgreSQL and SQLite)."""
USER_FLATNESS = 2 / 3
"""`user`: the rate at the largest size at least this share of the rate at the smallest."""
LONG_RATIO = 1.5
"""`long`: time per step at the end within this factor of the start."""
FANOUT_SECONDS = 10.0
FANOUT_MB = 300.0
"""`fanout` on SQLite: under this many seconds, with the worker's peak memory under this many MB."""
LATENCY_P50_MS = 5.0
LATENCY_P99_MS = 15.0
"""`latency` on PostgreSQL, start -> completed (as the client sees it), in-process worker."""


@dataclass(frozen=True, slots=True)
class Verdict:
    target: str
    figure: str
    met: bool | None
    """None: the target is set for another database than the one measured."""

    def line(self) -> str:
        state = "met" if self.met else "NOT MET" if self.met is False else "no target on this store"
        return f"  {self.target}: {self.figure} ({state})"


def verdicts(kind: str, figures: dict[str, Any]) -> list[Verdict]:
    """The verdict on each target, from the figures of `run` on a store of `kind`."""
    sqlite, postgres = kind == "sqlite", kind == "postgres"
    user, ours, lt, lat = figures["user"], figures["compare"], figures["long"], figures["latency"]
    seconds, peak = figures["fanout"]["seconds"], figures["fanout"]["worker_peak_rss_mb"]
    ratios = [run["ours_over_dbos"] for run in user["runs"]]
    sizes = "/".join(f"{run['instances']:,}" for run in user["runs"])
    done_p50, done_p99 = lat["latency_p50_ms"], lat["latency_p99_ms"]
    return [
        Verdict(
            f"user at least {DBOS_RATIO:g}x DBOS at {sizes} chains",
            " / ".join(f"{ratio:.1f}x" for ratio in ratios),
            min(ratios) >= DBOS_RATIO if sqlite or postgres else None,
        ),
        Verdict(
            f"user at the largest size at least {USER_FLATNESS:.0%} of the smallest's rate",
            f"{user['largest_over_smallest']:.0%}",
            user["largest_over_smallest"] >= USER_FLATNESS,
        ),
        Verdict(
            f"chain at least {DBOS_RATIO:g}x DBOS",
            f"{ours['ours_over_dbos']:.1f}x",
            ours["ours_over_dbos"] >= DBOS_RATIO if sqlite or postgres else None,
        ),
        Verdict(
            f"long: end within {LONG_RATIO:g}x of the start",
            f"{lt['last_over_first']:.2f}x",
            lt["last_over_first"] <= LONG_RATIO,
        ),
        Verdict(
            f"fanout on SQLite under {FANOUT_SECONDS:g} s and {FANOUT_MB:g} MB",
            f"{seconds:.2f} s, {peak:.1f} MB",
            seconds < FANOUT_SECONDS and peak < FANOUT_MB if sqlite else None,
        ),
        Verdict(
            f"latency on PostgreSQL, start -> completed: p50 < {LATENCY_P50_MS:g} ms, "
            f"p99 < {LATENCY_P99_MS:g} ms",
            f"p50 {done_p50:.2f} ms, p99 {done_p99:.2f} ms",
            done_p50 < LATENCY_P50_MS and done_p99 < LATENCY_P99_MS if postgres else None,
        ),
    ]


def references(figures: dict[str, Any]) -> list[str]:
    """Figures shown beside the verdicts, with no target: the plain-SQL loop and CPU per step."""
    chain = figures["compare"]["chain"]
    lines = [f"  chain's share of the plain-SQL loop's steps/s: {figures['compare']['ours_over_limit']:.1%}"]
    if "cpu_us_per_step_machine" in chain:
        lines.append(f"  chain's CPU per step: {chain['cpu_us_per_step_machine']:,.0f} us on the machine")
    return lines


async def run(
    store_url: str,
    instances: int = 2000,
    steps: int = 10_000,
    fanout_count: int = 10_000,
    runs: int = 200,
    dbos_concurrency: Sequence[int] = DBOS_CONCURRENCY,
) -> dict[str, Any]:
    tried = [str(n) for n in dbos_concurrency]
    figures: dict[str, Any] = {
        "fanout": await run_alone("fanout", store_url, "--fanout", str(fanout_count)),
        "long": await run_alone("long", store_url, "--steps", str(steps)),
        "latency": await run_alone("latency", store_url, "--runs", str(runs)),
        "compare": await run_alone(
            "compare", store_url, "--instances", str(instances), "--dbos-concurrency", *tried
        ),
        "user": await run_alone("user", store_url),
    }
    found = verdicts(kind_of(store_url), figures)
    figures["verdicts"] = [{"target": v.target, "figure": v.figure, "met": v.met} for v in found]
    print(f"targets on {kind_of(store_url)}:")
    for verdict in found:
        print(verdict.line())
    print("for reference:")
    print("\n".join(references(figures)))
    return figures


async def run_alone(mode: str, store_url: str, *args: str) -> dict[str, Any]:
    """`python -m bench MODE --store URL ARGS` in a process of its own; returns its figures."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / f"{mode}.json"
        command = [sys.executable, "-m", "bench", mode, "--store", store_url, *args, "--out", str(out)]
        process = await asyncio.create_subprocess_exec(*command)
        if await process.wait() != 0:
            raise RuntimeError(f"`python -m bench {mode}` failed (exit code {process.returncode})")
        figures: dict[str, Any] = json.loads(out.read_text())["figures"]
        return figures
