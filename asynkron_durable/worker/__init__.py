"""The runtime: workers that claim work from a store, run it and commit what it produced.

`runtime.py` runs the loops, leases and slots; `histories.py` loads what a round must replay;
`jobs.py` and `episode_thread.py` run a round's episodes (user code) under deadlines off the event
loop; `episodes.py` runs one claimed instance's episode; `commits.py` turns what an episode produced
into one store commit; `episode_cache.py` keeps running orchestrations in memory between episodes;
`activities.py` and `threads.py` run activities, `isolation.py` runs those back from a worker's
death alone; `leases.py` renews and gives back leases and `presence.py` beats the heartbeat and
takes over from dead workers; `pacing.py` and `retry_log.py` pace idle and failing loops and keep
their log lines few.
"""

from asynkron_durable.worker.runtime import DurableFunctionRuntime

ConcurrentDurableFunctionRuntime = DurableFunctionRuntime
"""Asynkron.DurableFunctions' name for the multi-host-safe runtime. Every runtime here is."""

__all__ = ["ConcurrentDurableFunctionRuntime", "DurableFunctionRuntime"]
