"""The relay's logic, orchestrated: verify → parse → record → attempt → record → schedule. This module only
orchestrates; each step is its own module here: verification.py (which secret
signed it), recording.py (what the payment counts as, and its record), sending.py (the attempt, its outcome,
retries and the sweep), reversals.py (refunds and chargebacks, before or after their purchase), forwarding.py
(forward mode: a verified request passed on to the merchant's own endpoint while the rest happens).

Invariants kept here: a 2xx only after the record is durable; one successful GET per identity; unsigned
input changes nothing; the key never leaves the network client and the secret store."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from aws_lambda_powertools import Logger

from postback_relay.aws.queue import RetryQueue
from postback_relay.aws.secrets import RelaySecrets, SecretStore
from postback_relay.aws.store import ConversionStore, StoreUnavailable
from postback_relay.core.conversion import Conversion, Ignored, Link, Reversal
from postback_relay.core.inbound import InboundRequest
from postback_relay.core.outcome import BadRequest, Outcome, PayloadTooLarge, RelayError, Unavailable
from postback_relay.core.ratelimit import TokenBucket
from postback_relay.core.record import UPGRADABLE
from postback_relay.core.tenant import DEFAULT_TENANT
from postback_relay.networks.trafficstars import TrafficStarsClient
from postback_relay.platforms.base import AnswersPings, MalformedEvent, SharedSource, WebhookSource
from postback_relay.platforms.checks import RequestSource
from postback_relay.relay.admission import admit
from postback_relay.relay.forwarding import Forwarder
from postback_relay.relay.recording import Recorder
from postback_relay.relay.reversals import Reverser
from postback_relay.relay.sending import Sender, tag_logs, tag_tenant
from postback_relay.relay.verification import Verifier
from postback_relay.settings import Settings

if TYPE_CHECKING:
    from postback_relay.core.reconcile import Recovered

logger = Logger(child=True)


class Relay:
    """Turns one verified webhook into at most one postback, with a durable record of what happened."""

    def __init__(
        self,
        settings: Settings,
        secrets: SecretStore,
        store: ConversionStore,
        client: TrafficStarsClient,
        queue: RetryQueue | None = None,
        clock: Callable[[], float] = time.time,
        tenant: str = DEFAULT_TENANT,
    ) -> None:
        self.settings = settings
        self.tenant = tenant  # every event this relay parses is this tenant's (its records are keyed so)
        self._secrets = secrets
        self._queue = queue
        self._verifier = Verifier(secrets, settings.signature_tolerance_seconds, clock)
        self._sender = Sender(
            store,
            client,
            secrets,
            queue,
            settings.retry_policy,
            settings.send_lease_seconds,
            settings.sweep_grace_seconds,
            clock,
            TokenBucket(settings.retry_rate_per_second),
        )
        self._store = store
        self._reverser = Reverser(store)
        self._recorder = Recorder(settings, store, client, self._sender, self._reverser)
        self._parse_context = settings.parse_context
        self._forwarder = Forwarder(
            settings.forward_urls, settings.forward_timeout_seconds, settings.forward_on_failure, settings.local_mode
        )

    def handle(
        self,
        source: WebhookSource,
        raw_body: bytes,
        headers: Mapping[str, str],
        request: InboundRequest | None = None,
    ) -> Outcome:
        """Process one webhook delivery; raises RelayError for answers that are not a processed event.
        ``request``: the whole request, forwarded once verified when its route is in forward mode."""
        self._within_limit(raw_body, "body")
        if isinstance(source, AnswersPings) and source.is_ping(raw_body, headers):
            logger.info("platform ping answered", extra={"source": source.name})
            return Outcome("ping", {"status": "ping"})
        secrets = self._verifier.verified(source, raw_body, headers)
        return self._forwarding(request, lambda: self._process(source, _json_body(raw_body), secrets))

    def handle_query(
        self,
        source: WebhookSource,
        raw_query: str,
        headers: Mapping[str, str],
        request: InboundRequest | None = None,
    ) -> Outcome:
        """Process one GET postback: the raw query string is what the sender authenticates and what the
        source reads, as ``parse_qsl`` pairs (API Gateway's comma-joined parameters would be ambiguous)."""
        raw = raw_query.encode("utf-8")
        self._within_limit(raw, "query")
        secrets = self._verifier.verified(source, raw, headers)
        pairs = parse_qsl(raw_query, keep_blank_values=True)
        return self._forwarding(request, lambda: self._process(source, pairs, secrets))

    def receive(self, source: RequestSource, request: InboundRequest) -> Outcome:
        """Process one biller notification: the platform set up (404 else), the source address allowed (403),
        each declared check passed (401), the payload the platform's shape (400); then as any event."""
        self._within_limit(request.body, "body")
        self._within_limit(request.raw_query.encode("utf-8"), "query")
        secrets = self._verifier.configured(source)
        admit(source, request.source_ip, self.settings.allowed_ips.get(source.name))
        secrets = self._verifier.checked(source, request, self._parse_context, secrets)

        def process() -> Outcome:
            try:
                payload = source.payload(request)
            except MalformedEvent as exc:
                raise BadRequest(str(exc)) from None
            return self._process(source, payload, secrets)

        return self._forwarding(request, process)

    def handle_shared(
        self,
        source: SharedSource,
        raw_body: bytes,
        headers: Mapping[str, str],
        find: Callable[[str, str], Relay | None],
        request: InboundRequest | None = None,
    ) -> Outcome:
        """A shared route's delivery (a Stripe Connect platform's endpoint, a Shopify app's): verified with the
        platform-wide secret held in this (the default tenant's) secret, then processed by the relay of the
        tenant ``find`` names for its account or shop, with that tenant's settings and key. An account no
        tenant claims is answered as an ignored event (the platform would retry anything else for days).
        Forwarded, in forward mode, to this (the default tenant's) target: the endpoint is the platform's."""
        self._within_limit(raw_body, "body")
        self._verifier.verified(source, raw_body, headers)

        def process() -> Outcome:
            payload = _json_body(raw_body)
            key = source.tenant_key(payload, headers)
            relay = find(source.lookup, key) if key else None
            if relay is None:
                logger.info("no tenant for this account", extra={"lookup": source.lookup, "account": key})
                return Outcome("ignored", {"status": "ignored", "reason": f"no tenant has {source.lookup} {key}"})
            tag_tenant(relay.tenant)
            return relay._process(source, payload, relay._verifier.current())

        return self._forwarding(request, process)

    def _forwarding(self, request: InboundRequest | None, process: Callable[[], Outcome]) -> Outcome:
        """Run ``process`` on a verified request; in forward mode, pass the request on to the merchant's endpoint
        meanwhile (in its own thread) and keep its answer with the outcome, or with the refusal that ended it.
        The answer is awaited either way, so no forward outlives its request (a frozen Lambda would hold it)."""
        pending = self._forwarder.start(request) if request is not None else None
        if pending is None:
            return process()
        try:
            outcome = process()
        except RelayError as error:
            error.forwarded = pending.result()
            raise
        return replace(outcome, forwarded=pending.result())

    def _within_limit(self, raw: bytes, what: str) -> None:
        """Refuse (413) a body or query larger than MAX_BODY_BYTES before anything reads it."""
        if len(raw) > self.settings.max_body_bytes:
            raise PayloadTooLarge(f"{what} is larger than {self.settings.max_body_bytes} bytes")

    def _process(self, source: WebhookSource | RequestSource, payload: Any, secrets: RelaySecrets) -> Outcome:
        event = self._parse(source, payload)
        if isinstance(event, Ignored):
            logger.info("event ignored", extra={"event_type": event.event_type, "reason": event.reason})
            return Outcome("ignored", {"status": "ignored", "reason": event.reason})
        return self._apply(event, secrets)

    def _parse(self, source: WebhookSource | RequestSource, payload: Any) -> Conversion | Reversal | Link | Ignored:
        """The platform's event, as this relay's tenant's; BadRequest (400) when it is not the platform's shape."""
        try:
            event = source.parse(payload, self._parse_context)
        except MalformedEvent as exc:
            raise BadRequest(str(exc)) from None
        if self.tenant != DEFAULT_TENANT and not isinstance(event, Ignored):
            event = replace(event, tenant=self.tenant)
        return event

    def _apply(self, event: Conversion | Reversal | Link, secrets: RelaySecrets) -> Outcome:
        tag_logs(event.event_id)
        try:
            if isinstance(event, Reversal):
                outcome = self._reverser.reverse(event)
            elif isinstance(event, Link):
                outcome = self._recorder.link(event)
            else:
                outcome = self._recorder.convert(event, secrets)
        except StoreUnavailable as exc:
            raise Unavailable(str(exc)) from None
        return replace(outcome, event_id=event.event_id, tenant=self.tenant)

    def recover(self, source: WebhookSource, payload: Any, dry_run: bool = False) -> Recovered:
        """One event a platform's API listed (relay/reconciling.py), in its webhook's shape, trusted as the
        platform's since the relay fetched it with its own credentials. A purchase already recorded is left
        alone (``already_recorded``: nothing is written); a missing one is recorded with origin `reconcile`
        and sent as its webhook would have been; a reversal is applied as its webhook's would be. With
        ``dry_run`` nothing is written or sent: the answer says what would be (``would_record``, with the
        postback URL, key redacted; ``would_reverse``)."""
        from postback_relay.core.reconcile import Recovered  # reconcile runs only: off the webhook's cold start

        event = self._parse(source, payload)
        if isinstance(event, Ignored):
            return Recovered("ignored", Outcome("ignored", {"status": "ignored", "reason": event.reason}))
        if isinstance(event, Link):
            return Recovered("ignored", Outcome("ignored", {"status": "ignored", "reason": "a link, not a payment"}))
        if isinstance(event, Conversion):
            event = replace(event, origin="reconcile")
            try:
                recorded = self._store.get(event.identity)
            except StoreUnavailable as exc:
                raise Unavailable(str(exc)) from None
            upgrades = recorded is not None and recorded.get("status") in UPGRADABLE and event.click_id is not None
            if recorded is not None and not upgrades:  # (a record without a click id this event brings: upgraded)
                return Recovered("purchase", Outcome("already_recorded", {"status": "already_recorded"}))
            if dry_run:
                return Recovered("purchase", Outcome("would_record", self._recorder.preview(event), event.identity))
            return Recovered("purchase", self._apply(event, self._verifier.current()))
        if dry_run:
            return Recovered("reversal", Outcome("would_reverse", {"status": "would_reverse"}))
        return Recovered("reversal", self._apply(event, self._verifier.current()))

    def credential(self, field: str) -> str:
        """A key of this relay's secret (a platform API's read-only key, for reconciliation); SecretKeyMissing
        when it is not there. Never logged: only the platform's API client holds it."""
        return self._verifier.current().value(field)

    def retry(self, conversion_id: str, message_due_at: float | None = None) -> Outcome | None:
        """The retry worker's attempt at one conversion (see Sender.retry); None when it is not (or no longer)
        due. The secret is read before the claim: a claim without a key would only strand it."""
        return self._sender.retry(conversion_id, self._verifier.current(), message_due_at)

    def retire(self, conversion_id: str, message_due_at: float | None = None) -> Outcome | None:
        """The retry worker's attempt at a conversion of a tenant that no longer exists: made with no key, so
        it is never sent with another tenant's; it waits as any conversion without a key does, and ends
        failed (in the dead-letter queue, alarmed) when its retry window is spent."""
        return self._sender.retry(conversion_id, RelaySecrets({}), message_due_at)

    def sweep(self, deadline: Callable[[], bool] = lambda: False) -> int:
        """Re-queue the conversions whose due time passed (see Sender.sweep); returns how many."""
        return self._sender.sweep(deadline)


def _json_body(raw_body: bytes) -> Any:
    """A verified body as JSON; BadRequest (400) when it is not."""
    try:
        return json.loads(raw_body)
    except (ValueError, RecursionError):  # not JSON, not UTF-8/16/32, or nested deeper than Python recurses
        raise BadRequest("body is not valid JSON") from None
