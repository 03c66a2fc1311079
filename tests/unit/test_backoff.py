"""The retry schedule (fake clock): exponential with jitter, Retry-After honoured, a bounded window."""

from __future__ import annotations

import random
from email.utils import formatdate

import pytest

from postback_relay.core.backoff import RetryPolicy, next_attempt_at, next_delay, parse_retry_after

POLICY = RetryPolicy(base_delay_seconds=30, max_delay_seconds=3600, window_seconds=3 * 86400)


@pytest.mark.parametrize(("attempts", "ceiling"), [(1, 30), (2, 60), (3, 120), (7, 1920), (8, 3600), (40, 3600)])
def test_delays_double_up_to_the_cap_with_jitter_in_the_upper_half(attempts: int, ceiling: float) -> None:
    rng = random.Random(7)
    delays = [next_delay(attempts, POLICY, rng=rng) for _ in range(200)]
    assert all(ceiling / 2 <= delay <= ceiling for delay in delays)
    assert len(set(delays)) > 100  # jitter spreads a backlog


def test_retry_after_is_a_floor() -> None:
    assert next_delay(1, POLICY, retry_after=600, rng=random.Random(1)) == 600
    assert next_delay(8, POLICY, retry_after=5, rng=random.Random(1)) >= 1800


def test_the_window_ends_the_retries() -> None:
    first = 1_000_000.0
    assert next_attempt_at(1, first, first, POLICY, rng=random.Random(1)) is not None
    assert next_attempt_at(60, first, first + 3 * 86400 - 10, POLICY, rng=random.Random(1)) is None


def test_the_schedule_spans_at_least_three_days_before_giving_up() -> None:
    rng = random.Random(3)
    first = now = 0.0
    attempts = 1
    while (due := next_attempt_at(attempts, first, now, POLICY, rng=rng)) is not None:
        now, attempts = due, attempts + 1
    assert now >= 3 * 86400 - 3600  # the last try falls within an hour of the window's end
    assert 70 <= attempts <= 160  # about hourly once the cap is reached


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("120", 120.0), ("0", 0.0), (None, None), ("", None), ("soon", None), ("999999999", 86400.0)],
)
def test_retry_after_seconds_and_garbage(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header, 1_000.0) == seconds


def test_retry_after_as_an_http_date() -> None:
    now = 1_800_000_000.0
    assert parse_retry_after(formatdate(now + 90, usegmt=True), now) == pytest.approx(90, abs=1)
    assert parse_retry_after(formatdate(now - 90, usegmt=True), now) == 0.0
