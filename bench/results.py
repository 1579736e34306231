"""Figures: percentiles, one printed line per figure, and the JSON file each run leaves behind."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).with_name("results")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def show(label: str, value: float, unit: str) -> None:
    digits = 2 if abs(value) < 10 else 1 if abs(value) < 1000 else 0
    print(f"  {label}: {value:,.{digits}f} {unit}", flush=True)


def machine() -> dict[str, Any]:
    return {
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            check=True,
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def write(mode: str, store_kind: str, figures: dict[str, Any], out: Path | None = None) -> Path:
    """`bench/results/<mode>-<store>-<timestamp>.json` (or `out`) with figures and provenance."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = out or RESULTS / f"{mode}-{store_kind}-{stamp}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "mode": mode,
        "store": store_kind,
        "time": datetime.now(UTC).isoformat(),
        "figures": figures,
        "machine": machine(),
        "git_commit": git_commit(),
        "command": [Path(sys.executable).name, "-m", "bench", *sys.argv[1:]],
    }
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")
    return path
