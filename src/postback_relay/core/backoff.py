"""When to try a failed postback again: exponential backoff with full jitter, at least what TrafficStars asks
for in Retry-After, within a window at least as long as Stripe's own retries (3 days). Pure functions."""

from __future__ import annotations

import random
from email.utils import parsedate_to_datetime
from typing import NamedTuple


class RetryPolicy(NamedTuple):
    """The retry schedule's settings (RETRY_BASE_DELAY_SECONDS, RETRY_MAX_DELAY_SECONDS, RETRY_WINDOW_SECONDS)."""

    base_delay_seconds: float = 30.0
    max_delay_seconds: float = 3600.0
    window_seconds: float = 3 * 86_400.0


def next_delay(
    attempts: int, policy: RetryPolicy, retry_after: float | None = None, rng: random.Random | None = None
) -> float:
    """Seconds to wait after the ``attempts``-th failed attempt: a uniform draw from the upper half of
    base·2^(attempts-1) capped at the maximum (jitter spreads a backlog; the lower bound keeps the pace),
    and never less than Retry-After."""
    ceiling = min(policy.max_delay_seconds, policy.base_delay_seconds * 2 ** max(0, attempts - 1))
    draw = (rng or random).uniform(ceiling / 2, ceiling)
    return max(draw, retry_after or 0.0)


def next_attempt_at(
    attempts: int,
    first_attempt_at: float,
    now: float,
    policy: RetryPolicy,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> float | None:
    """Epoch seconds of the next attempt, or None when it would fall outside the retry window (give up)."""
    due = now + next_delay(attempts, policy, retry_after, rng)
    if due - first_attempt_at > policy.window_seconds:
        return None
    return due


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Retry-After as seconds from now: delta-seconds or an HTTP date; None when absent or unreadable.
    Capped at one day so a hostile or broken header cannot park a conversion for ever."""
    if not value:
        return None
    value = value.strip()
    seconds: float | None
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - now
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    return min(max(seconds, 0.0), 86_400.0)
