"""What one request or retry came to, and the domain errors that end one early, without HTTP.

Why no status codes here: the same outcome is a webhook's answer, a retry worker's batch item and a line of
`postback-relay replay`; only the HTTP handler (handlers/http.py) turns a refusal or an unsettled outcome
into a status, so the logic can be read and tested without knowing the transport."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal, NamedTuple

from postback_relay.core.forwarding import Forwarded
from postback_relay.core.tenant import DEFAULT_TENANT

AnswerKind = Literal["ok", "rejected", "invalid_key", "retryable"]


class Answer(NamedTuple):
    """The ad network's answer to one postback, classified: what it means for the conversion, the HTTP
    status, the network's own message. The network module (networks/trafficstars.py) makes these."""

    kind: AnswerKind
    http_status: int | None
    message: str
    reason: str  # low-cardinality label for metrics: ok, invalid_code, price, https_required, invalid_key, …
    duration_ms: float = 0.0
    retry_after: str | None = None  # the Retry-After header of a 429/503, as sent


class RelayError(Exception):
    """A request the relay refuses or cannot take now; ``code`` is the answer's machine-readable error."""

    code = "internal_error"
    # Forward mode: the merchant's answer to the request this refusal ends, when it was verified and forwarded
    # before the relay found it malformed (the platform is then answered as the merchant answered).
    forwarded: Forwarded | None = None


class Unauthorized(RelayError):
    """Not signed (or not with the secret of the route's platform): nothing changes."""

    code = "invalid_signature"


class Forbidden(RelayError):
    """From an address the route's allowlist does not hold (<PLATFORM>_ALLOWED_IPS): nothing changes."""

    code = "address_not_allowed"


class BadRequest(RelayError):
    """Signed but not the platform's event shape, or not decodable."""

    code = "malformed_body"


class PayloadTooLarge(RelayError):
    """Larger than MAX_BODY_BYTES: refused before any parsing."""

    code = "body_too_large"


class SourceNotConfigured(RelayError):
    """A route whose platform has no signing secret in this deployment: answered as for any path nothing
    serves, so a scanner cannot trip the 5xx alarms. ``looks_signed`` when the request is a well-formed, fresh,
    signed-looking delivery of that platform: then a platform is really sending to it, which the
    UnconfiguredSourceDeliveries metric and its alarm (and `postback-relay check`) make visible."""

    code = "source_not_configured"

    def __init__(self, message: str, looks_signed: bool = False) -> None:
        super().__init__(message)
        self.looks_signed = looks_signed


class UnknownTenant(RelayError):
    """A tenant route whose tenant does not exist (or was removed): a 404, decided before any secret is read."""

    code = "unknown_tenant"


class Unavailable(RelayError):
    """A dependency (DynamoDB, Secrets Manager) could not be reached: the sender should deliver again."""

    code = "temporarily_unavailable"


@dataclass(frozen=True)
class Outcome:
    """How one delivery or retry ended: the answer's body, whether the sender should deliver again, and the
    figures the handlers turn into metrics and logs."""

    status: str
    body: dict[str, Any]
    conversion_id: str | None = None
    answers: tuple[Answer, ...] = field(default_factory=tuple)
    value: Decimal | None = None
    event_id: str | None = None  # the platform's event id: the correlation id of the logs, the record and the trace
    attempt: int = 0  # which attempt at the postback this delivery made (1 = the first); 0 when none was made
    # True when the conversion is durable but not settled (its outcome unwritten, or its retry not queued):
    # a redelivery is only noted as a duplicate, and makes sure it is retried.
    redeliver: bool = False
    tenant: str = DEFAULT_TENANT  # whose event it was (core/tenant.py): a shared route learns it only by processing
    forwarded: Forwarded | None = None  # forward mode: the merchant endpoint's answer (relay/forwarding.py)
