"""Shared pieces of the multi-process chaos tests: worker processes, the killer, the checks.

Workers are `chaos_worker.py` processes (see there for the execution log and the ready file).
Nothing here sleeps to synchronise: waits poll a condition until a deadline, except the killer,
whose fixed cadence is the point of the test.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from support.chaos_worker import CONCURRENCY, STEPS

from asynkron_durable import OrchestrationClient, RuntimeStatus
from asynkron_durable.history import (
    ExecutionCompleted,
    ExecutionStarted,
    HistoryEvent,
    OrchestratorStarted,
    TaskCompleted,
    TaskFailed,
    TaskScheduled,
)
from asynkron_durable.stores import InstanceFilter, StateStore

WORKER = Path(__file__).with_name("chaos_worker.py")
NOT_TERMINAL = frozenset(status for status in RuntimeStatus if not status.is_terminal)
ID_PREFIX = "chaos-"

__all__ = [
    "CONCURRENCY",
    "ID_PREFIX",
    "STEPS",
    "ChaosReport",
    "Execution",
    "WorkerPool",
    "instance_id",
    "killer",
    "poll_until",
    "read_execution_log",
    "read_executions",
    "start_instances",
    "verify",
    "wait_until_all_terminal",
    "wasted_by_pid",
]


def instance_id(n: int) -> str:
    return f"{ID_PREFIX}{n}"


async def poll_until(
    condition: Callable[[], bool | Awaitable[bool]], timeout: float, what: str, interval: float = 0.02
) -> None:
    """Poll `condition` (sync or async) until it holds; AssertionError naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        outcome = condition()
        if not isinstance(outcome, bool):
            outcome = await outcome
        if outcome:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        await asyncio.sleep(interval)


# ----- worker processes -----------------------------------------------------------------------


class WorkerPool:
    """The live chaos workers of one test; `kill_leftovers` (in a `finally`) ends every one."""

    def __init__(self, store_url: str, log_dir: Path, script: Path = WORKER) -> None:
        self.store_url = store_url
        self.script = script
        self.log_dir = log_dir
        self.live: list[subprocess.Popen[bytes]] = []
        self.started: list[subprocess.Popen[bytes]] = []
        self.killed_pids: list[int] = []

    @property
    def kills(self) -> int:
        return len(self.killed_pids)

    def spawn(self, env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Start one worker; its stdout and stderr are the test's (pytest shows them on failure)."""
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        proc = subprocess.Popen(
            [sys.executable, str(self.script), self.store_url, str(self.log_dir)], env=full_env
        )
        self.live.append(proc)
        self.started.append(proc)
        return proc

    def check_health(self) -> None:
        """Fail if a worker exited without being killed or stopped by the test."""
        for proc in self.live:
            code = proc.poll()
            if code is not None:
                raise AssertionError(
                    f"worker {proc.pid} exited on its own with code {code} (its stderr is above)"
                )

    def is_ready(self, proc: subprocess.Popen[bytes]) -> bool:
        """True once the worker installed its signal handlers (SIGTERM is graceful from then)."""
        return any(self.log_dir.glob(f"ready-{proc.pid}-*"))

    async def kill(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGKILL one live worker and reap it."""
        self.live.remove(proc)
        proc.send_signal(signal.SIGKILL)
        code = await asyncio.to_thread(proc.wait, 10)
        # A pid can be reused by a later worker: its ready file must not count for that one.
        for ready in self.log_dir.glob(f"ready-{proc.pid}-*"):
            ready.unlink()
        if code != -signal.SIGKILL:
            raise AssertionError(f"worker {proc.pid} had already exited with code {code} before the kill")
        self.killed_pids.append(proc.pid)

    async def kill_random_and_replace(self, rng: random.Random) -> None:
        self.check_health()
        await self.kill(rng.choice(self.live))
        self.spawn()

    async def stop_all(self, timeout: float) -> None:
        """SIGTERM every live worker once it is ready; each must exit 0 within `timeout` seconds."""
        self.check_health()
        deadline = time.monotonic() + timeout
        await poll_until(
            lambda: all(self.is_ready(proc) for proc in self.live), timeout, "every worker to be ready"
        )
        for proc in self.live:
            proc.send_signal(signal.SIGTERM)
        codes: dict[int, int | None] = {}
        for proc in self.live:
            remaining = max(0.1, deadline - time.monotonic())
            try:
                codes[proc.pid] = await asyncio.to_thread(proc.wait, remaining)
            except subprocess.TimeoutExpired:
                codes[proc.pid] = None
        self.live = []
        bad = {pid: code for pid, code in codes.items() if code != 0}
        assert not bad, f"graceful stop must exit 0 within {timeout:g}s; exit codes (None: hung): {bad}"

    def kill_leftovers(self) -> None:
        """SIGKILL and reap every worker still running: no process outlives the test."""
        for proc in self.started:
            if proc.poll() is None:
                proc.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=10)
        self.live = []


async def killer(pool: WorkerPool, rng: random.Random, done: asyncio.Event, interval: float) -> None:
    """Every `interval` seconds until `done`: SIGKILL a random live worker, start a replacement."""
    while True:
        try:
            await asyncio.wait_for(done.wait(), interval)
            return
        except TimeoutError:
            await pool.kill_random_and_replace(rng)


# ----- instances ------------------------------------------------------------------------------


async def start_instances(client: OrchestrationClient, count: int, batch: int = 100) -> None:
    """Start `chain` instances `chaos-0` .. with inputs 0 .., `batch` requests at a time."""
    for first in range(0, count, batch):
        await asyncio.gather(
            *(client.start_new("chain", n, instance_id(n)) for n in range(first, min(first + batch, count)))
        )


async def status_counts(store: StateStore) -> Counter[RuntimeStatus]:
    counts: Counter[RuntimeStatus] = Counter()
    token: str | None = None
    while True:
        page = await store.query_instances(InstanceFilter(instance_id_prefix=ID_PREFIX), 1000, token)
        counts.update(record.runtime_status for record in page.instances)
        token = page.continuation_token
        if token is None:
            return counts


async def wait_until_all_terminal(
    store: StateStore, timeout: float, healthy: Callable[[], None], interval: float = 0.1
) -> None:
    """Poll until no chaos instance is non-terminal, calling `healthy()` (which raises) each round."""
    unfinished = InstanceFilter(runtime_status=NOT_TERMINAL, instance_id_prefix=ID_PREFIX)
    deadline = time.monotonic() + timeout
    while (await store.query_instances(unfinished, 1, None)).instances:
        healthy()
        if time.monotonic() > deadline:
            counts = await status_counts(store)
            summary = ", ".join(f"{status}: {n}" for status, n in sorted(counts.items()))
            raise AssertionError(f"instances still unfinished after {timeout:g}s ({summary})")
        await asyncio.sleep(interval)


# ----- verification ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Execution:
    """One line of a worker's execution log: one run of one activity."""

    instance_id: str
    task_id: int
    attempt: int
    pid: int


def read_execution_log(log_dir: Path) -> list[Execution]:
    """Every activity execution logged by every worker."""
    executions: list[Execution] = []
    for log in log_dir.glob("exec-*.log"):
        for line in log.read_text().splitlines():
            instance, task_id, attempt, pid = line.split()
            executions.append(Execution(instance, int(task_id), int(attempt), int(pid)))
    return executions


def read_executions(log_dir: Path) -> Counter[tuple[str, int]]:
    """How often each (instance id, task id) ran, from every worker's execution log."""
    return Counter((e.instance_id, e.task_id) for e in read_execution_log(log_dir))


def wasted_by_pid(executions: Iterable[Execution]) -> Counter[int]:
    """Per worker pid, its executions whose result was lost: the activity ran again later (with a
    higher attempt). Only killed workers should have any, each at most CONCURRENCY."""
    latest: dict[tuple[str, int], int] = {}
    for e in executions:
        key = (e.instance_id, e.task_id)
        latest[key] = max(latest.get(key, 0), e.attempt)
    return Counter(e.pid for e in executions if e.attempt < latest[e.instance_id, e.task_id])


def history_problems(history: list[HistoryEvent]) -> list[str]:
    """What is wrong with one chain's history (empty: well-formed)."""
    problems: list[str] = []
    starts = [n for n, e in enumerate(history) if isinstance(e, ExecutionStarted)]
    if starts != [1] or not isinstance(history[0], OrchestratorStarted):
        problems.append("does not open with OrchestratorStarted then its one ExecutionStarted")
    scheduled = Counter(e.event_id for e in history if isinstance(e, TaskScheduled))
    completed = Counter(e.task_scheduled_id for e in history if isinstance(e, TaskCompleted))
    if duplicated := sorted(i for i, n in scheduled.items() if n > 1):
        problems.append(f"TaskScheduled event ids {duplicated} appear more than once")
    if len(scheduled) != STEPS:
        problems.append(f"{len(scheduled)} activities scheduled, expected {STEPS}")
    if wrong := {i: completed[i] for i in scheduled if completed[i] != 1}:
        problems.append(f"TaskCompleted count per scheduled task id is not 1: {wrong}")
    if orphans := sorted(set(completed) - set(scheduled)):
        problems.append(f"TaskCompleted for task ids never scheduled: {orphans}")
    if any(isinstance(e, TaskFailed) for e in history):
        problems.append("has TaskFailed events")
    ends = [n for n, e in enumerate(history) if isinstance(e, ExecutionCompleted)]
    if len(ends) != 1:
        problems.append(f"{len(ends)} ExecutionCompleted events, expected 1")
    elif ends[0] != len(history) - 1:
        problems.append("ExecutionCompleted is not the last event")
    return problems


@dataclass
class ChaosReport:
    """What a chaos run did and what the checks found."""

    instances: int
    activities: int = 0
    executions: int = 0
    kills: int = 0
    rerun: dict[tuple[str, int], int] = field(default_factory=dict)

    @property
    def extra_executions(self) -> int:
        return self.executions - self.activities


def _first(items: Iterable[object], n: int = 5) -> list[object]:
    return list(items)[:n]


async def verify(
    client: OrchestrationClient, count: int, log_dir: Path, killed_pids: Sequence[int]
) -> ChaosReport:
    """Check every instance, its history and the execution log; return the figures.

    Every instance `chaos-N` is Completed with output N + STEPS, none is left unfinished, every
    history is well-formed, every scheduled activity ran at least once, nothing unscheduled ran,
    and re-executions number at most `kills` x CONCURRENCY (only work in flight when a worker died
    may run twice). `killed_pids`: the workers SIGKILLed, in order."""
    kills = len(killed_pids)
    store = client.store
    outputs: dict[str, object] = {}
    statuses: dict[str, RuntimeStatus] = {}
    token: str | None = None
    while True:
        page = await client.list_instances(InstanceFilter(instance_id_prefix=ID_PREFIX), 500, token)
        for status in page.instances:
            outputs[status.instance_id] = status.output
            statuses[status.instance_id] = status.runtime_status
        token = page.continuation_token
        if token is None:
            break
    expected = {instance_id(n): n + STEPS for n in range(count)}
    missing = sorted(set(expected) - set(statuses))
    assert not missing, f"{len(missing)} instances are missing, e.g. {missing[:5]}"
    unfinished = {i: s for i, s in statuses.items() if not s.is_terminal}
    assert not unfinished, f"{len(unfinished)} instances left unfinished, e.g. {_first(unfinished.items())}"
    not_completed = {i: s for i, s in statuses.items() if s is not RuntimeStatus.COMPLETED}
    assert not not_completed, (
        f"{len(not_completed)} instances did not complete: {_first(not_completed.items())}"
    )
    wrong = {i: (outputs[i], want) for i, want in expected.items() if outputs[i] != want}
    assert not wrong, f"{len(wrong)} wrong outputs (got, expected), e.g. {_first(wrong.items())}"

    scheduled: set[tuple[str, int]] = set()
    problems: dict[str, list[str]] = {}
    ids = list(expected)
    for first in range(0, len(ids), 250):
        histories = await store.load_histories(ids[first : first + 250])
        for instance, history in histories.items():
            if found := history_problems(history):
                problems[instance] = found
            scheduled.update((instance, e.event_id) for e in history if isinstance(e, TaskScheduled))
    assert not problems, f"{len(problems)} malformed histories, e.g. {_first(problems.items(), 3)}"
    assert len(scheduled) == count * STEPS

    executions = read_execution_log(log_dir)
    runs = Counter((e.instance_id, e.task_id) for e in executions)
    never_ran = scheduled - set(runs)
    assert not never_ran, f"{len(never_ran)} completed activities never ran: {_first(sorted(never_ran))}"
    unscheduled = set(runs) - scheduled
    assert not unscheduled, f"activities ran that no history schedules: {_first(sorted(unscheduled))}"
    report = ChaosReport(
        instances=count,
        activities=len(scheduled),
        executions=sum(runs.values()),
        kills=kills,
        rerun={key: n for key, n in runs.items() if n > 1},
    )
    wasted = wasted_by_pid(executions)
    assert report.extra_executions <= kills * CONCURRENCY, (
        f"{report.executions} executions of {report.activities} activities: "
        f"{report.extra_executions} re-executions, more than {kills} kills x {CONCURRENCY} "
        f"concurrent activities per worker; {len(report.rerun)} activities ran more than once, "
        f"e.g. {_first(sorted(report.rerun.items()))}; lost results per killed worker: "
        f"{[wasted[pid] for pid in killed_pids]}, per surviving worker: "
        f"{ {pid: n for pid, n in wasted.items() if pid not in killed_pids} }"
    )
    return report
