"""Reconciliation (README "Reconciliation"): the purchases a platform never delivered are listed from its API (a
local Stripe API on loopback here, serving the documented list payloads), recorded with `origin: reconcile` and
sent exactly once, through the same path and under the same identity as their webhooks."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import trustme

from postback_relay.core.conversion import lead_code
from postback_relay.core.reconcile import Tally, Window, settled_window
from postback_relay.relay.reconciling import NotReconcilable, reconciler_for
from postback_relay.runtime import get_runtime, reset_runtime
from postback_relay_dev.sandbox import TrafficStarsSandbox
from tests.integration.platforms import test_woocommerce as woocommerce
from tests.integration.test_cli import LocalRun, local_run
from tests.integration.test_cli import run as run_cli
from tests.support.aws import Aws
from tests.support.constants import FAULT_FIGURES, TEST_KEY, TEST_SOURCE_SECRETS, TEST_STRIPE_SECRET
from tests.support.helpers import Invoker, charge_refunded, checkout_session, stripe_event
from tests.support.stripe_api import API_KEY, StripeApi
from tests.support.woocommerce_api import CONSUMER_KEY, CONSUMER_SECRET, WooCommerceApi

HOUR = 3600.0
__all__ = ["local_run"]  # the fixture (tests/integration/test_cli.py)


@pytest.fixture(scope="session")
def stripe_server(authority: trustme.CA) -> Iterator[StripeApi]:
    server = StripeApi(authority).start()
    yield server
    server.stop()


@pytest.fixture
def stripe_api(stripe_server: StripeApi, relay_env: pytest.MonkeyPatch, aws: Aws) -> Iterator[StripeApi]:
    """The local Stripe API as STRIPE_API_BASE, its restricted key in the relay's secret."""
    stripe_server.state.reset()
    relay_env.setenv("STRIPE_API_BASE", stripe_server.base_url)
    aws.put_secret(
        {
            "trafficstars_key": TEST_KEY,
            "stripe_webhook_secret": TEST_STRIPE_SECRET,
            **TEST_SOURCE_SECRETS,
            "stripe_api_key": API_KEY,
        }
    )
    reset_runtime()
    yield stripe_server
    stripe_server.state.reset()


def click(number: int) -> str:
    return hashlib.sha1(f"click-{number}".encode()).hexdigest()  # noqa: S324 - a 40-hex click id


def purchase_event(number: int, created: float) -> dict[str, Any]:
    """Purchase ``number``'s checkout.session.completed, as Stripe lists it and as it posts it."""
    session = checkout_session(payment_intent=f"pi_{number:05d}", click_id=click(number), session_id=f"cs_{number:05d}")
    event: dict[str, Any] = json.loads(
        stripe_event("checkout.session.completed", session, event_id=f"evt_{number:05d}")
    )
    event["created"] = int(created)
    return event


def purchases(count: int, start: float | None = None) -> list[dict[str, Any]]:
    first = start if start is not None else time.time() - 2 * HOUR
    return [purchase_event(number, first + number) for number in range(count)]


def deliver(invoke: Invoker, event: dict[str, Any]) -> Any:
    """The event as its webhook, signed."""
    return invoke.stripe(json.dumps(event).encode(), TEST_STRIPE_SECRET)


def reconcile(dry_run: bool = False, since: float | None = None) -> Tally:
    now = time.time()
    relay = get_runtime().relay
    window = settled_window(
        since if since is not None else now - 7 * 86_400, None, now, relay.settings.reconcile_settle_seconds
    )
    return reconciler_for(relay, "stripe", now).run(window, dry_run)


def accepted_lead_codes(sandbox: TrafficStarsSandbox) -> list[str]:
    return [r.params["lead_code"] for r in sandbox.state.received if r.answer.get("ok")]


class TestLostWebhooksAreRecovered:
    def test_the_purchases_never_delivered_are_recorded_and_sent_once(
        self, invoke: Invoker, stripe_api: StripeApi, sandbox: TrafficStarsSandbox, aws: Aws
    ) -> None:
        events = purchases(10)
        stripe_api.state.events.extend(events)
        for event in events[:3]:  # the others were lost in an outage
            assert deliver(invoke, event).status == 200
        tally = reconcile()
        assert (tally.listed, tally.already_recorded, dict(tally.recovered), tally.errors) == (10, 3, {"sent": 7}, [])
        codes = accepted_lead_codes(sandbox)
        assert sorted(codes) == sorted(lead_code(f"stripe#pi_{n:05d}") for n in range(10))  # each once, its own
        recovered = aws.record("stripe#pi_00009")
        webhook = aws.record("stripe#pi_00000")
        assert recovered is not None and (recovered["status"], recovered["origin"]) == ("sent", "reconcile")
        assert recovered["click_id"] == click(9) and recovered["first_event_id"] == "evt_00009"
        assert webhook is not None and "origin" not in webhook

    def test_a_webhook_arriving_after_the_reconcile_is_a_duplicate(
        self, invoke: Invoker, stripe_api: StripeApi, sandbox: TrafficStarsSandbox
    ) -> None:
        [event] = purchases(1)
        stripe_api.state.events.append(event)
        assert reconcile().sent == 1
        late = deliver(invoke, event)
        assert (late.status, late.body["status"]) == (200, "duplicate")
        assert len(sandbox.state.received) == 1

    def test_a_second_run_sends_nothing_and_writes_nothing(
        self, stripe_api: StripeApi, sandbox: TrafficStarsSandbox, aws: Aws
    ) -> None:
        stripe_api.state.events.extend(purchases(5))
        assert reconcile().sent == 5
        items = aws.raw_items()
        again = reconcile()
        assert (again.listed, again.already_recorded, sum(again.recovered.values())) == (5, 5, 0)
        assert aws.raw_items() == items and len(sandbox.state.received) == 5

    def test_a_refund_it_finds_marks_the_conversion(
        self, invoke: Invoker, stripe_api: StripeApi, sandbox: TrafficStarsSandbox, aws: Aws
    ) -> None:
        [sale] = purchases(1)
        deliver(invoke, sale)
        refund: dict[str, Any] = json.loads(stripe_event("charge.refunded", charge_refunded(pi="pi_00000")))
        refund["created"] = sale["created"] + 60
        stripe_api.state.events.append(refund)
        tally = reconcile()
        assert dict(tally.reversals) == {"refunded": 1}
        record = aws.record("stripe#pi_00000")
        assert record is not None and record["status"] == "refunded"

    def test_a_refunded_purchase_never_delivered_is_recorded_and_never_sent(
        self, stripe_api: StripeApi, sandbox: TrafficStarsSandbox, aws: Aws
    ) -> None:
        [sale] = purchases(1)
        refund: dict[str, Any] = json.loads(stripe_event("charge.refunded", charge_refunded(pi="pi_00000")))
        refund["created"] = sale["created"] + 60
        stripe_api.state.events.extend([sale, refund])  # the run applies what it finds reversed first
        reconcile()
        record = aws.record("stripe#pi_00000")
        assert record is not None and record["status"] == "refunded" and sandbox.state.received == []

    def test_events_younger_than_the_settle_time_are_left_to_their_webhooks(
        self, stripe_api: StripeApi, sandbox: TrafficStarsSandbox
    ) -> None:
        stripe_api.state.events.extend(purchases(2, start=time.time() - 60))
        assert reconcile().listed == 0 and sandbox.state.received == []

    def test_every_page_is_read(self, stripe_api: StripeApi, sandbox: TrafficStarsSandbox) -> None:
        stripe_api.state.events.extend(purchases(230))
        tally = reconcile()
        assert (tally.listed, tally.sent) == (230, 230)
        pages = [r for r in stripe_api.state.requests if "types[]" in r]
        assert len(pages) == 3 and pages[0].get("starting_after") is None


class TestDryRun:
    def test_it_changes_nothing_and_shows_what_would_be_sent_with_the_key_redacted(
        self, invoke: Invoker, stripe_api: StripeApi, sandbox: TrafficStarsSandbox, aws: Aws
    ) -> None:
        events = purchases(3)
        stripe_api.state.events.extend(events)
        deliver(invoke, events[0])
        items, received = aws.raw_items(), len(sandbox.state.received)
        tally = reconcile(dry_run=True)
        assert aws.raw_items() == items and len(sandbox.state.received) == received
        assert (tally.already_recorded, len(tally.would_record)) == (1, 2)
        shown = tally.would_record[0]
        assert (shown["conversion_id"], shown["status"], shown["click_id"]) == ("stripe#pi_00001", "sending", click(1))
        assert "key=***" in shown["postback_url"] and TEST_KEY not in json.dumps(tally.as_dict())


class TestTheApiPushesBack:
    def test_rate_limiting_slows_the_run_without_failing_it(
        self, stripe_api: StripeApi, sandbox: TrafficStarsSandbox
    ) -> None:
        stripe_api.state.events.extend(purchases(3))
        stripe_api.state.throttle = 2
        tally = reconcile()
        assert (tally.sent, tally.errors) == (3, [])
        assert len(stripe_api.state.requests) == 3  # two 429s, then the page

    def test_an_expired_key_is_reported_clearly_and_nothing_changes(
        self, stripe_api: StripeApi, sandbox: TrafficStarsSandbox, aws: Aws
    ) -> None:
        stripe_api.state.events.extend(purchases(3))
        stripe_api.state.expired = True
        tally = reconcile()
        [error] = tally.errors
        assert error.startswith("credentials_refused: HTTP 401") and "Expired API Key" in error
        assert API_KEY not in error and tally.listed == 0 and aws.items() == []

    def test_without_the_read_only_key_the_platform_cannot_be_reconciled(self, stripe_api: StripeApi, aws: Aws) -> None:
        aws.put_secret({"trafficstars_key": TEST_KEY, "stripe_webhook_secret": TEST_STRIPE_SECRET})
        reset_runtime()
        with pytest.raises(NotReconcilable, match="stripe_api_key"):
            reconciler_for(get_runtime().relay, "stripe", time.time())

    def test_a_window_beyond_stripes_30_days_is_said_and_read_from_the_objects_before_them(
        self, stripe_api: StripeApi
    ) -> None:
        tally = reconcile(since=time.time() - 45 * 86_400)
        assert tally.notes == [
            "Stripe keeps events for 30 days: the events before that were not available",
            "the part of the window before that was read from its Charges (refunds), Checkout Sessions, "
            "Invoices and PaymentIntents; a dispute opened there is not seen",
        ]
        assert int(stripe_api.state.requests[0]["created[gte]"][0]) >= time.time() - 30 * 86_400 - 60
        assert stripe_api.state.paths[1:] == [
            "/v1/charges",
            "/v1/checkout/sessions",
            "/v1/invoices",
            "/v1/payment_intents",
        ]  # tests/integration/test_reconcile_stripe_history.py: what they recover


def test_the_window_ends_at_the_settle_time() -> None:
    assert settled_window(100.0, None, 10_000.0, 900) == Window(100.0, 9_100.0)
    assert settled_window(100.0, 5_000.0, 10_000.0, 900) == Window(100.0, 5_000.0)
    with pytest.raises(ValueError, match="ends before it starts"):
        settled_window(9_500.0, None, 10_000.0, 900)


def test_a_thousand_purchases_with_a_tenth_never_delivered(
    invoke: Invoker, stripe_api: StripeApi, sandbox: TrafficStarsSandbox, aws: Aws
) -> None:
    """The issue's figure: 1,000 purchases, 100 of whose webhooks were lost; one run recovers exactly those."""
    events = purchases(1000, start=time.time() - 5 * HOUR)
    stripe_api.state.events.extend(events)
    lost = set(range(5, 1000, 10))
    for number, event in enumerate(events):
        if number not in lost:
            assert deliver(invoke, event).status == 200
    started = time.perf_counter()
    tally = reconcile()
    seconds = time.perf_counter() - started
    again = reconcile()
    assert (tally.listed, tally.already_recorded, dict(tally.recovered)) == (1000, 900, {"sent": 100})
    assert (again.already_recorded, sum(again.recovered.values())) == (1000, 0)
    codes = accepted_lead_codes(sandbox)
    assert len(codes) == len(set(codes)) == 1000
    pages = len([r for r in stripe_api.state.requests if "types[]" in r])
    FAULT_FIGURES.append(
        f"reconcile: 1000 listed in {pages // 2} pages, 900 already recorded, 100 recovered and sent "
        f"in {seconds:.1f} s; a second run recovered 0"
    )


class TestTheCommand:
    """`postback-relay reconcile --local` against what `make run` starts (tests/integration/test_cli.py's)."""

    @pytest.fixture
    def local(self, local_run: LocalRun, stripe_server: StripeApi, relay_env: pytest.MonkeyPatch) -> LocalRun:
        stripe_server.state.reset()
        relay_env.setenv("STRIPE_API_BASE", stripe_server.base_url)
        local_run.put_secret(
            {"trafficstars_key": TEST_KEY, "stripe_webhook_secret": TEST_STRIPE_SECRET, "stripe_api_key": API_KEY}
        )
        reset_runtime()
        return local_run

    def test_a_dry_run_shows_what_would_be_sent_then_a_run_sends_it_once(
        self,
        local: LocalRun,
        stripe_server: StripeApi,
        sandbox: TrafficStarsSandbox,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        stripe_server.state.events.extend(purchases(4))
        dry = run_cli(capsys, "--local", "--json", "reconcile", "--source", "stripe", "--since", "7d", "--dry-run")
        assert dry.code == 0
        document = dry.json()
        assert (document["dry_run"], document["listed"], len(document["would_record"])) == (True, 4, 4)
        assert local.record("stripe#pi_00000") is None and sandbox.state.received == []
        done = run_cli(capsys, "--local", "reconcile", "--source", "stripe", "--since", "7d")
        assert done.code == 0
        assert "listed            4" in done.out and "recovered         4" in done.out, done.out
        assert len(sandbox.state.received) == 4
        record = local.record("stripe#pi_00003")
        assert record is not None and record["origin"] == "reconcile"
        again = run_cli(capsys, "--local", "--json", "reconcile", "--source", "stripe", "--since", "7d")
        assert (again.json()["already_recorded"], again.json()["recovered"]) == (4, 0)

    def test_an_expired_key_is_an_error_the_summary_names(
        self, local: LocalRun, stripe_server: StripeApi, capsys: pytest.CaptureFixture[str]
    ) -> None:
        stripe_server.state.expired = True
        result = run_cli(capsys, "--local", "reconcile", "--source", "stripe", "--since", "24h")
        assert result.code == 1 and "error: credentials_refused" in result.out and API_KEY not in result.out

    def test_a_platform_without_its_key_is_a_problem_to_fix(
        self, local: LocalRun, capsys: pytest.CaptureFixture[str]
    ) -> None:
        local.put_secret({"trafficstars_key": TEST_KEY, "stripe_webhook_secret": TEST_STRIPE_SECRET})
        result = run_cli(capsys, "--local", "reconcile", "--source", "stripe", "--since", "24h")
        assert result.code == 2 and "stripe_api_key" in result.err

    def test_check_reads_one_item_of_each_list_with_the_key_and_says_when_it_is_refused(
        self, local: LocalRun, stripe_server: StripeApi, capsys: pytest.CaptureFixture[str]
    ) -> None:
        good = run_cli(capsys, "--local", "check")
        assert "reconcile stripe" in good.out, good.out
        [line] = [row for row in good.out.splitlines() if "reconcile stripe" in row]
        assert "OK" in line and [r.get("limit") for r in stripe_server.state.requests] == [["1"]] * 5
        assert stripe_server.state.paths == [
            "/v1/events",
            "/v1/charges",
            "/v1/checkout/sessions",
            "/v1/invoices",
            "/v1/payment_intents",
        ]
        stripe_server.state.expired = True
        bad = run_cli(capsys, "--local", "check")
        [line] = [row for row in bad.out.splitlines() if "reconcile stripe" in row]
        assert "FAIL" in line and "refused" in line and bad.code == 1 and API_KEY not in bad.out

    def test_a_tenant_is_reconciled_with_the_key_in_its_own_secret(
        self,
        local: LocalRun,
        stripe_server: StripeApi,
        sandbox: TrafficStarsSandbox,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        from postback_relay.aws.tenants import TenantDirectory
        from postback_relay.core.tenant import TenantConfig
        from postback_relay_dev import defaults
        from postback_relay_dev.resources import put_secret
        from tests.support.tenants import now_iso

        local.put_secret({"trafficstars_key": TEST_KEY, "stripe_webhook_secret": TEST_STRIPE_SECRET})  # no key
        put_secret(
            local.aws.secretsmanager,
            defaults.TENANT_SECRET_PREFIX + "acme",
            {"trafficstars_key": TEST_KEY, "stripe_webhook_secret": "whsec_acme", "stripe_api_key": API_KEY},
        )
        config = TenantConfig(
            "acme", frozenset({"stripe"}), {"TRAFFICSTARS_URL": sandbox.base_url}, updated_at=now_iso()
        )
        TenantDirectory(local.aws.dynamodb, defaults.TABLE_NAME, 300).save(config, None)
        stripe_server.state.events.extend(purchases(2))
        argv = ["--local", "--json", "reconcile", "--source", "stripe", "--since", "7d"]
        done = run_cli(capsys, *argv, "--tenant", "acme")
        assert done.code == 0, done.err
        assert (done.json()["tenant"], done.json()["sent"]) == ("acme", 2), json.dumps(done.json())
        assert local.record("acme/stripe#pi_00001") is not None and local.record("stripe#pi_00001") is None
        unknown = run_cli(capsys, *argv, "--tenant", "nobody")
        assert unknown.code == 2 and "nobody" in unknown.err


@pytest.fixture(scope="session")
def woo_server(authority: trustme.CA) -> Iterator[WooCommerceApi]:
    server = WooCommerceApi(authority).start()
    yield server
    server.stop()


@pytest.fixture
def woo_api(woo_server: WooCommerceApi, relay_env: pytest.MonkeyPatch, aws: Aws) -> Iterator[WooCommerceApi]:
    woo_server.state.reset()
    relay_env.setenv("WOOCOMMERCE_STORE_URL", woo_server.base_url)
    aws.put_secret(
        {
            "trafficstars_key": TEST_KEY,
            **TEST_SOURCE_SECRETS,
            "woocommerce_consumer_key": CONSUMER_KEY,
            "woocommerce_consumer_secret": CONSUMER_SECRET,
        }
    )
    reset_runtime()
    yield woo_server
    woo_server.state.reset()


def order(number: int, modified: float, status: str = "processing") -> dict[str, Any]:
    placed = woocommerce.wc_order(
        order_id=1000 + number, status=status, click_id=click(number), order_key=f"wc_order_{number:05d}"
    )
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(modified))
    return {**placed, "date_created_gmt": stamp, "date_modified_gmt": stamp}


def reconcile_woo(dry_run: bool = False) -> Tally:
    now = time.time()
    relay = get_runtime().relay
    window = settled_window(now - 7 * 86_400, None, now, relay.settings.reconcile_settle_seconds)
    return reconciler_for(relay, "woocommerce", now).run(window, dry_run)


class TestWooCommerce:
    """WooCommerce never retries a webhook and disables one after a few failures: its orders are listed back."""

    def test_orders_whose_webhooks_were_lost_are_recovered_once_and_a_second_run_sends_nothing(
        self, invoke: Invoker, woo_api: WooCommerceApi, sandbox: TrafficStarsSandbox, aws: Aws
    ) -> None:
        start = time.time() - 3 * HOUR
        orders = [order(n, start + n * 60) for n in range(150)]  # two pages
        woo_api.state.orders.extend(orders)
        for placed in orders[:50]:
            assert woocommerce.deliver(invoke, "order.created", placed).status == 200
        tally = reconcile_woo()
        assert (tally.listed, tally.already_recorded, dict(tally.recovered), tally.errors) == (
            150,
            50,
            {"sent": 100},
            [],
        )
        record = aws.record("woocommerce#1149:wc_order_00149")
        assert record is not None and (record["status"], record["origin"]) == ("sent", "reconcile")
        again = reconcile_woo()
        assert (again.already_recorded, sum(again.recovered.values())) == (150, 0)
        codes = accepted_lead_codes(sandbox)
        assert len(codes) == len(set(codes)) == 150
        [first] = woo_api.state.requests[:1]
        assert (first["dates_are_gmt"], first["order"], first["per_page"]) == ("true", "asc", "100")

    def test_an_order_refunded_before_the_run_is_recorded_refunded_and_never_sent(
        self, woo_api: WooCommerceApi, sandbox: TrafficStarsSandbox, aws: Aws
    ) -> None:
        woo_api.state.orders.append(order(1, time.time() - 2 * HOUR, status="refunded"))
        tally = reconcile_woo()
        record = aws.record("woocommerce#1001:wc_order_00001")
        assert dict(tally.reversals) == {"refunded": 1} and sandbox.state.received == []
        assert record is not None and record["status"] == "refunded"

    def test_a_refused_key_is_reported_without_the_secret(self, woo_api: WooCommerceApi, aws: Aws) -> None:
        aws.put_secret(
            {
                "trafficstars_key": TEST_KEY,
                "woocommerce_consumer_key": CONSUMER_KEY,
                "woocommerce_consumer_secret": "cs_wrong_canary",
            }
        )
        reset_runtime()
        [error] = reconcile_woo().errors
        assert error.startswith("credentials_refused: HTTP 401") and "cannot list resources" in error
        assert "cs_wrong_canary" not in error and aws.items() == []

    def test_without_the_store_url_it_says_which_setting_to_set(
        self, woo_api: WooCommerceApi, relay_env: pytest.MonkeyPatch
    ) -> None:
        relay_env.delenv("WOOCOMMERCE_STORE_URL")
        reset_runtime()
        with pytest.raises(NotReconcilable, match="WOOCOMMERCE_STORE_URL"):
            reconciler_for(get_runtime().relay, "woocommerce", time.time())
