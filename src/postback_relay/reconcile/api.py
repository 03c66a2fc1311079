"""A platform API read politely: one pooled HTTPS session, no redirects, a bounded number of requests per run,
and on a 429 or a 5xx (or a 200 that says it is throttled, as GraphQL does) a wait of at least what the platform
asks (Retry-After), else an exponential backoff with jitter (core/backoff.py), a few times before the run stops
with what it has. The credential is sent only in a header and never appears in an error (each message is
scrubbed of it)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import requests

from postback_relay.core.backoff import RetryPolicy, next_delay
from postback_relay.networks.trafficstars import environment_session

REDACTED = "***"
THROTTLE_POLICY = RetryPolicy(base_delay_seconds=1.0, max_delay_seconds=30.0, window_seconds=300.0)
MAX_TRIES = 6  # a 429 or 5xx is retried this many times in all before the run stops
# Reads a 200 answer that says "slow down" (GraphQL's THROTTLED): the seconds to wait at least, or None.
Throttled = Callable[[Any], float | None]


class ApiError(Exception):
    """The platform's API could not be read; ``code`` is a low-cardinality label for the summary and metrics."""

    code = "api_error"


class CredentialsRefused(ApiError):
    """401/403: the key is wrong, expired or lacks a permission (the README lists the ones to grant)."""

    code = "credentials_refused"


class BudgetSpent(ApiError):
    """The run made as many requests as it may (RECONCILE_MAX_REQUESTS): the rest is the next run's."""

    code = "budget_spent"


class ApiClient:
    """GETs (and GraphQL POSTs) of one platform's API under ``base_url`` with ``headers`` (its authorization)."""

    def __init__(
        self,
        base_url: str,
        headers: Mapping[str, str],
        secret: str,
        max_requests: int,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        timeout: tuple[float, float] = (3.0, 20.0),
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._headers = dict(headers)
        self._secret = secret
        self._session = session or environment_session(self.base_url)
        self._sleep = sleep
        self._timeout = timeout
        self.requests_left = max_requests
        self.waited_seconds = 0.0  # time spent backing off (the summary reports it)

    def get_json(self, path: str, params: list[tuple[str, str]] | None = None) -> Any:
        """The JSON document at ``path``; ApiError (CredentialsRefused, BudgetSpent) when there is none."""
        return self._read("GET", path, params=params)

    def post_json(self, path: str, body: Any, throttled: Throttled | None = None) -> Any:
        """The JSON document ``path`` answers to ``body`` (a GraphQL query); ``throttled`` reads an answer that
        is a 200 all the same (GraphQL's THROTTLED error): the seconds to wait before asking again, or None."""
        return self._read("POST", path, body=body, throttled=throttled)

    def _read(
        self,
        method: str,
        path: str,
        params: list[tuple[str, str]] | None = None,
        body: Any = None,
        throttled: Throttled | None = None,
    ) -> Any:
        """One request, retried on a 429, a 5xx, a dropped connection or a throttled answer, within the budget."""
        for attempt in range(1, MAX_TRIES + 1):
            if self.requests_left <= 0:
                raise BudgetSpent("the run's request budget is spent")
            self.requests_left -= 1
            try:
                response = self._session.request(
                    method,
                    self.base_url + path,
                    params=params,
                    json=body,
                    headers=self._headers,
                    timeout=self._timeout,
                    allow_redirects=False,
                )
            except requests.RequestException as exc:
                if attempt == MAX_TRIES:
                    raise ApiError(self._scrub(f"{type(exc).__name__}: {exc}")) from None
                self._wait(attempt, None)
                continue
            if response.status_code in (401, 403):
                raise CredentialsRefused(self._scrub(f"HTTP {response.status_code}: {_snippet(response.text)}"))
            if response.status_code == 429 or response.status_code >= 500:
                if attempt == MAX_TRIES:
                    raise ApiError(f"HTTP {response.status_code} after {MAX_TRIES} tries")
                self._wait(attempt, _seconds(response.headers.get("Retry-After")))
                continue
            if response.status_code != 200:
                raise ApiError(self._scrub(f"HTTP {response.status_code}: {_snippet(response.text)}"))
            try:
                document = response.json()
            except ValueError:
                raise ApiError("the answer is not JSON") from None
            delay = throttled(document) if throttled is not None else None
            if delay is None:
                return document
            if attempt == MAX_TRIES:
                raise ApiError(f"throttled after {MAX_TRIES} tries")
            self._wait(attempt, delay)
        raise ApiError("unreachable")  # pragma: no cover - the loop returns or raises

    def _wait(self, attempt: int, at_least: float | None) -> None:
        delay = next_delay(attempt, THROTTLE_POLICY, at_least)
        self.waited_seconds += delay
        self._sleep(delay)

    def _scrub(self, text: str) -> str:
        return text.replace(self._secret, REDACTED) if self._secret else text


def _seconds(retry_after: str | None) -> float | None:
    try:
        return max(0.0, float(retry_after)) if retry_after is not None else None
    except ValueError:
        return None


def _snippet(text: str) -> str:
    return " ".join(text.split())[:200]
