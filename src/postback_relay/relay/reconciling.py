"""Reconciliation, orchestrated: a platform's listing of a window handed event by event to Relay.recover, the same
parse → record → send path as its webhooks (core/reconcile.py says why). This module only orchestrates; each
platform's listing is its own module in postback_relay/reconcile/.

Kept here: a listing that cannot be read ends the run with what it counted and the error said (an expired key
is the one to alarm on); a store that cannot be written stops the run. Either way the tally's cursor is the
start of the page that was not finished, so nothing is skipped past: the scheduled run resumes there
(relay/reconcile_schedule.py), and what this run recorded is then already recorded."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, NamedTuple, Protocol, runtime_checkable

from aws_lambda_powertools import Logger

from postback_relay.aws.secrets import SecretKeyMissing
from postback_relay.core.outcome import BadRequest, Unavailable
from postback_relay.core.reconcile import Page, Recovered, Tally, Window
from postback_relay.platforms import SOURCES
from postback_relay.platforms.base import WebhookSource
from postback_relay.reconcile import lemonsqueezy, paddle, shopify, stripe, woocommerce
from postback_relay.reconcile.api import ApiClient, ApiError
from postback_relay.relay.orchestration import Relay
from postback_relay.settings import Settings

logger = Logger(child=True)

Progress = Callable[[int, int], None]  # (events done, events listed)


class Listing(Protocol):
    """One platform's list API, read for a window: its events in the shape of its webhooks, page by page."""

    source: str

    def notes(self, window: Window) -> list[str]: ...

    def pages(self, window: Window, cursor: str | None = None) -> Iterator[Page]:
        """The window's pages from ``cursor`` (a page's ``next_cursor``; None: the first), each page's
        reversals first; ApiError when one cannot be read."""
        ...

    def probe(self) -> None:
        """One cheap read with the credential (`postback-relay check`); ApiError when it is refused."""
        ...


@runtime_checkable
class Described(Protocol):
    """A report-only platform's listing: what it says of a purchase the relay never saw (its number, date), so
    an operator finds it in the platform's dashboard; never a secret, nothing personal."""

    def describe(self, event: Any) -> dict[str, Any]: ...


Checkpoint = Callable[[Tally], None]  # called after each page, with the tally (its cursor: where to resume)


class Reconciler:
    """Recovers what ``listing`` lists for ``source`` through ``relay``; a ``report_only`` platform's run
    records nothing (its API cannot give what a record needs) and only says what the relay never saw."""

    def __init__(self, relay: Relay, source: WebhookSource, listing: Listing, report_only: bool = False) -> None:
        self._relay = relay
        self._source = source
        self._listing = listing
        self.report_only = report_only

    def run(
        self,
        window: Window,
        dry_run: bool = False,
        progress: Progress | None = None,
        cursor: str | None = None,
        checkpoint: Checkpoint | None = None,
        stop: Callable[[], bool] | None = None,
    ) -> Tally:
        """Reconcile ``window`` from ``cursor``: list it page by page, recover each event, count what became of
        each. After each page ``checkpoint`` sees the tally; when ``stop()`` says so (the Lambda's time is
        nearly spent) the run ends after the page it is on, and the tally's cursor says where to resume."""
        tally = Tally(notes=self._listing.notes(window), cursor=cursor, report_only=self.report_only)
        dry_run = dry_run or self.report_only
        fetched = 0
        try:
            for page in self._listing.pages(window, cursor):
                fetched += len(page.events)
                for event in page.events:
                    tally.listed += 1
                    if not self._recover(event, dry_run, tally):
                        return self._ended(tally)
                    if progress is not None:
                        progress(tally.listed, fetched)
                tally.pages += 1
                tally.cursor = page.next_cursor
                if checkpoint is not None:
                    checkpoint(tally)
                if tally.cursor is not None and stop is not None and stop():
                    break
        except ApiError as exc:
            tally.fail(exc.code, str(exc))
            logger.warning("reconcile listing failed", extra={"source": self._source.name, "error": exc.code})
        return self._ended(tally)

    def _recover(self, event: Any, dry_run: bool, tally: Tally) -> bool:
        """One event through Relay.recover; False when the store cannot be written (the run stops)."""
        try:
            recovered = self._relay.recover(self._source, event, dry_run)
            tally.add(recovered, self._described(event, recovered))
        except BadRequest as exc:
            tally.ignored["malformed"] += 1
            logger.warning("reconcile event malformed", extra={"source": self._source.name, "reason": str(exc)})
        except Unavailable as exc:
            tally.fail("store_unavailable", str(exc))
            return False
        return True

    def _described(self, event: Any, recovered: Recovered) -> dict[str, Any] | None:
        """What a report-only run says of a purchase never seen, when its listing says anything."""
        listing = self._listing
        if self.report_only and recovered.outcome.status == "would_record" and isinstance(listing, Described):
            return listing.describe(event)
        return None

    def _ended(self, tally: Tally) -> Tally:
        summary = {**tally.as_dict(), "would_record": None, "unseen": len(tally.unseen)}
        logger.info("reconciled", extra={"source": self._source.name, **summary})
        return tally


class NotReconcilable(Exception):
    """A platform reconciliation cannot serve (yet), or one whose read-only key is not in the secret."""


class KeyMissing(NotReconcilable):
    """The platform's read-only key is not in the secret: the platform is not reconciled, which the scheduled
    run takes as no fault (only a key that is there and a setting missing beside it is one)."""


class Platform(NamedTuple):
    """A platform reconciliation reads: the keys of its read-only credential in the relay's secret, how its
    listing is built from them (its API base from the settings, the run's request budget), and whether its
    API can only report (Lemon Squeezy's orders carry no custom data, so no click id)."""

    fields: tuple[str, ...]
    build: Callable[[Settings, list[str], float], Listing]
    report_only: bool = False


def _stripe(settings: Settings, credential: list[str], now: float) -> Listing:
    [key] = credential
    api = ApiClient(settings.stripe_api_base, stripe.StripeEvents.headers(key), key, settings.reconcile_max_requests)
    return stripe.StripeEvents(api, now)


def _woocommerce(settings: Settings, credential: list[str], now: float) -> Listing:
    key, secret = credential
    if settings.woocommerce_store_url is None:
        raise NotReconcilable("WOOCOMMERCE_STORE_URL is not set: the store's address (README, Reconciliation)")
    headers = woocommerce.WooCommerceOrders.headers(key, secret)
    api = ApiClient(settings.woocommerce_store_url, headers, secret, settings.reconcile_max_requests)
    return woocommerce.WooCommerceOrders(api)


def _shopify(settings: Settings, credential: list[str], now: float) -> Listing:
    [token] = credential
    if settings.shopify_shop_url is None:
        raise NotReconcilable("SHOPIFY_SHOP_URL is not set: https://<shop>.myshopify.com (README, Reconciliation)")
    headers = shopify.ShopifyOrders.headers(token)
    api = ApiClient(settings.shopify_shop_url, headers, token, settings.reconcile_max_requests)
    return shopify.ShopifyOrders(api, now)


def _lemonsqueezy(settings: Settings, credential: list[str], now: float) -> Listing:
    [key] = credential
    headers = lemonsqueezy.LemonSqueezyOrders.headers(key)
    api = ApiClient(settings.lemonsqueezy_api_base, headers, key, settings.reconcile_max_requests)
    return lemonsqueezy.LemonSqueezyOrders(api)


def _paddle(settings: Settings, credential: list[str], now: float) -> Listing:
    [key] = credential
    api = ApiClient(settings.paddle_api_base, paddle.PaddleEvents.headers(key), key, settings.reconcile_max_requests)
    return paddle.PaddleEvents(api, now)


# Every platform with a listing, by its source name.
PLATFORMS: dict[str, Platform] = {
    stripe.NAME: Platform((stripe.KEY_FIELD,), _stripe),
    woocommerce.NAME: Platform((woocommerce.KEY_FIELD, woocommerce.SECRET_FIELD), _woocommerce),
    shopify.NAME: Platform((shopify.TOKEN_FIELD,), _shopify),
    paddle.NAME: Platform((paddle.KEY_FIELD,), _paddle),
    lemonsqueezy.NAME: Platform((lemonsqueezy.KEY_FIELD,), _lemonsqueezy, report_only=True),
}


def reconciler_for(relay: Relay, source_name: str, now: float) -> Reconciler:
    """The reconciler of ``source_name`` for ``relay``'s tenant: its listing over its API, with the read-only
    credential of its secret; NotReconcilable when the platform has none, or its key or store URL is missing."""
    listing = listing_for(relay.settings, relay.credential, source_name, now)
    return Reconciler(relay, SOURCES[source_name], listing, PLATFORMS[source_name].report_only)


def listing_for(settings: Settings, credential: Callable[[str], str], source_name: str, now: float) -> Listing:
    """``source_name``'s listing under ``settings``, with the credential ``credential`` reads from the secret
    (raising SecretKeyMissing); what a run and `postback-relay check` both use."""
    platform = PLATFORMS.get(source_name)
    if platform is None:
        raise NotReconcilable(f"{source_name} cannot be reconciled (platforms: {', '.join(sorted(PLATFORMS))})")
    try:
        values = [credential(field) for field in platform.fields]
    except SecretKeyMissing as exc:
        raise KeyMissing(f"{exc}: add the platform's read-only key (README, Reconciliation)") from None
    return platform.build(settings, values, now)
