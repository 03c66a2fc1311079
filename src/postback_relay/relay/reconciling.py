"""Reconciliation, orchestrated: a platform's listing of a window handed event by event to Relay.recover, the same
parse → record → send path as its webhooks (core/reconcile.py says why). This module only orchestrates; each
platform's listing is its own module in postback_relay/reconcile/.

Kept here: a listing that cannot be read ends the run with what it counted and the error said (an expired key
is the one to alarm on); a store that cannot be written stops the run (nothing is skipped past: the next run
covers the same window again, and what this one recorded is then already recorded)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from aws_lambda_powertools import Logger

from postback_relay.aws.secrets import SecretKeyMissing
from postback_relay.core.outcome import BadRequest, Unavailable
from postback_relay.core.reconcile import Tally, Window
from postback_relay.platforms import SOURCES
from postback_relay.platforms.base import WebhookSource
from postback_relay.reconcile import stripe, woocommerce
from postback_relay.reconcile.api import ApiClient, ApiError
from postback_relay.relay.orchestration import Relay
from postback_relay.settings import Settings

logger = Logger(child=True)

Progress = Callable[[int, int], None]  # (events done, events listed)


class Listing(Protocol):
    """One platform's list API, read for a window: its events in the shape of its webhooks, oldest first."""

    source: str

    def notes(self, window: Window) -> list[str]: ...

    def list(self, window: Window) -> list[Any]: ...

    def probe(self) -> None:
        """One cheap read with the credential (`postback-relay check`); ApiError when it is refused."""
        ...


class Reconciler:
    """Recovers what ``listing`` lists for ``source`` through ``relay``."""

    def __init__(self, relay: Relay, source: WebhookSource, listing: Listing) -> None:
        self._relay = relay
        self._source = source
        self._listing = listing

    def run(self, window: Window, dry_run: bool = False, progress: Progress | None = None) -> Tally:
        """Reconcile ``window``: list it, recover each event, count what became of each."""
        tally = Tally(notes=self._listing.notes(window))
        try:
            events = self._listing.list(window)
        except ApiError as exc:
            tally.errors.append(f"{exc.code}: {exc}")
            logger.warning("reconcile listing failed", extra={"source": self._source.name, "error": exc.code})
            return tally
        for done, event in enumerate(events, start=1):
            tally.listed += 1
            try:
                tally.add(self._relay.recover(self._source, event, dry_run))
            except BadRequest as exc:
                tally.ignored["malformed"] += 1
                logger.warning("reconcile event malformed", extra={"source": self._source.name, "reason": str(exc)})
            except Unavailable as exc:
                tally.errors.append(f"store_unavailable: {exc}")
                break
            if progress is not None:
                progress(done, len(events))
        logger.info("reconciled", extra={"source": self._source.name, **tally.as_dict(), "would_record": None})
        return tally


class NotReconcilable(Exception):
    """A platform reconciliation cannot serve (yet), or one whose read-only key is not in the secret."""


# The platforms with a listing, and the keys of the read-only credential each needs in the relay's secret.
CREDENTIALS: dict[str, tuple[str, ...]] = {
    stripe.NAME: (stripe.KEY_FIELD,),
    woocommerce.NAME: (woocommerce.KEY_FIELD, woocommerce.SECRET_FIELD),
}


def reconciler_for(relay: Relay, source_name: str, now: float) -> Reconciler:
    """The reconciler of ``source_name`` for ``relay``'s tenant: its listing over its API, with the read-only
    credential of its secret; NotReconcilable when the platform has none, or its key or store URL is missing."""
    listing = listing_for(relay.settings, relay.credential, source_name, now)
    return Reconciler(relay, SOURCES[source_name], listing)


def listing_for(settings: Settings, credential: Callable[[str], str], source_name: str, now: float) -> Listing:
    """``source_name``'s listing under ``settings``, with the credential ``credential`` reads from the secret
    (raising SecretKeyMissing); what a run and `postback-relay check` both use."""
    fields = CREDENTIALS.get(source_name)
    if fields is None:
        raise NotReconcilable(f"{source_name} cannot be reconciled (platforms: {', '.join(sorted(CREDENTIALS))})")
    try:
        values = [credential(field) for field in fields]
    except SecretKeyMissing as exc:
        raise NotReconcilable(f"{exc}: add the platform's read-only key (README, Reconciliation)") from None
    budget = settings.reconcile_max_requests
    if source_name == stripe.NAME:
        [key] = values
        api = ApiClient(settings.stripe_api_base, stripe.StripeEvents.headers(key), key, budget)
        return stripe.StripeEvents(api, now)
    key, secret = values
    if settings.woocommerce_store_url is None:
        raise NotReconcilable("WOOCOMMERCE_STORE_URL is not set: the store's address (README, Reconciliation)")
    headers = woocommerce.WooCommerceOrders.headers(key, secret)
    return woocommerce.WooCommerceOrders(ApiClient(settings.woocommerce_store_url, headers, secret, budget))
