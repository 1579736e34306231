"""`python -m bench targets`: each target's verdict from the figures of its runs (synthetic figures;
the modes themselves are exercised by test_bench_smoke.py), and how it runs each mode alone."""

from __future__ import annotations

from typing import Any

import pytest

from bench.__main__ import parser
from bench.modes.targets import Verdict, run_alone, verdicts


def figures(**changes: float) -> dict[str, Any]:
    """Figures that meet every target, with `changes` applied."""
    values = {
        "ours_over_dbos": 12.0,
        "ours_over_limit": 0.30,
        "last_over_first": 0.9,
        "seconds": 1.5,
        "worker_peak_rss_mb": 60.0,
        "pickup_p50_ms": 3.0,
        "pickup_p99_ms": 9.0,
        "latency_p50_ms": 4.5,
        "latency_p99_ms": 12.0,
    } | changes
    return {
        "compare": {k: values[k] for k in ("ours_over_dbos", "ours_over_limit")},
        "long": {"last_over_first": values["last_over_first"]},
        "fanout": {"seconds": values["seconds"], "worker_peak_rss_mb": values["worker_peak_rss_mb"]},
        "latency": {
            "pickup_p50_ms": values["pickup_p50_ms"],
            "pickup_p99_ms": values["pickup_p99_ms"],
            "latency_p50_ms": values["latency_p50_ms"],
            "latency_p99_ms": values["latency_p99_ms"],
        },
    }


def met(found: list[Verdict]) -> list[bool | None]:
    return [verdict.met for verdict in found]


def test_every_target_met_on_the_store_it_is_set_for() -> None:
    assert met(verdicts("postgres", figures())) == [True, True, True, None, True, True]
    assert met(verdicts("sqlite", figures())) == [True, True, True, True, None, None]
    assert met(verdicts("memory", figures())) == [None, None, True, None, None, None]


@pytest.mark.parametrize(
    ("kind", "change", "missed"),
    [
        ("postgres", {"ours_over_dbos": 9.9}, 0),
        ("sqlite", {"ours_over_limit": 0.05}, 1),
        ("postgres", {"last_over_first": 1.6}, 2),
        ("sqlite", {"seconds": 10.5}, 3),
        ("sqlite", {"worker_peak_rss_mb": 301.0}, 3),
        ("postgres", {"pickup_p50_ms": 5.2}, 4),
        ("postgres", {"pickup_p99_ms": 26.0}, 4),
        ("postgres", {"latency_p50_ms": 8.6}, 5),
        ("postgres", {"latency_p99_ms": 25.5}, 5),
    ],
)
def test_a_missed_target_is_named_not_met(kind: str, change: dict[str, float], missed: int) -> None:
    found = verdicts(kind, figures(**change))
    assert [i for i, verdict in enumerate(found) if verdict.met is False] == [missed]
    assert "NOT MET" in found[missed].line()


def test_targets_is_a_mode_of_the_command_line() -> None:
    args = parser().parse_args(["targets", "--store", "postgresql://x/y", "--steps", "500"])
    assert (args.mode, args.steps, args.instances) == ("targets", 500, 2000)


async def test_each_run_is_a_bench_process_of_its_own_whose_figures_come_back() -> None:
    figures = await run_alone("fanout", "sqlite:///", "--fanout", "20")
    assert figures["fanout"] == 20 and figures["seconds"] > 0 and figures["worker_peak_rss_mb"] > 0


async def test_a_run_that_fails_is_named() -> None:
    with pytest.raises(RuntimeError, match=r"`python -m bench long` failed"):
        await run_alone("long", "sqlite:///", "--steps", "1")  # long needs two steps at least
