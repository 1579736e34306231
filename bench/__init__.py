"""Benchmarks of asynkron-durable: `python -m bench MODE --store URL` (see `python -m bench -h`)."""
