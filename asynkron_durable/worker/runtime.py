"""`DurableFunctionRuntime`: registration plus the workers that poll the store and run the work.

Loops run side by side: one claims instances in batches and has their episodes run (see
`episode_thread.py`), one claims activities and runs them, one records finished activities in
batches, one renews leases. Idle loops back off to `max_poll_interval` and wake at once when the
store reports new work of their kind (`Work`). A finished activity whose orchestration is kept in
memory here takes its next episode at once, written with the result (`ActivityStep`); what that
schedules comes back leased to this worker. A step the store refuses becomes a plain result.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Collection, Iterator, Sequence
from datetime import timedelta

from asynkron_durable.app import DurableApp
from asynkron_durable.client import OrchestrationClient
from asynkron_durable.errors import WorkerStuck
from asynkron_durable.history import utc_now
from asynkron_durable.registry import Duration, Registrations, Registry, seconds
from asynkron_durable.stores import StateStore, as_store
from asynkron_durable.stores.base import (
    ActivityClaim,
    ActivityResult,
    ActivityWorkItem,
    EpisodeCommit,
    Work,
)
from asynkron_durable.worker.activities import ActivityLimits, run_activity
from asynkron_durable.worker.episode_cache import CachedExecution, EpisodeCache
from asynkron_durable.worker.episode_thread import EpisodeThread
from asynkron_durable.worker.histories import histories_to_replay
from asynkron_durable.worker.isolation import Isolation
from asynkron_durable.worker.jobs import claimed_job, report_failures, sort_steps, step_job
from asynkron_durable.worker.leases import (
    PendingReleases,
    drain,
    give_back_activities,
    keep_alive,
)
from asynkron_durable.worker.pacing import Backoff, until_next_timer, wait_or_timeout
from asynkron_durable.worker.presence import Presence
from asynkron_durable.worker.retry_log import RetryLog
from asynkron_durable.worker.threads import ActivityThreads

log = logging.getLogger("asynkron_durable.runtime")

_SHUTDOWN_RETRY_DELAY = 0.5
"""Longest wait between retries of a failed result batch once shutdown began, however long the
back-off had grown: shutdown must not be held up by a store that keeps failing."""


class DurableFunctionRuntime(Registrations):
    """Runs orchestrations and activities from a store. Many runtimes may share one store.

    `store` is a `StateStore` or a URL for `store_from_url` (`sqlite:///./durable.db`, `memory://`);
    with a URL, `task_hub` picks the task hub it serves (default `default`; see `stores/hubs.py`).

    `episode_cache_size`: how many running orchestrations to keep in memory between episodes (least
    recently used first out; 0 turns the cache off). A kept orchestration's next episode applies only
    its new events; one not kept (evicted, or last run by another worker) replays its history.

    `orchestrator_deadline`: how long an episode of orchestrator or entity code may run without
    yielding (an orchestrator may name its own); `activity_timeout`: how long an activity call may
    run (None: no limit; an activity may name its own); `max_activity_starts`: how often an
    activity may be started by workers that died running it before it fails instead (see
    `worker/isolation.py`: one back from such a death runs alone). `worker_timeout`: how long a
    worker may miss heartbeats before others take over its work (sooner once its process is gone);
    `unserved_timeout`: how long work no live worker registers waits before it fails as unknown
    (None: for ever; see `worker/presence.py`).
    """

    def __init__(
        self,
        store: StateStore | str = "sqlite:///./durable.db",
        *,
        task_hub: str | None = None,
        worker_id: str | None = None,
        max_concurrent_activities: int = 100,
        max_concurrent_orchestrations: int = 100,
        lease_duration: timedelta = timedelta(seconds=30),
        max_poll_interval: float | None = None,
        shutdown_timeout: float = 30.0,
        episode_cache_size: int = 10_000,
        orchestrator_deadline: Duration = 5.0,
        activity_timeout: Duration | None = None,
        max_activity_starts: int = 3,
        worker_timeout: Duration = 10.0,
        unserved_timeout: Duration | None = 600.0,
    ) -> None:
        if max_concurrent_activities < 1 or max_concurrent_orchestrations < 1:
            raise ValueError("concurrency limits must be at least 1")
        seconds(lease_duration, "lease_duration")
        self.store = as_store(store, task_hub)
        self.registry = Registry()
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.max_concurrent_activities = max_concurrent_activities
        self.max_concurrent_orchestrations = max_concurrent_orchestrations
        self.lease_duration = lease_duration
        self.max_poll_interval = (
            self.store.poll_interval_hint if max_poll_interval is None else max_poll_interval
        )
        self.shutdown_timeout = shutdown_timeout
        self._episode_cache = EpisodeCache(episode_cache_size)
        self.orchestrator_deadline = seconds(orchestrator_deadline, "orchestrator_deadline")
        self.activity_limits = ActivityLimits.of(activity_timeout, max_activity_starts)
        self._isolation = Isolation(max_activity_starts)
        self._episodes = EpisodeThread("durable-episodes")
        self.client = OrchestrationClient(self.store, self.registry)
        self._drained = False
        self._orchestration_wake = asyncio.Event()
        self._activity_wake = asyncio.Event()
        self._completions_ready = asyncio.Event()
        self._slot_freed = asyncio.Event()
        self._stop_requested = asyncio.Event()
        """Set once shutdown begins (`_stopping`); waits that must end at shutdown wait on it."""
        self._completions: list[ActivityResult] = []
        self._running_activities: dict[int, asyncio.Task[None]] = {}
        self._reserved_slots = 0
        """Activity slots promised to commits in flight, for the activities they may lease to us."""
        self._held_instances: set[str] = set()
        self._retries = RetryLog(log)
        self._presence = Presence(
            self.store, self.worker_id, worker_timeout, self._retries, self.registry, unserved_timeout
        )
        self._releases = PendingReleases()
        self._threads: ActivityThreads | None = None
        self._background: asyncio.Task[None] | None = None
        self._stop_event: asyncio.Event | None = None

    @property
    def workers(self) -> asyncio.Task[None] | None:
        """The task of the workers `async with runtime` runs (it ends with the block or `WorkerStuck`)."""
        return self._background

    @property
    def episode_cache_size(self) -> int:
        """How many running orchestrations are kept in memory between episodes (0: none)."""
        return self._episode_cache.size

    @episode_cache_size.setter
    def episode_cache_size(self, size: int) -> None:
        self._episode_cache.size = size

    def register_app(self, app: DurableApp) -> None:
        """Add every orchestrator and activity registered on `app`."""
        self.registry.merge(app.registry)

    # ----- lifecycle ----------------------------------------------------------------------------

    async def run_and_poll(self, stop: asyncio.Event) -> None:
        """Run workers until `stop` is set, then shut down gracefully: in-flight activities get
        `shutdown_timeout` seconds to finish; leases of unfinished work are released. The store is
        opened if need be and left open: close it when done (`async with runtime` does both)."""
        await self.store.open()
        self.store.subscribe(self._wake)
        self._stop_requested.clear()
        self._drained = False
        self._threads = ActivityThreads(self.max_concurrent_activities, "durable-activity")
        self._episodes = EpisodeThread("durable-episodes")
        loops = [
            asyncio.create_task(self._orchestration_loop(), name="durable-orchestrations"),
            asyncio.create_task(self._activity_loop(), name="durable-activities"),
        ]
        flusher = asyncio.create_task(self._completion_loop(), name="durable-completions")
        leases = keep_alive(self._presence, self.lease_duration, self._held, self._executing)
        renewer = asyncio.create_task(leases, name="durable-leases")
        log.info("worker %s started", self.worker_id)
        waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._stop_requested.wait())]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()
            self._stop_requested.set()
            self._episodes.stop()
            self._wake(Work.ANY)
            self._slot_freed.set()  # an activity loop waiting for a slot must see the stop too
            await asyncio.gather(*loops, return_exceptions=True)
            try:
                left = await drain(self._running_activities, self.shutdown_timeout)
                await give_back_activities(
                    self.store, self.worker_id, [*left, *self._isolation.take_waiting()]
                )
            except Exception:  # the rest of the shutdown must still happen
                log.exception("releasing unfinished activities at shutdown failed")
            self._drained = True
            self._completions_ready.set()
            await asyncio.gather(flusher, return_exceptions=True)  # exits once all is recorded
            renewer.cancel()
            await asyncio.gather(renewer, return_exceptions=True)
            self._threads.shutdown()
            self._episodes.shutdown()
            self._episode_cache.clear()
            log.info("worker %s stopped", self.worker_id)
        if self._episodes.lost is not None:
            raise WorkerStuck(self._episodes.lost)

    async def __aenter__(self) -> DurableFunctionRuntime:
        await self.store.open()
        self._stop_event = asyncio.Event()
        self._background = asyncio.create_task(self.run_and_poll(self._stop_event))
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        try:
            if self._stop_event is not None and self._background is not None:
                self._stop_event.set()
                await self._background
        finally:
            await self.store.close()

    @property
    def _stopping(self) -> bool:
        return self._stop_requested.is_set()

    async def _pause(self, seconds: float) -> None:
        """Wait `seconds` after a failure, or until shutdown begins (wake-ups do not cut it short)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop_requested.wait(), seconds)

    def _wake(self, work: Work = Work.ANY) -> None:
        """A store's subscriber (a store written before wake-ups had kinds calls it bare)."""
        if Work.MESSAGES in work:
            self._orchestration_wake.set()
        if Work.ACTIVITIES in work:
            self._activity_wake.set()

    # ----- orchestrations -----------------------------------------------------------------------

    async def _orchestration_loop(self) -> None:
        idle = Backoff(0.002, self.max_poll_interval)
        failing = Backoff(0.002, self.max_poll_interval)
        while not self._stopping:
            await self._releases.retry(self.store, self.worker_id)
            try:
                worked = await self._orchestration_round()
                self._retries.recovered("orchestration round failed")
            except Exception as exc:
                self._retries.failed("orchestration round failed", exc)
                # Wake-ups are no reason to retry sooner: the failed batch's give-back announces it
                # as new work, to us and to other runtimes failing on it too. Back off on a clock
                # of its own; wake-ups that came meanwhile stay set for the next idle wait.
                await self._pause(failing.next())
                continue
            if worked:
                idle.reset()
                failing.reset()
            else:
                await wait_or_timeout(
                    self._orchestration_wake, await until_next_timer(self.store, idle.next(), self._retries)
                )

    async def _orchestration_round(self) -> bool:
        now = utc_now()
        items = await self.store.claim_orchestrations(
            self.worker_id,
            now,
            now + self.lease_duration,
            self.max_concurrent_orchestrations,
            self._presence.instance_names(),
        )
        if not items:
            return False
        ids = [item.record.instance_id for item in items]
        self._held_instances.update(ids)
        cached = self._episode_cache.take(items)
        try:
            try:
                histories = await histories_to_replay(self.store, items, cached)
                jobs = [
                    claimed_job(
                        item,
                        histories.get(item.record.instance_id, []),
                        cached.get(item.record.instance_id),
                        self.registry,
                        self.orchestrator_deadline,
                        now,
                        self._episodes.restart_clock,
                    )
                    for item in items
                ]
                ran = await self._episodes.run(jobs)
                episodes = [episode for episode in ran if episode is not None]
                unrun = [
                    item.record.instance_id for item, episode in zip(items, ran, strict=True) if not episode
                ]
                commits = [commit for commit, _ in episodes]
                claim = self._activity_claim(commits, freed=0)
                with self._reserving(claim):
                    committed = await self.store.commit_episodes(self.worker_id, utc_now(), commits, claim)
            except Exception:  # let others retry now, not after expiry (tried again next round)
                await self._releases.give_back(self.store, self.worker_id, ids)
                raise
            if unrun:  # the episode thread was lost before them: another worker runs them now
                await self._releases.give_back(self.store, self.worker_id, unrun)
            for instance_id in committed.rejected:
                log.warning("lease on %s was lost; its episode was dropped", instance_id)
            report_failures(commits, committed.rejected)
            for commit, keep in episodes:
                if keep is not None and commit.record.instance_id not in committed.rejected:
                    self._keep(commit.record.instance_id, keep)
        finally:
            self._held_instances.difference_update(ids)
        await self._run_leased(committed.claimed)
        self._stop_if_lost()
        return True

    def _stop_if_lost(self) -> None:
        """Once the episode thread is lost, stop: `run_and_poll` then raises `WorkerStuck`."""
        if self._episodes.lost is not None and not self._stopping:
            self._stop_requested.set()

    def _activity_claim(self, commits: Sequence[EpisodeCommit], *, freed: int) -> ActivityClaim:
        """What `commits` may lease to us as they insert activities: as many as they schedule, while
        slots are free (counting `freed`, those of the results they record), none once shutdown
        began. The caller reserves them while the commit is in flight, so the activity loop claims
        only for the slots left over."""
        limit = 0
        if not self._stopping and not self._isolation.holding:
            running = len(self._running_activities) + self._reserved_slots
            limit = max(0, self.max_concurrent_activities - running + freed)
            limit = min(limit, sum(len(commit.activities) for commit in commits))
        return ActivityClaim(utc_now() + self.lease_duration, limit, self._presence.activity_names())

    @contextlib.contextmanager
    def _reserving(self, claim: ActivityClaim) -> Iterator[None]:
        """Hold `claim`'s slots while its commit is in flight; when they are given up, the
        activity loop, if it waited for slots, looks again at once."""
        self._reserved_slots += claim.limit
        try:
            yield
        finally:
            self._reserved_slots -= claim.limit
            if claim.limit:
                self._slot_freed.set()

    async def _run_leased(self, items: Sequence[ActivityWorkItem]) -> None:
        if self._stopping:  # leased while shutdown began: nobody would run them
            await give_back_activities(self.store, self.worker_id, [item.activity_id for item in items])
        else:
            await self._start_activities(items)

    def _keep(self, instance_id: str, entry: CachedExecution) -> None:
        """Keep an execution whose commit succeeded, unless shutdown began (nothing would use it)."""
        if not self._stopping:
            self._episode_cache.keep(instance_id, entry)

    # ----- activities ---------------------------------------------------------------------------

    async def _activity_loop(self) -> None:
        idle = Backoff(0.002, self.max_poll_interval)
        while not self._stopping:
            free = self.max_concurrent_activities - len(self._running_activities) - self._reserved_slots
            if free <= 0 or self._isolation.holding:
                await wait_or_timeout(self._slot_freed, self.max_poll_interval)
                continue
            try:
                now = utc_now()
                items = await self.store.claim_activities(
                    self.worker_id, now, now + self.lease_duration, free, self._presence.activity_names()
                )
                self._retries.recovered("claiming activities failed")
            except Exception as exc:
                self._retries.failed("claiming activities failed", exc)
                items = []
            if not items:
                await wait_or_timeout(self._activity_wake, idle.next())
                continue
            idle.reset()
            await self._start_activities(items)

    async def _start_activities(self, items: Sequence[ActivityWorkItem]) -> None:
        """Run what was leased to us, as far as the slots go: a claim and a step that were in
        flight together may have leased more than fits, and the surplus goes back at once."""
        surplus: list[int] = []
        for item in items:
            if item.activity_id in self._running_activities:
                continue  # our own run whose lease lapsed and came back to us: never run it twice
            if self._isolation.is_suspect(item) and not self._isolation.holding:
                self._isolation.hold(item)
            elif self._isolation.holding or len(self._running_activities) >= self.max_concurrent_activities:
                surplus.append(item.activity_id)
            else:
                self._run(item)
        await give_back_activities(self.store, self.worker_id, surplus)  # before a suspect may start
        self._start_alone()

    def _run(self, item: ActivityWorkItem) -> None:
        self._running_activities[item.activity_id] = asyncio.create_task(
            self._execute(item), name=f"activity-{item.task.name}"
        )

    def _start_alone(self) -> None:
        """Start the next suspect (see `Isolation`) once nothing else runs here."""
        item = self._isolation.next_alone(idle=not self._running_activities)
        if item is not None:
            self._run(item)

    async def _execute(self, item: ActivityWorkItem) -> None:
        """Run one activity. Its slot (and lease renewal) lasts until the result is recorded, so a
        slow store cannot pile up finished-but-unrecorded work that a crash would lose."""
        assert self._threads is not None
        try:
            result = await run_activity(self.registry, item, self._threads, self.activity_limits)
        except BaseException:
            self._release_slots([item.activity_id])
            raise
        self._completions.append(result)
        self._completions_ready.set()

    def _release_slots(self, activity_ids: Sequence[int]) -> None:
        for activity_id in activity_ids:
            self._running_activities.pop(activity_id, None)
            self._isolation.finished(activity_id)
        self._start_alone()
        self._slot_freed.set()

    async def _completion_loop(self) -> None:
        """Record finished activities in batches; at shutdown, return once nothing is left.

        A failed batch is retried on a back-off from milliseconds up to `max_poll_interval`, so a
        blip delays results briefly; a stop requested meanwhile cuts the wait short, and at shutdown
        the loop gives up after three failures in a row once the activities are drained (counted
        from then on), waiting at most `_SHUTDOWN_RETRY_DELAY` between them (the results rerun when
        their leases expire)."""
        failures_drained = 0
        failing = Backoff(0.002, self.max_poll_interval)
        while True:
            await self._completions_ready.wait()
            self._completions_ready.clear()
            try:
                await self._flush_completions()
                self._retries.recovered("recording activity results failed")
                failures_drained = 0
                failing.reset()
            except Exception as exc:
                self._retries.failed("recording activity results failed", exc)
                if self._drained:
                    failures_drained += 1
                if failures_drained >= 3:
                    log.error(
                        "giving up on %d results at shutdown; they rerun when their leases expire",
                        len(self._completions),
                    )
                    return
                delay = failing.next()
                if self._stopping:  # a stop already set cannot cut the wait short: cap it instead
                    await asyncio.sleep(min(delay, _SHUTDOWN_RETRY_DELAY))
                else:
                    await self._pause(delay)
                self._completions_ready.set()
                continue
            if self._drained and not self._completions:
                return

    async def _flush_completions(self) -> None:
        if not self._completions:
            return
        batch = self._completions
        self._completions = []
        now = utc_now()
        plain, groups = self._episode_cache.take_steps(batch)
        jobs = [step_job(c, group, self.registry, self.orchestrator_deadline, now) for c, group in groups]
        outcomes = await self._episodes.run(jobs)
        unstepped, steps, keeps = sort_steps(groups, outcomes)
        plain += unstepped
        # The batch's own slots free up with this call; the activities it leases take them.
        claim = self._activity_claim([step.commit for step in steps], freed=len(batch))
        try:
            with self._reserving(claim):
                done = await self.store.complete_activities(self.worker_id, now, plain, steps, claim)
        except BaseException:
            self._completions = batch + self._completions  # as plain results: their executors are spent
            raise
        self._release_slots([result.activity_id for result in batch])
        for activity_id in done.rejected:
            log.warning("lease on activity %s was lost; its result was dropped", activity_id)
        report_failures([step.commit for step in steps if step.commit.record.instance_id in done.applied])
        for instance_id in done.applied:
            keep = keeps.get(instance_id)
            if keep is not None:
                self._keep(instance_id, keep)
        await self._run_leased(done.claimed)
        self._stop_if_lost()

    def _held(self) -> tuple[Collection[str], Collection[int]]:
        """What this worker holds leases on: instances in a round, activities running or being recorded."""
        return self._held_instances, [*self._running_activities, *self._isolation.waiting_ids()]

    def _executing(self, activity_id: int) -> bool:
        task = self._running_activities.get(activity_id)
        return task is not None and not task.done()
