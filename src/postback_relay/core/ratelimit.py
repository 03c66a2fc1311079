"""A token bucket: how many postbacks a tenant's retries may send per second, so one tenant's backlog (a
TrafficStars outage's worth of retries) cannot hold the retry worker while another's conversions wait.

Per worker instance, in memory: the worker's concurrency (template: RetryFunction's MaximumConcurrency) times
the rate bounds a tenant across instances. A conversion's first attempt, made by the webhook that brought it,
is never limited: fresh conversions never wait behind anyone's backlog."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved up (default: one second's worth)."""

    def __init__(self, rate: float, burst: float | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0:
            raise ValueError("a rate limit needs a positive rate")
        self._rate = rate
        self._burst = max(1.0, rate if burst is None else burst)
        self._clock = clock
        self._tokens = self._burst
        self._at = clock()
        self._lock = threading.Lock()

    def take(self) -> float:
        """Take a token: 0.0 when one was free, else the seconds until one is (nothing taken then)."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate)
            self._at = now
            if self._tokens >= 1:
                self._tokens -= 1
                return 0.0
            return (1 - self._tokens) / self._rate
