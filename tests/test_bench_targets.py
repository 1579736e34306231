"""`python -m bench targets`: each target's verdict from the figures of its runs (synthetic figures;
the modes themselves are exercised by test_bench_smoke.py), and how it runs each mode alone."""

from __future__ import annotations

from typing import Any

import pytest

from bench.__main__ import parser
from bench.modes.targets import Verdict, references, run_alone, verdicts


def figures(**changes: float) -> dict[str, Any]:
    """Figures that meet every target, with `changes` applied."""
    values = {
        "user_small": 11.0,
        "user_large": 10.5,
        "largest_over_smallest": 0.8,
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
        "user": {
            "runs": [
                {"instances": 500, "ours_over_dbos": values["user_small"]},
                {"instances": 8000, "ours_over_dbos": values["user_large"]},
            ],
            "largest_over_smallest": values["largest_over_smallest"],
        },
        "compare": {
            "ours_over_dbos": values["ours_over_dbos"],
            "ours_over_limit": values["ours_over_limit"],
            "chain": {"cpu_us_per_step_machine": 280.0},
        },
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
    assert met(verdicts("postgres", figures())) == [True, True, True, True, None, True]
    assert met(verdicts("sqlite", figures())) == [True, True, True, True, True, None]
    assert met(verdicts("memory", figures())) == [None, True, None, True, None, None]


@pytest.mark.parametrize(
    ("kind", "change", "missed"),
    [
        ("postgres", {"user_large": 9.9}, 0),
        ("sqlite", {"user_small": 4.0}, 0),
        ("sqlite", {"largest_over_smallest": 0.6}, 1),
        ("postgres", {"ours_over_dbos": 9.9}, 2),
        ("postgres", {"last_over_first": 1.6}, 3),
        ("sqlite", {"seconds": 10.5}, 4),
        ("sqlite", {"worker_peak_rss_mb": 301.0}, 4),
        ("postgres", {"latency_p50_ms": 5.2}, 5),
        ("postgres", {"latency_p99_ms": 15.5}, 5),
    ],
)
def test_a_missed_target_is_named_not_met(kind: str, change: dict[str, float], missed: int) -> None:
    found = verdicts(kind, figures(**change))
    assert [i for i, verdict in enumerate(found) if verdict.met is False] == [missed]
    assert "NOT MET" in found[missed].line()


def test_the_plain_sql_loop_and_cpu_per_step_are_shown_for_reference_only() -> None:
    found = verdicts("postgres", figures(ours_over_limit=0.01))
    assert all(verdict.met is not False for verdict in found)
    assert references(figures(ours_over_limit=0.01)) == [
        "  chain's share of the plain-SQL loop's steps/s: 1.0%",
        "  chain's CPU per step: 280 us on the machine",
    ]


def test_targets_is_a_mode_of_the_command_line() -> None:
    args = parser().parse_args(["targets", "--store", "postgresql://x/y", "--steps", "500"])
    assert (args.mode, args.steps, args.instances) == ("targets", 500, 2000)


async def test_each_run_is_a_bench_process_of_its_own_whose_figures_come_back() -> None:
    figures = await run_alone("fanout", "sqlite:///", "--fanout", "20")
    assert figures["fanout"] == 20 and figures["seconds"] > 0 and figures["worker_peak_rss_mb"] > 0


async def test_a_run_that_fails_is_named() -> None:
    with pytest.raises(RuntimeError, match=r"`python -m bench long` failed"):
        await run_alone("long", "sqlite:///", "--steps", "1")  # long needs two steps at least
