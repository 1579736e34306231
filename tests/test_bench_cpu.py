"""The benchmark's CPU split reads real counters: this process, a worker process, the machine."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from bench import cpu


def test_a_worker_process_cpu_is_counted_under_workers() -> None:
    burner = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nend = time.process_time() + 0.3\n"
            "while time.process_time() < end: pass\nsys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
    )
    try:
        before = cpu.sample([burner.pid])
        if before is None:
            pytest.skip("no /proc on this system: the CPU split is not measured here")
        spent = 0.0
        deadline = time.monotonic() + 30
        while spent < 0.29:  # the child burns 0.3 s of CPU (counted in 10 ms ticks), then waits
            assert time.monotonic() < deadline, f"only {spent} s of the child's CPU seen"
            time.sleep(0.01)
            after = cpu.sample([burner.pid])
            assert after is not None
            spent = after.workers - before.workers
            assert burner.poll() is None
    finally:
        burner.communicate(b"")
    split = cpu.per_step(before, after, steps=1000)
    assert split["cpu_us_per_step_worker_processes"] >= 290.0  # 0.3 s over 1000 steps, at tick resolution
    assert split["cpu_us_per_step_machine"] >= split["cpu_us_per_step_worker_processes"] - 20.0


def test_the_split_adds_up_and_is_left_out_without_samples() -> None:
    start = cpu.CpuSample(machine=10.0, own=1.0, workers=2.0)
    end = cpu.CpuSample(machine=10.5, own=1.1, workers=2.3)
    split = cpu.per_step(start, end, steps=100)
    assert split == pytest.approx(
        {
            "cpu_us_per_step_machine": 5000.0,
            "cpu_us_per_step_this_process": 1000.0,
            "cpu_us_per_step_worker_processes": 3000.0,
            "cpu_us_per_step_rest": 1000.0,
        }
    )
    assert cpu.per_step(None, end, steps=100) == {}
    assert cpu.per_step(start, end, steps=0) == {}
