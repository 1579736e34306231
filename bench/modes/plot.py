"""`plot`: throughput (steps/s) against worker count from bench/results/*.json, ours and DBOS, one
line per system, store and worker kind (the latest result for each point)."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench.results import RESULTS


def points(folder: Path = RESULTS) -> dict[str, dict[int, float]]:
    """{series: {workers: steps/s}}; later runs (by the timestamp that ends each file name) win."""
    series: dict[str, dict[int, float]] = defaultdict(dict)
    for path in sorted(folder.glob("*.json"), key=lambda p: (p.stem.rsplit("-", 1)[-1], p.name)):
        try:
            document = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        mode, store, figures = document.get("mode"), document.get("store"), document.get("figures", {})
        runs: list[tuple[str, dict[str, Any]]] = []
        if mode == "chain":
            runs.append(("ours", figures))
        elif mode == "dbos":
            runs.append(("DBOS", figures))
        elif mode == "compare":
            runs += [("ours", figures.get("chain", {})), ("DBOS", figures.get("dbos", {}))]
        for system, run in runs:
            if isinstance(run.get("workers"), int) and isinstance(run.get("steps_per_s"), int | float):
                kind = " processes" if run.get("processes") else ""
                series[f"{system} ({store}{kind})"][run["workers"]] = float(run["steps_per_s"])
    return dict(series)


def run(out: Path | None = None) -> dict[str, Any]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise SystemExit(f"plot needs matplotlib ({exc}): pip install -e '.[bench]'") from None
    data = points()
    if not data:
        raise SystemExit(f"no chain, dbos or compare results in {RESULTS}")
    target = out or RESULTS / "throughput.png"
    figure, axes = plt.subplots(figsize=(8, 5))
    for label, by_workers in sorted(data.items()):
        xs = sorted(by_workers)
        axes.plot(xs, [by_workers[x] for x in xs], marker="o", label=label)
    axes.set_xlabel("workers")
    axes.set_ylabel("activities (steps) per second")
    axes.set_title("Five-step chains: throughput vs workers")
    axes.set_ylim(bottom=0)
    axes.grid(True, alpha=0.3)
    axes.legend()
    figure.tight_layout()
    target.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(target, dpi=120)
    plt.close(figure)
    print(f"plot: {sum(len(v) for v in data.values())} points in {len(data)} series -> {target}")
    return {"series": {label: {str(k): v for k, v in pts.items()} for label, pts in data.items()}}
