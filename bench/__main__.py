"""`python -m bench MODE [--store URL] ...`: run one benchmark, print one line per figure and write
the figures to bench/results/<mode>-<store>-<timestamp>.json (plot: bench/results/throughput.png).

Every run gets a fresh store: a temp SQLite file, or a new PostgreSQL schema dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from bench.results import write
from bench.stores import kind_of

MODES = ("user", "chain", "fanout", "long", "latency", "dbos", "limit", "compare", "targets", "plot")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    p.add_argument("mode", choices=MODES)
    p.add_argument(
        "--store", default="sqlite:///", help="sqlite:/// (temp file), postgresql://..., memory://"
    )
    p.add_argument(
        "--instances", type=int, default=2000, help="chain, dbos, limit, compare, targets: chains to run"
    )
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="in-process runtimes (or processes); dbos: its worker_concurrency",
    )
    p.add_argument("--processes", action="store_true", help="workers as `asynkron-durable worker` processes")
    p.add_argument("--inflight", type=int, default=256, help="chain: instances running at once (closed loop)")
    p.add_argument("--steps", type=int, default=10_000, help="long, targets: sequential activities")
    p.add_argument("--budget", type=float, default=60.0, help="long: seconds before giving up")
    p.add_argument("--fanout", type=int, default=10_000, help="fanout, targets: activities fanned out")
    p.add_argument("--runs", type=int, default=200, help="latency, targets: start_new repetitions")
    p.add_argument("--batch", type=int, default=200, help="limit, compare: plain-SQL batch size")
    p.add_argument(
        "--dbos-concurrency",
        type=int,
        nargs="+",
        default=None,
        help="compare, targets: DBOS worker_concurrency values to try (the best is the reference)",
    )
    p.add_argument(
        "--sizes", type=int, nargs="+", default=None, help="user: numbers of chains (default 500 2000 8000)"
    )
    p.add_argument("--no-dbos", action="store_true", help="user: leave DBOS out")
    p.add_argument("--out", type=Path, default=None, help="result file (default: bench/results/...)")
    return p


async def dispatch(args: argparse.Namespace) -> dict[str, Any]:
    # Modes are imported on demand: dbos and limit need the optional `bench` extra.
    if args.mode == "user":
        from bench.modes import user

        return await user.run(args.store, args.sizes or user.SIZES, args.processes, not args.no_dbos)
    if args.mode == "chain":
        from bench.modes import chain

        return await chain.run(args.store, args.instances, args.workers, args.processes, args.inflight)
    if args.mode == "fanout":
        from bench.modes import fanout

        return await fanout.run(args.store, args.fanout, args.workers, args.processes)
    if args.mode == "long":
        from bench.modes import long

        return await long.run(args.store, args.steps, args.workers, args.processes, args.budget)
    if args.mode == "latency":
        from bench.modes import latency

        return await latency.run(args.store, args.runs, args.processes)
    if args.mode == "dbos":
        from bench.modes import external

        return await external.run_dbos(args.store, args.instances, args.workers)
    if args.mode == "limit":
        from bench.modes import external

        return await external.run_limit(args.store, args.instances, args.batch)
    from bench.modes import compare

    tried = args.dbos_concurrency or compare.DBOS_CONCURRENCY
    if args.mode == "targets":
        from bench.modes import targets

        return await targets.run(args.store, args.instances, args.steps, args.fanout, args.runs, tried)
    return await compare.run(args.store, args.instances, args.workers, args.processes, args.batch, tried)


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    if args.mode == "plot":
        from bench.modes import plot

        plot.run(args.out)
        return
    figures = asyncio.run(dispatch(args))
    path = write(args.mode, kind_of(args.store), figures, args.out)
    print(f"-> {path}")


if __name__ == "__main__":
    main(sys.argv[1:])
