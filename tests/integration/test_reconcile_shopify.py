"""Reconciliation for Shopify (README "Reconciliation"): the orders whose webhooks were lost are listed from the
GraphQL Admin API (a local one on loopback here, tests/support/shopify_api.py), each order node read as the REST
order its webhook would have carried, recorded with `origin: reconcile` and sent exactly once under the order's
identity and lead code; a refunded or cancelled order is recorded reversed and never sent."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import trustme

from postback_relay.core.conversion import lead_code
from postback_relay.core.reconcile import Tally, Window, settled_window
from postback_relay.relay.reconciling import NotReconcilable, listing_for, reconciler_for
from postback_relay.runtime import get_runtime, reset_runtime
from postback_relay_dev.sandbox import TrafficStarsSandbox
from tests.integration.platforms import test_shopify as shopify
from tests.integration.test_cli import LocalRun, local_run
from tests.integration.test_cli import run as run_cli
from tests.integration.test_reconcile import HOUR, accepted_lead_codes, click
from tests.support.aws import Aws
from tests.support.constants import TEST_KEY, TEST_SOURCE_SECRETS
from tests.support.helpers import Invoker
from tests.support.shopify_api import ADMIN_TOKEN, ShopifyApi

FIRST_ORDER = 5_310_000_000_000
__all__ = ["local_run"]  # the fixture (tests/integration/test_cli.py)


@pytest.fixture(scope="session")
def shopify_server(authority: trustme.CA) -> Iterator[ShopifyApi]:
    server = ShopifyApi(authority).start()
    yield server
    server.stop()


@pytest.fixture
def shopify_api(shopify_server: ShopifyApi, relay_env: pytest.MonkeyPatch, aws: Aws) -> Iterator[ShopifyApi]:
    """The local Admin API as SHOPIFY_SHOP_URL, the custom app's read_orders token in the relay's secret."""
    shopify_server.state.reset()
    relay_env.setenv("SHOPIFY_SHOP_URL", shopify_server.base_url)
    aws.put_secret({"trafficstars_key": TEST_KEY, **TEST_SOURCE_SECRETS, "shopify_admin_token": ADMIN_TOKEN})
    reset_runtime()
    yield shopify_server
    shopify_server.state.reset()


def order_id(number: int) -> int:
    return FIRST_ORDER + number


def purchase(number: int) -> str:
    return f"shopify#{order_id(number)}"


def stamp(moment: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(moment))


def node(
    number: int,
    updated: float,
    status: str = "PAID",
    click_in: str = "attribute",
    cancelled: bool = False,
    total: str = "59.99",
    current: str | None = None,
) -> dict[str, Any]:
    """Order ``number`` as the GraphQL Admin API lists it (the fields the relay's query asks for): its click id
    in a cart attribute, or in the landing page of the visit that placed it."""
    attributes = [{"key": "gift_note", "value": "Happy birthday"}]
    landing = "https://example.myshopify.com/"
    if click_in == "attribute":
        attributes.append({"key": "click_id", "value": click(number)})
    else:
        landing = f"https://example.myshopify.com/products/hoodie?utm_source=trafficstars&click_id={click(number)}"
    return {
        "id": f"gid://shopify/Order/{order_id(number)}",
        "legacyResourceId": str(order_id(number)),
        "name": f"#{1000 + number}",
        "test": False,
        "displayFinancialStatus": status,
        "createdAt": stamp(updated - 5),
        "processedAt": stamp(updated - 5),
        "updatedAt": stamp(updated),
        "cancelledAt": stamp(updated) if cancelled else None,
        "totalPriceSet": {"shopMoney": {"amount": total, "currencyCode": "USD"}},
        "currentTotalPriceSet": {"shopMoney": {"amount": current or total, "currencyCode": "USD"}},
        "customAttributes": attributes,
        "customerJourneySummary": {
            "firstVisit": {"landingPage": "https://example.myshopify.com/blogs/news"},
            "lastVisit": {"landingPage": landing},
        },
    }


def nodes(count: int, start: float | None = None) -> list[dict[str, Any]]:
    first = start if start is not None else time.time() - 3 * HOUR
    return [node(number, first + number) for number in range(count)]


def webhook(invoke: Invoker, number: int, topic: str = "orders/paid", click_in: str = "attribute") -> Any:
    """Order ``number``'s webhook, as Shopify posts it (the REST order of tests/integration/platforms/
    test_shopify.py, written apart from the GraphQL node above), signed."""
    payload = shopify.order(order_id=order_id(number), click_id=click(number), in_landing_site=click_in != "attribute")
    return shopify.deliver(invoke, topic, payload)


def reconcile(dry_run: bool = False, since: float | None = None) -> Tally:
    now = time.time()
    relay = get_runtime().relay
    window = settled_window(
        since if since is not None else now - 7 * 86_400, None, now, relay.settings.reconcile_settle_seconds
    )
    return reconciler_for(relay, "shopify", now).run(window, dry_run)


def order_queries(api: ShopifyApi) -> list[dict[str, Any]]:
    return [r for r in api.state.requests if "ReconcileOrders" in str(r.get("query"))]


class TestLostWebhooksAreRecovered:
    def test_the_orders_never_delivered_are_recorded_and_sent_once_with_their_webhooks_lead_code(
        self, invoke: Invoker, shopify_api: ShopifyApi, sandbox: TrafficStarsSandbox, aws: Aws
    ) -> None:
        shopify_api.state.orders.extend(nodes(10))
        for number in range(3):  # the other seven were lost (Shopify gives up after 8 tries)
            assert webhook(invoke, number).status == 200
        tally = reconcile()
        assert (tally.listed, tally.already_recorded, dict(tally.recovered), tally.errors) == (10, 3, {"sent": 7}, [])
        assert sorted(accepted_lead_codes(sandbox)) == sorted(lead_code(purchase(n)) for n in range(10))
        recovered, delivered = aws.record(purchase(9)), aws.record(purchase(0))
        assert recovered is not None and (recovered["status"], recovered["origin"]) == ("sent", "reconcile")
        assert recovered["click_id"] == click(9) and recovered["detail_order_name"] == "#1009"
        assert delivered is not None and "origin" not in delivered

    def test_an_order_delivered_by_webhook_first_is_already_recorded(
        self, invoke: Invoker, shopify_api: ShopifyApi, sandbox: TrafficStarsSandbox, aws: Aws
    ) -> None:
        """The same order twice, by webhook (REST) and by the listing (GraphQL): one identity, one click id."""
        shopify_api.state.orders.append(node(4, time.time() - 2 * HOUR, click_in="landing page"))
        assert webhook(invoke, 4, click_in="landing page").status == 200
        items = aws.raw_items()
        tally = reconcile()
        assert (tally.listed, tally.already_recorded, sum(tally.recovered.values())) == (1, 1, 0)
        assert accepted_lead_codes(sandbox) == [lead_code(purchase(4))] and aws.raw_items() == items

    def test_a_webhook_arriving_after_the_reconcile_is_a_duplicate(
        self, invoke: Invoker, shopify_api: ShopifyApi, sandbox: TrafficStarsSandbox, aws: Aws
    ) -> None:
        shopify_api.state.orders.append(node(2, time.time() - 2 * HOUR, click_in="landing page"))
        assert reconcile().sent == 1
        record = aws.record(purchase(2))
        assert record is not None and record["click_id"] == click(2)  # read from the last visit's landing page
        late = webhook(invoke, 2, click_in="landing page")
        assert (late.status, late.body["status"]) == (200, "duplicate")
        assert accepted_lead_codes(sandbox) == [lead_code(purchase(2))]

    def test_a_second_run_sends_nothing_and_writes_nothing(
        self, shopify_api: ShopifyApi, sandbox: TrafficStarsSandbox, aws: Aws
    ) -> None:
        shopify_api.state.orders.extend(nodes(5))
        assert reconcile().sent == 5
        items = aws.raw_items()
        again = reconcile()
        assert (again.listed, again.already_recorded, sum(again.recovered.values())) == (5, 5, 0)
        assert aws.raw_items() == items and len(sandbox.state.received) == 5

    def test_every_page_is_read(self, shopify_api: ShopifyApi, sandbox: TrafficStarsSandbox) -> None:
        shopify_api.state.orders.extend(nodes(250))
        tally = reconcile()
        assert (tally.listed, tally.sent, tally.pages, tally.cursor) == (250, 250, 3, None)
        queries = order_queries(shopify_api)
        assert [q["variables"]["after"] is None for q in queries] == [True, False, False]
        assert "sortKey: UPDATED_AT" in queries[0]["query"] and "first: 100" in queries[0]["query"]

    def test_the_window_is_asked_for_by_update_time(self, shopify_api: ShopifyApi) -> None:
        now = time.time()
        old, recent = node(1, now - 9 * 86_400), node(2, now - 2 * HOUR)
        shopify_api.state.orders.extend([old, recent])
        tally = reconcile(since=now - 7 * 86_400)
        assert tally.listed == 1
        [query] = order_queries(shopify_api)
        assert query["variables"]["query"].startswith(f"updated_at:>='{stamp(now - 7 * 86_400)[:13]}")

    def test_orders_younger_than_the_settle_time_are_left_to_their_webhooks(
        self, shopify_api: ShopifyApi, sandbox: TrafficStarsSandbox
    ) -> None:
        shopify_api.state.orders.extend(nodes(2, start=time.time() - 60))
        assert reconcile().listed == 0 and sandbox.state.received == []


class TestReversals:
    @pytest.mark.parametrize(
        ("status", "cancelled", "kind"), [("REFUNDED", False, "refunded"), ("PAID", True, "cancelled")]
    )
    def test_an_order_reversed_before_the_run_is_recorded_reversed_and_never_sent(
        self,
        invoke: Invoker,
        shopify_api: ShopifyApi,
        sandbox: TrafficStarsSandbox,
        aws: Aws,
        status: str,
        cancelled: bool,
        kind: str,
    ) -> None:
        shopify_api.state.orders.append(node(1, time.time() - 2 * HOUR, status=status, cancelled=cancelled))
        tally = reconcile()
        record = aws.record(purchase(1))
        assert dict(tally.reversals) == {kind: 1} and sandbox.state.received == []
        assert record is not None and record["status"] == kind
        late = webhook(invoke, 1)  # its orders/paid, finally delivered
        assert late.status == 200 and sandbox.state.received == []

    def test_a_refund_it_finds_marks_the_order_the_webhook_delivered(
        self, invoke: Invoker, shopify_api: ShopifyApi, sandbox: TrafficStarsSandbox, aws: Aws
    ) -> None:
        assert webhook(invoke, 3).status == 200
        shopify_api.state.orders.append(node(3, time.time() - HOUR, status="REFUNDED", current="0.00"))
        tally = reconcile()
        record = aws.record(purchase(3))
        assert dict(tally.reversals) == {"refunded": 1} and len(sandbox.state.received) == 1
        assert record is not None and record["status"] == "refunded"

    def test_a_partially_refunded_order_never_delivered_is_sent_once_then_marked(
        self, shopify_api: ShopifyApi, sandbox: TrafficStarsSandbox, aws: Aws
    ) -> None:
        """As its webhooks would have had it: orders/paid (sent), then the partial refund (noted)."""
        shopify_api.state.orders.append(
            node(5, time.time() - 2 * HOUR, status="PARTIALLY_REFUNDED", total="59.99", current="39.99")
        )
        tally = reconcile()
        record = aws.record(purchase(5))
        assert (tally.sent, dict(tally.reversals)) == (1, {"partially_refunded": 1})
        assert accepted_lead_codes(sandbox) == [lead_code(purchase(5))]
        assert [r.params["value"] for r in sandbox.state.received] == ["59.99"]
        assert record is not None and (record["status"], record["reversal_kind"]) == ("sent", "partially_refunded")

    @pytest.mark.parametrize("status", ["PENDING", "AUTHORIZED", "VOIDED", "EXPIRED"])
    def test_an_order_never_paid_is_ignored(
        self, shopify_api: ShopifyApi, sandbox: TrafficStarsSandbox, aws: Aws, status: str
    ) -> None:
        shopify_api.state.orders.append(node(6, time.time() - 2 * HOUR, status=status))
        tally = reconcile()
        assert (tally.listed, sum(tally.ignored.values())) == (1, 1)
        assert sandbox.state.received == [] and aws.record(purchase(6)) is None


class TestDryRun:
    def test_it_changes_nothing_and_shows_what_would_be_sent(
        self, invoke: Invoker, shopify_api: ShopifyApi, sandbox: TrafficStarsSandbox, aws: Aws
    ) -> None:
        shopify_api.state.orders.extend(nodes(3))
        webhook(invoke, 0)
        items, received = aws.raw_items(), len(sandbox.state.received)
        tally = reconcile(dry_run=True)
        assert aws.raw_items() == items and len(sandbox.state.received) == received
        assert (tally.already_recorded, len(tally.would_record)) == (1, 2)
        shown = tally.would_record[0]
        assert (shown["conversion_id"], shown["click_id"]) == (purchase(1), click(1))
        assert "key=***" in shown["postback_url"] and TEST_KEY not in json.dumps(tally.as_dict())


class TestResuming:
    def test_a_pages_cursor_lists_the_rest_without_repeats(self, shopify_api: ShopifyApi) -> None:
        shopify_api.state.orders.extend(nodes(250))
        now = time.time()
        relay = get_runtime().relay
        listing = listing_for(relay.settings, relay.credential, "shopify", now)
        window = Window(now - 86_400, now - 600)
        first = next(iter(listing.pages(window)))
        assert len(first.events) == 100 and first.next_cursor is not None
        rest = [order["id"] for page in listing.pages(window, first.next_cursor) for order in page.events]
        seen = [order["id"] for order in first.events]
        assert len(rest) == 150 and not set(rest) & set(seen)
        assert sorted(seen + rest) == [order_id(n) for n in range(250)]


class TestTheApiPushesBack:
    def test_throttling_slows_the_run_without_failing_it(
        self, shopify_api: ShopifyApi, sandbox: TrafficStarsSandbox
    ) -> None:
        shopify_api.state.orders.extend(nodes(3))
        shopify_api.state.throttle = 2
        tally = reconcile()
        assert (tally.sent, tally.errors) == (3, [])
        assert len(order_queries(shopify_api)) == 3  # two THROTTLED, then the page

    def test_a_wrong_token_is_credentials_refused_without_the_token(
        self, shopify_api: ShopifyApi, aws: Aws, relay_env: pytest.MonkeyPatch
    ) -> None:
        wrong = "shpat_wrong_canary_0a1b"
        shopify_api.state.orders.extend(nodes(3))
        aws.put_secret({"trafficstars_key": TEST_KEY, **TEST_SOURCE_SECRETS, "shopify_admin_token": wrong})
        reset_runtime()
        tally = reconcile()
        [error] = tally.errors
        assert error.startswith("credentials_refused: HTTP 401") and "Invalid API key or access token" in error
        assert wrong not in json.dumps(tally.as_dict()) and tally.listed == 0 and aws.items() == []

    def test_a_token_without_read_orders_is_credentials_refused(self, shopify_api: ShopifyApi, aws: Aws) -> None:
        shopify_api.state.orders.extend(nodes(3))
        shopify_api.state.denied = True
        [error] = reconcile().errors
        assert error.startswith("credentials_refused: ACCESS_DENIED") and "read_orders" in error
        assert aws.items() == []

    def test_landing_pages_withheld_leave_the_cart_attributes_to_carry_the_click_id(
        self, shopify_api: ShopifyApi, sandbox: TrafficStarsSandbox, aws: Aws
    ) -> None:
        now = time.time()
        shopify_api.state.orders.extend([node(1, now - 2 * HOUR), node(2, now - 2 * HOUR, click_in="landing page")])
        shopify_api.state.withheld = True
        tally = reconcile()
        assert (tally.listed, dict(tally.recovered), tally.errors) == (2, {"sent": 1, "no_click_id": 1}, [])
        record = aws.record(purchase(1))
        assert record is not None and record["click_id"] == click(1)

    def test_without_the_shop_url_it_says_which_setting_to_set(
        self, shopify_api: ShopifyApi, relay_env: pytest.MonkeyPatch
    ) -> None:
        relay_env.delenv("SHOPIFY_SHOP_URL")
        reset_runtime()
        with pytest.raises(NotReconcilable, match="SHOPIFY_SHOP_URL"):
            reconciler_for(get_runtime().relay, "shopify", time.time())

    def test_without_the_admin_token_it_says_which_key_to_add(self, shopify_api: ShopifyApi, aws: Aws) -> None:
        aws.put_secret({"trafficstars_key": TEST_KEY, **TEST_SOURCE_SECRETS})
        reset_runtime()
        with pytest.raises(NotReconcilable, match="shopify_admin_token"):
            reconciler_for(get_runtime().relay, "shopify", time.time())

    def test_a_window_beyond_60_days_is_said(self, shopify_api: ShopifyApi) -> None:
        assert reconcile(since=time.time() - 59 * 86_400).notes == []
        [note] = reconcile(since=time.time() - 75 * 86_400).notes
        assert "60 days" in note and "read_all_orders" in note

    def test_probe_reads_one_order_with_the_token(self, shopify_api: ShopifyApi) -> None:
        relay = get_runtime().relay
        listing_for(relay.settings, relay.credential, "shopify", time.time()).probe()
        [probe] = shopify_api.state.requests
        assert "orders(first: 1)" in probe["query"]


class TestTheCommand:
    """`postback-relay reconcile --source shopify` and `check`, against what `make run` starts."""

    @pytest.fixture
    def local(self, local_run: LocalRun, shopify_server: ShopifyApi, relay_env: pytest.MonkeyPatch) -> LocalRun:
        shopify_server.state.reset()
        relay_env.setenv("SHOPIFY_SHOP_URL", shopify_server.base_url)
        local_run.put_secret({"trafficstars_key": TEST_KEY, **TEST_SOURCE_SECRETS, "shopify_admin_token": ADMIN_TOKEN})
        reset_runtime()
        return local_run

    def test_a_run_sends_the_lost_orders_once(
        self,
        local: LocalRun,
        shopify_server: ShopifyApi,
        sandbox: TrafficStarsSandbox,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        shopify_server.state.orders.extend(nodes(3))
        done = run_cli(capsys, "--local", "--json", "reconcile", "--source", "shopify", "--since", "7d")
        assert done.code == 0 and (done.json()["listed"], done.json()["sent"]) == (3, 3)
        record = local.record(purchase(2))
        assert record is not None and record["origin"] == "reconcile" and len(sandbox.state.received) == 3
        again = run_cli(capsys, "--local", "--json", "reconcile", "--source", "shopify", "--since", "7d")
        assert (again.json()["already_recorded"], again.json()["recovered"]) == (3, 0)

    def test_check_reads_one_order_with_the_token_and_says_when_it_is_refused(
        self, local: LocalRun, shopify_server: ShopifyApi, capsys: pytest.CaptureFixture[str]
    ) -> None:
        good = run_cli(capsys, "--local", "check")
        [line] = [row for row in good.out.splitlines() if "reconcile shopify" in row]
        assert "OK" in line and [q["variables"] for q in shopify_server.state.requests] == [{}]
        shopify_server.state.token = "shpat_rotated_canary"
        bad = run_cli(capsys, "--local", "check")
        [line] = [row for row in bad.out.splitlines() if "reconcile shopify" in row]
        assert "FAIL" in line and "refused" in line and bad.code == 1 and ADMIN_TOKEN not in bad.out
