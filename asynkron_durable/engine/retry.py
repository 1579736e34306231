"""Retry policy for activities and sub-orchestrations; the waits between attempts are durable timers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

_LONGEST_WAIT = timedelta(days=3650)
"""Without `max_retry_interval`, exponential back-off still stops growing here (ten years)."""


@dataclass(frozen=True)
class RetryOptions:
    """How often and how far apart to retry a failed call.

    The wait before retry n (n = 1 after the first failure) is
    `first_retry_interval * backoff_coefficient ** (n - 1)`, capped at `max_retry_interval`.
    No retry starts once `retry_timeout` has passed since the first attempt. `handle`, when given,
    decides per exception whether to retry at all.
    """

    first_retry_interval: timedelta
    max_number_of_attempts: int
    backoff_coefficient: float = 1.0
    max_retry_interval: timedelta | None = None
    retry_timeout: timedelta | None = None
    handle: Callable[[BaseException], bool] | None = None

    def __post_init__(self) -> None:
        if self.first_retry_interval <= timedelta(0):
            raise ValueError("first_retry_interval must be positive")
        if self.max_number_of_attempts < 1:
            raise ValueError("max_number_of_attempts must be at least 1")
        if self.backoff_coefficient < 1.0:
            raise ValueError("backoff_coefficient must be at least 1.0")

    def delay_before_retry(self, failed_attempts: int) -> timedelta:
        """The wait after `failed_attempts` failures (1-based), capped before it can overflow."""
        cap = self.max_retry_interval or _LONGEST_WAIT
        try:
            seconds = self.first_retry_interval.total_seconds() * (
                self.backoff_coefficient ** (failed_attempts - 1)
            )
        except OverflowError:
            return cap
        return cap if seconds >= cap.total_seconds() else timedelta(seconds=seconds)

    def should_retry(self, failed_attempts: int, exception: BaseException, elapsed: timedelta) -> bool:
        """Whether to try again after `failed_attempts` failures, `elapsed` since the first try."""
        if failed_attempts >= self.max_number_of_attempts:
            return False
        if self.handle is not None and not self.handle(exception):
            return False
        if self.retry_timeout is not None:
            return elapsed + self.delay_before_retry(failed_attempts) <= self.retry_timeout
        return True
