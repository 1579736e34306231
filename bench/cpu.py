"""Where a run's CPU went, per step: this process (the driver, and in-process workers), the worker
processes, and the rest of the machine (on a machine that runs nothing else: the database server).

A throughput figure alone cannot say whether the worker or the database is the bottleneck; this
split can. Read from Linux's /proc; elsewhere the figures are left out."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True)
class CpuSample:
    machine: float
    """Busy CPU seconds of the whole machine since boot (user, nice, system, irq and softirq)."""
    own: float
    """CPU seconds of this process."""
    workers: float
    """CPU seconds of the given worker processes."""


def _machine_busy() -> float:
    # user, nice, system, idle, iowait, irq, softirq, ...: guest time is already inside user and
    # nice, and steal is another machine's, so busy is user + nice + system + irq + softirq.
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (fields[0] + fields[1] + fields[2] + fields[5] + fields[6]) / _TICK


def _process_cpu(pid: int) -> float:
    # utime and stime are the 14th and 15th fields; the name before them may hold spaces.
    after_name = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(after_name[11]) + int(after_name[12])) / _TICK


def sample(worker_pids: Sequence[int] = ()) -> CpuSample | None:
    """Now's counters, or None where /proc is not there to read (or a worker process is gone).
    Every counter is read from /proc in the same clock ticks, so the split adds up."""
    try:
        return CpuSample(
            _machine_busy(), _process_cpu(os.getpid()), sum(_process_cpu(p) for p in worker_pids)
        )
    except OSError:
        return None


def per_step(start: CpuSample | None, end: CpuSample | None, steps: int) -> dict[str, float]:
    """Microseconds of CPU per step between two samples: machine, this process, worker processes
    and the rest (the remainder, so within a few clock ticks: it may come out slightly negative
    when the rest did nothing); {} if either sample is missing."""
    if start is None or end is None or steps <= 0:
        return {}
    machine = end.machine - start.machine
    own = end.own - start.own
    workers = end.workers - start.workers
    scale = 1e6 / steps
    return {
        "cpu_us_per_step_machine": machine * scale,
        "cpu_us_per_step_this_process": own * scale,
        "cpu_us_per_step_worker_processes": workers * scale,
        "cpu_us_per_step_rest": (machine - own - workers) * scale,
    }


def show_split(figures: Mapping[str, Any]) -> None:
    """One line: the CPU per step and where it went, if it was measured."""
    if "cpu_us_per_step_machine" not in figures:
        return
    print(
        f"  CPU per step: {figures['cpu_us_per_step_machine']:,.0f} us on the machine = "
        f"{figures['cpu_us_per_step_this_process']:,.0f} this process + "
        f"{figures['cpu_us_per_step_worker_processes']:,.0f} worker processes + "
        f"{figures['cpu_us_per_step_rest']:,.0f} the rest (the database)",
        flush=True,
    )
