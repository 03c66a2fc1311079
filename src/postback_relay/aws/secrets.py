"""The relay's secret (TrafficStars key, signing secrets) from Secrets Manager, cached in memory only.

Cached with a max age through powertools Parameters; refetched at once when a signature fails to verify or
TrafficStars answers `invalid key`, so a rotated secret is picked up without a redeploy. Forced refetches are
spaced by a minimum interval so unsigned junk cannot turn into a Secrets Manager call per request."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.parameters import SecretsProvider
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError, TransformParameterError

# The values the stack writes into the secret it creates (template.yaml, RelaySecret) until the operator pastes
# the real ones. A value starting with this counts as absent, so a source whose secret is still a placeholder is
# answered 404 source_not_configured (and never verifies a signature against the placeholder's text), and a
# placeholder TrafficStars key leaves postbacks retry_pending instead of sending it to TrafficStars.
PLACEHOLDER_PREFIX = "PLACEHOLDER"


def is_placeholder(value: object) -> bool:
    """Whether a secret value is one of the stack's placeholders (or a list holding only those)."""
    if isinstance(value, str):
        return value.startswith(PLACEHOLDER_PREFIX)
    if isinstance(value, list):
        strings = [item for item in value if isinstance(item, str) and item]
        return bool(strings) and all(is_placeholder(item) for item in strings)
    return False


class SecretUnavailable(Exception):
    """The secret could not be read and nothing usable is cached. Answered 503 so the sender retries."""


class SecretKeyMissing(Exception):
    """The secret has no value under a key a source or the postback needs."""


class RelaySecrets:
    """The decoded secret JSON. Its repr never shows a value."""

    def __init__(self, values: dict[str, Any]) -> None:
        self._values = values

    def __repr__(self) -> str:
        return f"RelaySecrets(keys={sorted(self._values)})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RelaySecrets) and other._values == self._values

    __hash__ = None  # type: ignore[assignment]

    @classmethod
    def decode(cls, raw: object) -> RelaySecrets | None:
        """The secret from the JSON string (or bytes) Secrets Manager holds, or the object powertools decoded
        already; None when it is not a JSON object (each caller says so in its own words)."""
        if isinstance(raw, bytes):
            raw = raw.decode("utf-8", "replace")
        if isinstance(raw, str):
            try:
                raw = json.loads(raw)
            except ValueError:
                return None
        return cls(raw) if isinstance(raw, dict) else None

    def value(self, field: str) -> str:
        """The string under ``field`` (an ad network's key: its module names the field); SecretKeyMissing when
        it is absent, empty or still the stack's placeholder."""
        value = self._values.get(field)
        if not isinstance(value, str) or not value or is_placeholder(value):
            raise SecretKeyMissing(f"the secret has no {field}")
        return value

    def signing_secrets(self, field: str) -> list[str]:
        """A source's signing secrets: one string, or a list of them while a secret is being rolled.
        Placeholders are left out: a source whose only value is one is not configured."""
        value = self._values.get(field)
        if isinstance(value, str):
            return [value] if value and not is_placeholder(value) else []
        if isinstance(value, list):
            return [item for item in value if isinstance(item, str) and item and not is_placeholder(item)]
        return []

    def has(self, field: str) -> bool:
        """Whether ``field`` holds a value (not empty, not the stack's placeholder)."""
        value = self._values.get(field)
        return isinstance(value, str) and bool(value) and not is_placeholder(value)

    def placeholders(self) -> list[str]:
        """The keys whose value is still the stack's placeholder (what `check` asks the operator to paste)."""
        return sorted(key for key, value in self._values.items() if is_placeholder(value))

    def values(self) -> list[str]:
        """Every secret string held, for scrubbing them out of anything written."""
        found: list[str] = []
        for value in self._values.values():
            found.extend([value] if isinstance(value, str) else [v for v in value if isinstance(v, str)])
        return [value for value in found if value]


class SecretStore:
    """One cached secret per container."""

    def __init__(
        self,
        secret_id: str,
        provider: SecretsProvider,
        max_age_seconds: int,
        refresh_min_interval_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._secret_id = secret_id
        self._provider = provider
        self._max_age = max_age_seconds
        self._refresh_min_interval = refresh_min_interval_seconds
        self._clock = clock
        self._last_good: RelaySecrets | None = None
        self._last_raw: object = None
        self._last_forced: float | None = None
        self._lock = threading.Lock()

    def get(self) -> RelaySecrets:
        """The secret, from the cache while it is younger than the max age."""
        return self._fetch(force=False)

    def refresh(self) -> RelaySecrets | None:
        """Refetch now, unless the last forced refetch was too recent (then None)."""
        with self._lock:
            now = self._clock()
            if self._last_forced is not None and now - self._last_forced < self._refresh_min_interval:
                return None
            self._last_forced = now
        return self._fetch(force=True)

    def _fetch(self, force: bool) -> RelaySecrets:
        try:
            raw = self._provider.get(self._secret_id, max_age=self._max_age, force_fetch=force)
        except (GetParameterError, TransformParameterError) as exc:
            if self._last_good is not None:
                return self._last_good  # Secrets Manager is down: the last value that worked still works.
            raise SecretUnavailable(f"cannot read secret {self._secret_id}: {type(exc).__name__}") from None
        if raw is self._last_raw and self._last_good is not None:
            return self._last_good  # the cached value, decoded already (a JSON parse per webhook saved)
        secrets = RelaySecrets.decode(raw)
        if secrets is None:
            raise SecretUnavailable(f"secret {self._secret_id} is not a JSON object")
        self._last_good, self._last_raw = secrets, raw
        return secrets
