"""Every row of the README's table "What each platform's events become", through the real Lambda handler:
payloads shaped as each platform documents them, signed as each platform signs, moto server for DynamoDB and
SQS, the HTTPS TrafficStars sandbox on loopback.

Each test pins the answer (HTTP status and the body's status), the GET TrafficStars received (its goal, value
and lead code) or that none was sent, and what the record says afterwards. A row whose moment needs what came
before it (a renewal needs its purchase, a dispute won needs the dispute) delivers the whole sequence.

The postbacks go out in the query form with a goal per kind (purchase 1001, renewal 1002; lead 1003 where a
test configures it), so the goalid of each GET says what the relay counted it as. `row(...)` ties each test
to its README row; `TestTheTable` checks that the table's rows and these cases are the same set, with the
same "becomes"."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode

import pytest

from postback_relay.handlers.http import STATUS_HEADER
from postback_relay.platforms import sign
from postback_relay.platforms.verotel import VEROTEL
from postback_relay.runtime import reset_runtime
from postback_relay_dev.sandbox import Received, TrafficStarsSandbox
from tests.support.aws import Aws
from tests.support.constants import TEST_SOURCE_SECRETS, TEST_STRIPE_SECRET
from tests.support.helpers import CLICK_ID, Invoker, Reply, stripe_event

README = Path(__file__).resolve().parents[2] / "README.md"
TABLE_HEADING = "## What each platform's events become"
GOALS = {"purchase": "1001", "renewal": "1002", "lead": "1003"}

# ---------------------------------------------------------------------------------------------------------------
# The cases: which README row each test is for, and what the row says the moment becomes.

Test = TypeVar("Test", bound=Callable[..., None])
CASES: dict[tuple[str, str], tuple[str, ...]] = {}


def row(platform: str, moment: str, *becomes: str) -> Callable[[Test], Test]:
    """Mark a test as one of the tests of the README row (platform, moment) that says it ``becomes``."""
    declared = CASES.setdefault((platform, moment), becomes)
    assert declared == becomes, f"{platform} / {moment}: declared as {declared} and as {becomes}"

    def mark(test: Test) -> Test:
        return test

    return mark


# Rows of a moment the platform has no event for: no handler test, but still cases of this module.
NOT_APPLICABLE = (
    ("Shopify", "trial start"),
    ("WooCommerce", "dispute/chargeback"),
    ("Lemon Squeezy", "dispute/chargeback"),
)
for _case in NOT_APPLICABLE:
    CASES[_case] = ("n/a",)


# ---------------------------------------------------------------------------------------------------------------
# The relay under test, and deliveries signed as each platform signs them.


@dataclass
class Shop:
    """The real handler behind moto and the sandbox, with one delivery method per platform."""

    invoke: Invoker
    aws: Aws
    sandbox: TrafficStarsSandbox
    env: pytest.MonkeyPatch

    def configure(self, **env: str) -> None:
        """Change settings; the handler re-reads them on its next invocation."""
        for name, value in env.items():
            self.env.setenv(name, value)
        reset_runtime()

    def with_lead_goal(self) -> None:
        self.configure(TRAFFICSTARS_GOAL_LEAD=GOALS["lead"])

    def in_the_path_form(self) -> None:
        """The default deployment: one goal per campaign, no goalid sent, so no lead goal."""
        for name in ("TRAFFICSTARS_URL_FORM", "TRAFFICSTARS_GOAL_PURCHASE", "TRAFFICSTARS_GOAL_RENEWAL"):
            self.env.delenv(name, raising=False)
        reset_runtime()

    def stripe(self, event_type: str, obj: dict[str, Any]) -> Reply:
        body = stripe_event(event_type, obj)
        return self.invoke(body, sign("stripe", body, TEST_STRIPE_SECRET))

    def paddle(self, event_type: str, data: dict[str, Any]) -> Reply:
        notification = {
            "event_id": f"evt_{uuid.uuid4().hex[:26]}",
            "event_type": event_type,
            "occurred_at": "2026-11-02T10:18:49.738971Z",
            "notification_id": f"ntf_{uuid.uuid4().hex[:26]}",
            "data": data,
        }
        body = json.dumps(notification).encode()
        headers = {**sign("paddle", body, TEST_SOURCE_SECRETS["paddle_webhook_secret"]), "User-Agent": "Paddle"}
        return self.invoke(body, headers, path="/webhooks/paddle", content_type="application/json")

    def shopify(self, topic: str, payload: dict[str, Any]) -> Reply:
        body = json.dumps(payload).encode()
        headers = {
            **sign("shopify", body, TEST_SOURCE_SECRETS["shopify_webhook_secret"]),
            "X-Shopify-Topic": topic,
            "X-Shopify-Shop-Domain": "example.myshopify.com",
            "X-Shopify-API-Version": "2026-10",
            "X-Shopify-Webhook-Id": str(uuid.uuid4()),
        }
        return self.invoke(body, headers, path="/webhooks/shopify")

    def woocommerce(self, topic: str, order: dict[str, Any]) -> Reply:
        # trim(wp_json_encode($payload)): PHP's json_encode, compact, slashes escaped
        body = json.dumps(order, separators=(",", ":")).replace("/", "\\/").encode()
        resource, _, event = topic.partition(".")
        headers = {
            **sign("woocommerce", body, TEST_SOURCE_SECRETS["woocommerce_webhook_secret"]),
            "User-Agent": "WooCommerce/9.4.2 Hookshot (WordPress/6.7.1)",
            "X-WC-Webhook-Source": "https://shop.example.com/",
            "X-WC-Webhook-Topic": topic,
            "X-WC-Webhook-Resource": resource,
            "X-WC-Webhook-Event": event,
            "X-WC-Webhook-ID": "12",
        }
        return self.invoke(body, headers, path="/webhooks/woocommerce", content_type="application/json")

    def lemonsqueezy(self, event_name: str, data: dict[str, Any], click_id: str | None = CLICK_ID) -> Reply:
        meta: dict[str, Any] = {"test_mode": False, "event_name": event_name, "webhook_id": "7d3e5c1a-2b4f"}
        if click_id:
            meta["custom_data"] = {"click_id": click_id}
        body = json.dumps({"meta": meta, "data": data}).encode()
        headers = {**sign("lemonsqueezy", body, TEST_SOURCE_SECRETS["lemonsqueezy_webhook_secret"])}
        headers["X-Event-Name"] = event_name
        return self.invoke(body, headers, path="/webhooks/lemonsqueezy", content_type="application/json")

    def ccbill(self, event_type: str, fields: dict[str, str]) -> Reply:
        """POST as CCBill does: the event type in the query (with the URL's token), from CCBill's range."""
        token = TEST_SOURCE_SECRETS["ccbill_webhook_token"]
        query = f"token={token}&" + urlencode(
            {"clientAccnum": "900000", "clientSubacc": "0000", "eventType": event_type}
        )
        body = json.dumps(fields).encode()
        return self.invoke(body, path="/webhooks/ccbill", query=query, source_ip="64.38.212.5")

    def verotel(self, params: dict[str, str]) -> Reply:
        """GET as Verotel does: the parameters signed with the signature key; its `OK` read as the status."""
        query = VEROTEL.sign_query(urlencode(params), TEST_SOURCE_SECRETS["verotel_signature_key"])
        reply = self.invoke(b"", path="/webhooks/verotel", method="GET", query=query)
        assert reply.status != 200 or reply.text == "OK", reply.text
        return replace(reply, body={"status": reply.headers[STATUS_HEADER]})  # what the relay made of it

    def segpay(self, **params: str) -> Reply:
        """A TransPost GET from an allowed address (Segpay publishes none: the test allows one), its text read."""
        self.configure(SEGPAY_ALLOWED_IPS="198.51.100.0/24")
        token = TEST_SOURCE_SECRETS["segpay_webhook_token"]
        query = f"token={token}&" + urlencode(params)
        reply = self.invoke(b"", path="/webhooks/segpay", method="GET", query=query, source_ip="198.51.100.20")
        assert reply.status != 200 or reply.text == "OK", reply.text
        return replace(reply, body={"status": reply.headers[STATUS_HEADER]})

    def epoch(self, **params: str) -> Reply:
        """A form POST as Epoch sends its approval postback and DataPlus, with the URL's token."""
        token = TEST_SOURCE_SECRETS["epoch_webhook_token"]
        form = "application/x-www-form-urlencoded"
        body = urlencode(params).encode()
        return self.invoke(
            body, path="/webhooks/epoch", query=f"token={token}", content_type=form, source_ip="208.236.105.10"
        )

    def tracker(self, **params: str) -> Reply:
        query = urlencode({"click_id": CLICK_ID, **params})
        headers = sign("postback", query.encode(), TEST_SOURCE_SECRETS["postback_token"])
        return self.invoke(b"", headers, path="/postback", method="GET", query=query)

    def record(self, pk: str) -> dict[str, Any]:
        record = self.aws.record(pk)
        assert record is not None, f"no record {pk}"
        return record

    @property
    def gets(self) -> list[Received]:
        return list(self.sandbox.state.received)

    def conversions(self) -> list[dict[str, Any]]:
        """The conversion records (not the subscriptions' memories nor the aliases)."""
        return [item for item in self.aws.items() if "status" in item]


@pytest.fixture
def shop(invoke: Invoker, aws: Aws, sandbox: TrafficStarsSandbox, relay_env: pytest.MonkeyPatch) -> Shop:
    shop = Shop(invoke, aws, sandbox, relay_env)
    shop.configure(
        TRAFFICSTARS_URL_FORM="query",
        TRAFFICSTARS_GOAL_PURCHASE=GOALS["purchase"],
        TRAFFICSTARS_GOAL_RENEWAL=GOALS["renewal"],
    )
    return shop


def answered(reply: Reply, status: str) -> None:
    assert (reply.status, reply.body["status"]) == (200, status), reply.body


def assert_sent(shop: Shop, pk: str, goal: str, value: str | None, get: int = -1, click_id: str = CLICK_ID) -> None:
    """The record ``pk`` is sent towards ``goal``, and GET number ``get`` is its postback."""
    record = shop.record(pk)
    assert (record["status"], record["goal"]) == ("sent", goal)
    received = shop.gets[get]
    assert received.click_id == click_id
    assert received.params.get("goalid") == (GOALS[goal] if received.form == "query" else None)
    assert received.params.get("value") == value
    assert received.params["lead_code"] == record["lead_code"]
    assert received.answer == {"ok": True}


def assert_nothing_stored_or_sent(shop: Shop) -> None:
    assert shop.conversions() == [] and shop.gets == []


def assert_reversed(
    shop: Shop, pk: str, status: str, kind: str, amount: str | None = None, dispute: str | None = None
) -> None:
    record = shop.record(pk)
    assert (record["status"], record.get("reversal_kind")) == (status, kind)
    assert record.get("reversal_amount") == amount
    assert record.get("dispute_status") == dispute


# Where a lead goal is configured (query form, TRAFFICSTARS_GOAL_LEAD), and where it is not: the query form with
# only the purchase and renewal goals, and the default deployment (the path form, one goal per campaign).
LEAD_CONFIGURATIONS = pytest.mark.parametrize("lead_goal", ["lead goal", "no lead goal", "path form"])


def configure_lead(shop: Shop, lead_goal: str) -> bool:
    """Configure one of LEAD_CONFIGURATIONS; whether a lead goal is configured."""
    if lead_goal == "lead goal":
        shop.with_lead_goal()
    elif lead_goal == "path form":
        shop.in_the_path_form()
    return lead_goal == "lead goal"


def assert_trial(shop: Shop, pk: str, lead: bool, gets: int = 1) -> None:
    """A trial start: a lead without a value where a lead goal is configured, else recorded not_counted."""
    if lead:
        assert_sent(shop, pk, "lead", None)
        assert len(shop.gets) == gets
    else:
        record = shop.record(pk)
        assert (record["status"], record["goal"]) == ("not_counted", "lead")  # what it would count towards
        assert "goalid=1001" not in str(record.get("postback_url"))
        assert shop.gets == []


UPGRADE_POLICIES = pytest.mark.parametrize("as_renewal", [False, True], ids=["default", "UPGRADES_COUNT_AS=renewal"])


def assert_upgrade(shop: Shop, reply: Reply, pk: str, as_renewal: bool, value: str, gets_before: int) -> None:
    if as_renewal:
        answered(reply, "sent")
        assert_sent(shop, pk, "renewal", value)
        assert len(shop.gets) == gets_before + 1
    else:
        answered(reply, "ignored")
        assert shop.aws.record(pk) is None
        assert len(shop.gets) == gets_before


# ---------------------------------------------------------------------------------------------------------------
# Stripe (API 2025-03-31 "basil" and later unless a test says otherwise)

STRIPE_SUB = "sub_lc_0001"


def stripe_session(
    *,
    mode: str = "payment",
    payment_status: str = "paid",
    pi: str | None = "pi_lc_0001",
    invoice: str | None = None,
    subscription: str | None = None,
    amount_total: int | None = 4900,
    amount_subtotal: int | None = None,
    client_reference_id: str | None = CLICK_ID,
    session_id: str = "cs_lc_0001",
) -> dict[str, Any]:
    """A Checkout Session as checkout.session.* events carry it; a Payment Link puts the click id of its URL
    (`?client_reference_id=…`) in client_reference_id."""
    return {
        "id": session_id,
        "object": "checkout.session",
        "mode": mode,
        "status": "complete",
        "payment_status": payment_status,
        "amount_subtotal": amount_total if amount_subtotal is None else amount_subtotal,
        "amount_total": amount_total,
        "currency": "usd" if amount_total is not None else None,
        "client_reference_id": client_reference_id,
        "metadata": {},
        "payment_intent": pi,
        "invoice": invoice,
        "subscription": subscription,
        "livemode": True,
    }


def stripe_invoice(
    invoice_id: str,
    billing_reason: str,
    *,
    amount_paid: int = 1900,
    subtotal: int | None = None,
    click_id: str | None = CLICK_ID,
    basil: bool = True,
    pi: str | None = None,
    charge: str | None = None,
) -> dict[str, Any]:
    """A paid invoice. Basil moved the subscription and its metadata under `parent` and dropped the invoice's
    payment_intent and charge (invoice_payment.paid names them instead)."""
    metadata = {"click_id": click_id} if click_id else {}
    obj: dict[str, Any] = {
        "id": invoice_id,
        "object": "invoice",
        "amount_due": amount_paid,
        "amount_paid": amount_paid,
        "subtotal": amount_paid if subtotal is None else subtotal,
        "total": amount_paid,
        "currency": "usd",
        "billing_reason": billing_reason,
        "metadata": {},
        "status": "paid",
        "livemode": True,
    }
    if basil:
        obj["parent"] = {
            "type": "subscription_details",
            "subscription_details": {"metadata": metadata, "subscription": STRIPE_SUB},
        }
    else:
        obj.update(
            subscription=STRIPE_SUB, subscription_details={"metadata": metadata}, payment_intent=pi, charge=charge
        )
    return obj


def stripe_invoice_payment(invoice_id: str, pi: str) -> dict[str, Any]:
    """An InvoicePayment (https://docs.stripe.com/api/invoice-payment/object)."""
    return {
        "id": f"inpay_{invoice_id[3:]}",
        "object": "invoice_payment",
        "amount_paid": 1900,
        "amount_requested": 1900,
        "currency": "usd",
        "invoice": invoice_id,
        "is_default": True,
        "livemode": True,
        "payment": {"type": "payment_intent", "payment_intent": pi},
        "status": "paid",
        "status_transitions": {"canceled_at": None, "paid_at": 1795000000},
    }


def stripe_payment_intent(
    pi: str, *, click_id: str | None = CLICK_ID, amount: int = 4900, invoice: str | None = None
) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "id": pi,
        "object": "payment_intent",
        "amount": amount,
        "amount_received": amount,
        "currency": "usd",
        "latest_charge": f"ch_{pi[3:]}",
        "metadata": {"click_id": click_id} if click_id else {},
        "status": "succeeded",
    }
    if invoice:
        obj["invoice"] = invoice  # before basil only
    return obj


def stripe_charge(
    *,
    charge_id: str = "ch_lc_0001",
    pi: str | None = "pi_lc_0001",
    invoice: str | None = None,
    amount: int = 4900,
    refunded: int = 4900,
) -> dict[str, Any]:
    """A charge as charge.refunded carries it: `amount_refunded` is cumulative, `refunded` true once it is all."""
    obj: dict[str, Any] = {
        "id": charge_id,
        "object": "charge",
        "amount": amount,
        "amount_refunded": refunded,
        "currency": "usd",
        "payment_intent": pi,
        "refunded": refunded == amount,
        "status": "succeeded",
    }
    if invoice:
        obj["invoice"] = invoice  # before basil only
    return obj


def stripe_dispute(status: str, *, pi: str = "pi_lc_0001", charge: str = "ch_lc_0001") -> dict[str, Any]:
    return {
        "id": "dp_lc_0001",
        "object": "dispute",
        "amount": 4900,
        "currency": "usd",
        "charge": charge,
        "payment_intent": pi,
        "reason": "fraudulent",
        "status": status,
    }


def stripe_purchase(shop: Shop) -> None:
    answered(shop.stripe("checkout.session.completed", stripe_session()), "sent")


class TestStripe:
    @row("Stripe", "first purchase", "purchase")
    @pytest.mark.parametrize(
        ("event_type", "obj", "pk", "value"),
        [
            ("checkout.session.completed", stripe_session(), "stripe#pi_lc_0001", "49.00"),
            (
                "checkout.session.async_payment_succeeded",
                stripe_session(payment_status="paid"),
                "stripe#pi_lc_0001",
                "49.00",
            ),
            ("payment_intent.succeeded", stripe_payment_intent("pi_lc_0001"), "stripe#pi_lc_0001", "49.00"),
            ("invoice.paid", stripe_invoice("in_lc_0001", "subscription_create"), "stripe#in_lc_0001", "19.00"),
        ],
        ids=["checkout", "async checkout", "payment intent", "first invoice"],
    )
    def test_a_first_paid_payment_is_sent_once_as_a_purchase(
        self, shop: Shop, event_type: str, obj: dict[str, Any], pk: str, value: str
    ) -> None:
        answered(shop.stripe(event_type, obj), "sent")
        assert_sent(shop, pk, "purchase", value)
        assert len(shop.gets) == 1

    @row("Stripe", "first purchase", "purchase")
    def test_a_subscriptions_checkout_session_and_its_first_invoice_are_one_purchase(self, shop: Shop) -> None:
        """A subscription's session names its invoice (no PaymentIntent since basil): the same identity."""
        session = stripe_session(mode="subscription", pi=None, invoice="in_lc_0001", subscription=STRIPE_SUB)
        answered(shop.stripe("checkout.session.completed", session), "sent")
        answered(shop.stripe("invoice.paid", stripe_invoice("in_lc_0001", "subscription_create")), "duplicate")
        assert_sent(shop, "stripe#in_lc_0001", "purchase", "49.00")
        assert len(shop.gets) == 1

    @row("Stripe", "trial start", "lead", "not_counted")
    @LEAD_CONFIGURATIONS
    def test_a_trial_start_is_a_lead_only_where_a_lead_goal_is_configured(self, shop: Shop, lead_goal: str) -> None:
        """The session (nothing to pay before discounts) and the trial's $0 first invoice are one trial start."""
        lead = configure_lead(shop, lead_goal)
        session = stripe_session(
            mode="subscription",
            payment_status="no_payment_required",
            pi=None,
            invoice="in_lc_trial",
            subscription=STRIPE_SUB,
            amount_total=0,
        )
        answered(shop.stripe("checkout.session.completed", session), "sent" if lead else "not_counted")
        trial_invoice = stripe_invoice("in_lc_trial", "subscription_create", amount_paid=0)
        answered(shop.stripe("invoice.paid", trial_invoice), "duplicate")
        assert_trial(shop, f"stripe#{STRIPE_SUB}:trial", lead)

    @row("Stripe", "trial start", "lead", "not_counted")
    @LEAD_CONFIGURATIONS
    def test_a_trials_zero_first_invoice_alone_is_the_trial_start(self, shop: Shop, lead_goal: str) -> None:
        lead = configure_lead(shop, lead_goal)
        trial_invoice = stripe_invoice("in_lc_trial", "subscription_create", amount_paid=0)
        answered(shop.stripe("invoice.paid", trial_invoice), "sent" if lead else "not_counted")
        assert_trial(shop, f"stripe#{STRIPE_SUB}:trial", lead)

    @row("Stripe", "first payment after a trial", "purchase")
    def test_the_first_paid_cycle_after_a_trial_is_the_purchase(self, shop: Shop) -> None:
        answered(
            shop.stripe("invoice.paid", stripe_invoice("in_lc_trial", "subscription_create", amount_paid=0)),
            "not_counted",
        )
        answered(shop.stripe("invoice.paid", stripe_invoice("in_lc_0002", "subscription_cycle")), "sent")
        assert_sent(shop, "stripe#in_lc_0002", "purchase", "19.00")
        assert len(shop.gets) == 1

    @row("Stripe", "first payment after a trial", "purchase")
    @row("Stripe", "renewal", "renewal")
    def test_a_payment_links_click_id_reaches_the_first_paid_cycle_and_the_renewals(self, shop: Shop) -> None:
        """A Payment Link puts the click id in the trial session's client_reference_id and nowhere else: the
        subscription's invoices carry no metadata. The relay remembers it for the subscription."""
        session = stripe_session(
            mode="subscription",
            payment_status="no_payment_required",
            pi=None,
            invoice="in_lc_trial",
            subscription=STRIPE_SUB,
            amount_total=0,
        )
        answered(shop.stripe("checkout.session.completed", session), "not_counted")
        trial_invoice = stripe_invoice("in_lc_trial", "subscription_create", amount_paid=0, click_id=None)
        answered(shop.stripe("invoice.paid", trial_invoice), "duplicate")
        first = stripe_invoice("in_lc_0002", "subscription_cycle", click_id=None)
        answered(shop.stripe("invoice.paid", first), "sent")
        second = stripe_invoice("in_lc_0003", "subscription_cycle", click_id=None)
        answered(shop.stripe("invoice.paid", second), "sent")
        assert_sent(shop, "stripe#in_lc_0002", "purchase", "19.00", get=0)
        assert_sent(shop, "stripe#in_lc_0003", "renewal", "19.00", get=1)
        assert len(shop.gets) == 2
        assert shop.record("stripe#in_lc_0002")["detail_click_id_from"] == "subscription"

    @row("Stripe", "renewal", "renewal")
    @pytest.mark.parametrize("reason", ["subscription_cycle", "subscription_threshold"])
    def test_a_paid_cycle_after_the_purchase_is_a_renewal(self, shop: Shop, reason: str) -> None:
        answered(shop.stripe("invoice.paid", stripe_invoice("in_lc_0001", "subscription_create")), "sent")
        answered(shop.stripe("invoice.paid", stripe_invoice("in_lc_0002", reason, amount_paid=2500)), "sent")
        assert_sent(shop, "stripe#in_lc_0001", "purchase", "19.00", get=0)
        assert_sent(shop, "stripe#in_lc_0002", "renewal", "25.00", get=1)
        assert len(shop.gets) == 2

    @row("Stripe", "renewal", "renewal")
    def test_a_cycle_of_a_subscription_whose_start_was_never_seen_is_a_renewal(self, shop: Shop) -> None:
        """Installed after the subscription started: the cycle is the renewal Stripe says it is."""
        answered(shop.stripe("invoice.paid", stripe_invoice("in_lc_0007", "subscription_cycle")), "sent")
        assert_sent(shop, "stripe#in_lc_0007", "renewal", "19.00")

    @row("Stripe", "upgrade or proration", "ignored")
    @UPGRADE_POLICIES
    def test_an_upgrade_invoice_is_neither_a_purchase_nor_a_renewal_unless_configured(
        self, shop: Shop, as_renewal: bool
    ) -> None:
        if as_renewal:
            shop.configure(UPGRADES_COUNT_AS="renewal")
        answered(shop.stripe("invoice.paid", stripe_invoice("in_lc_0001", "subscription_create")), "sent")
        reply = shop.stripe("invoice.paid", stripe_invoice("in_lc_upgrade", "subscription_update", amount_paid=500))
        assert_upgrade(shop, reply, "stripe#in_lc_upgrade", as_renewal, "5.00", gets_before=1)

    @row("Stripe", "upgrade or proration", "ignored")
    def test_an_upgrade_sent_as_a_renewal_borrows_the_click_id_the_subscription_started_with(self, shop: Shop) -> None:
        """A Payment Link subscription: no invoice carries the click id, so the upgrade takes the remembered one."""
        shop.configure(UPGRADES_COUNT_AS="renewal")
        session = stripe_session(mode="subscription", pi=None, invoice="in_lc_0001", subscription=STRIPE_SUB)
        answered(shop.stripe("checkout.session.completed", session), "sent")
        upgrade = stripe_invoice("in_lc_upgrade", "subscription_update", amount_paid=500, click_id=None)
        answered(shop.stripe("invoice.paid", upgrade), "sent")
        assert_sent(shop, "stripe#in_lc_upgrade", "renewal", "5.00")
        assert shop.record("stripe#in_lc_upgrade")["detail_click_id_from"] == "subscription"

    @row("Stripe", "$0 or 100 %-off order", "ignored")
    @pytest.mark.parametrize(
        ("event_type", "obj"),
        [
            (
                "checkout.session.completed",
                stripe_session(payment_status="no_payment_required", pi=None, amount_total=0, amount_subtotal=4900),
            ),
            (
                "checkout.session.completed",
                stripe_session(
                    mode="subscription",
                    payment_status="no_payment_required",
                    pi=None,
                    invoice="in_lc_free",
                    subscription=STRIPE_SUB,
                    amount_total=0,
                    amount_subtotal=1900,
                ),
            ),
            ("invoice.paid", stripe_invoice("in_lc_free", "subscription_create", amount_paid=0, subtotal=1900)),
            ("invoice.paid", stripe_invoice("in_lc_free", "subscription_cycle", amount_paid=0)),
        ],
        ids=["100 %-off order", "100 %-off subscription", "100 %-off first invoice", "$0 cycle"],
    )
    def test_a_zero_payment_is_never_a_sale(self, shop: Shop, event_type: str, obj: dict[str, Any]) -> None:
        answered(shop.stripe(event_type, obj), "ignored")
        assert_nothing_stored_or_sent(shop)

    @row("Stripe", "payment-method change", "ignored")
    def test_a_setup_session_is_ignored(self, shop: Shop) -> None:
        session = stripe_session(mode="setup", payment_status="no_payment_required", pi=None, amount_total=None)
        answered(shop.stripe("checkout.session.completed", session), "ignored")
        assert_nothing_stored_or_sent(shop)

    @row("Stripe", "full refund", "refunded")
    def test_a_full_refund_naming_the_payment_intent_marks_the_purchase(self, shop: Shop) -> None:
        stripe_purchase(shop)
        reply = shop.stripe("charge.refunded", stripe_charge())
        assert reply.body == {"status": "refunded", "conversion_id": "stripe#pi_lc_0001"}
        assert_reversed(shop, "stripe#pi_lc_0001", "refunded", "refunded", "49.00")
        assert len(shop.gets) == 1

    @row("Stripe", "full refund", "refunded")
    def test_a_full_refund_naming_only_the_charge_finds_the_payment_intents_purchase(self, shop: Shop) -> None:
        answered(shop.stripe("payment_intent.succeeded", stripe_payment_intent("pi_lc_0001")), "sent")
        answered(shop.stripe("charge.refunded", stripe_charge(charge_id="ch_lc_0001", pi=None)), "refunded")
        assert_reversed(shop, "stripe#pi_lc_0001", "refunded", "refunded", "49.00")

    @row("Stripe", "full refund", "refunded")
    @pytest.mark.parametrize("names", ["invoice", "payment_intent", "charge"])
    def test_a_full_refund_of_an_invoice_before_basil_finds_it_by_any_of_its_ids(self, shop: Shop, names: str) -> None:
        """Before 2025-03-31 the invoice names its PaymentIntent and charge; a charge names its invoice."""
        invoice = stripe_invoice("in_lc_0001", "subscription_create", basil=False, pi="pi_lc_0009", charge="ch_lc_0009")
        answered(shop.stripe("invoice.paid", invoice), "sent")
        ids = {"invoice": "in_lc_0001", "payment_intent": "pi_lc_0009", "charge": "ch_lc_0009"}
        refund = stripe_charge(
            charge_id=ids["charge"] if names == "charge" else "ch_lc_other",
            pi=ids["payment_intent"] if names == "payment_intent" else None,
            invoice=ids["invoice"] if names == "invoice" else None,
            amount=1900,
            refunded=1900,
        )
        reply = shop.stripe("charge.refunded", refund)
        assert (reply.body["status"], reply.body["conversion_id"]) == ("refunded", "stripe#in_lc_0001")
        assert_reversed(shop, "stripe#in_lc_0001", "refunded", "refunded", "19.00")

    @row("Stripe", "full refund", "refunded")
    def test_a_refund_delivered_before_its_purchase_makes_the_purchase_a_duplicate_never_sent(self, shop: Shop) -> None:
        """Stripe still retrying the paid event after an outage may deliver the refund first."""
        reply = shop.stripe("charge.refunded", stripe_charge())
        assert reply.body == {
            "status": "refunded",
            "conversion_id": "stripe#pi_lc_0001",
            "recorded_before_purchase": True,
        }
        reply = shop.stripe("checkout.session.completed", stripe_session())
        answered(reply, "duplicate")
        assert reply.body["conversion_status"] == "refunded"
        assert_reversed(shop, "stripe#pi_lc_0001", "refunded", "refunded", "49.00")
        assert shop.gets == []

    @row("Stripe", "full refund", "refunded")
    @pytest.mark.parametrize("link_first", [False, True], ids=["invoice first", "link first"])
    def test_a_refund_naming_only_the_payment_before_its_invoice_and_link_still_stops_the_invoice(
        self, shop: Shop, link_first: bool
    ) -> None:
        """API 2025-03-31: the refund names the PaymentIntent and charge only; the invoice and the
        invoice_payment.paid that links them come later, in either order (Stripe retrying after an outage)."""
        answered(shop.stripe("charge.refunded", stripe_charge(pi="pi_lc_sub")), "refunded")
        invoice_paid = ("invoice.paid", stripe_invoice("in_lc_0001", "subscription_create"))
        link = ("invoice_payment.paid", stripe_invoice_payment("in_lc_0001", "pi_lc_sub"))
        for event_type, obj in [link, invoice_paid] if link_first else [invoice_paid, link]:
            shop.stripe(event_type, obj)
        record = shop.record("stripe#in_lc_0001")
        assert record["status"] == "refunded"
        assert len(shop.gets) == (0 if link_first else 1)  # invoice first: sent before the link told it apart

    @row("Stripe", "partial refund", "noted")
    def test_a_partial_refund_is_noted_and_the_purchase_stays_sent(self, shop: Shop) -> None:
        stripe_purchase(shop)
        answered(shop.stripe("charge.refunded", stripe_charge(refunded=1500)), "partially_refunded")
        assert_reversed(shop, "stripe#pi_lc_0001", "sent", "partially_refunded", "15.00")
        assert len(shop.gets) == 1

    @row("Stripe", "partial refund", "noted")
    def test_a_partial_refund_does_not_stop_a_conversion_still_waiting(
        self, shop: Shop, fast_retries: pytest.MonkeyPatch
    ) -> None:
        shop.sandbox.state.fault = lambda received: (503, "")
        answered(shop.stripe("checkout.session.completed", stripe_session()), "retry_pending")
        answered(shop.stripe("charge.refunded", stripe_charge(refunded=1500)), "partially_refunded")
        shop.sandbox.state.fault = None
        shop.aws.drain()
        assert_reversed(shop, "stripe#pi_lc_0001", "sent", "partially_refunded", "15.00")
        assert_sent(shop, "stripe#pi_lc_0001", "purchase", "49.00")
        assert len(shop.sandbox.state.accepted()) == 1

    @row("Stripe", "dispute/chargeback", "charged_back")
    def test_a_dispute_marks_the_purchase_charged_back(self, shop: Shop) -> None:
        stripe_purchase(shop)
        answered(shop.stripe("charge.dispute.created", stripe_dispute("needs_response")), "charged_back")
        assert_reversed(shop, "stripe#pi_lc_0001", "charged_back", "charged_back", "49.00", dispute="opened")
        assert len(shop.gets) == 1

    @row("Stripe", "dispute won", "noted")
    def test_a_dispute_won_is_noted_and_the_status_stays(self, shop: Shop) -> None:
        stripe_purchase(shop)
        answered(shop.stripe("charge.dispute.created", stripe_dispute("needs_response")), "charged_back")
        answered(shop.stripe("charge.dispute.closed", stripe_dispute("won")), "dispute_won")
        assert_reversed(shop, "stripe#pi_lc_0001", "charged_back", "charged_back", "49.00", dispute="won")
        assert len(shop.gets) == 1

    @row("Stripe", "dispute lost", "charged_back")
    def test_a_dispute_lost_is_a_chargeback(self, shop: Shop) -> None:
        stripe_purchase(shop)
        answered(shop.stripe("charge.dispute.created", stripe_dispute("needs_response")), "charged_back")
        answered(shop.stripe("charge.dispute.closed", stripe_dispute("lost")), "dispute_lost")
        assert_reversed(shop, "stripe#pi_lc_0001", "charged_back", "charged_back", "49.00", dispute="lost")
        assert len(shop.gets) == 1

    @row("Stripe", "cancellation", "ignored")
    def test_a_cancelled_subscription_keeps_its_sale(self, shop: Shop) -> None:
        answered(shop.stripe("invoice.paid", stripe_invoice("in_lc_0001", "subscription_create")), "sent")
        subscription = {"id": STRIPE_SUB, "object": "subscription", "status": "canceled", "metadata": {}}
        answered(shop.stripe("customer.subscription.deleted", subscription), "ignored")
        assert_sent(shop, "stripe#in_lc_0001", "purchase", "19.00")
        assert len(shop.conversions()) == 1 and len(shop.gets) == 1

    @row("Stripe", "another id of a payment", "linked")
    def test_an_invoice_payment_links_the_payment_intent_so_its_refund_marks_the_invoice(self, shop: Shop) -> None:
        """Since basil a charge names no invoice and an invoice no PaymentIntent: invoice_payment.paid is the
        only object that names both."""
        answered(shop.stripe("invoice.paid", stripe_invoice("in_lc_0001", "subscription_create")), "sent")
        reply = shop.stripe("invoice_payment.paid", stripe_invoice_payment("in_lc_0001", "pi_lc_0005"))
        assert reply.body == {"status": "linked", "conversion_id": "stripe#in_lc_0001"}
        reply = shop.stripe(
            "charge.refunded", stripe_charge(charge_id="ch_lc_0005", pi="pi_lc_0005", amount=1900, refunded=1900)
        )
        assert reply.body == {"status": "refunded", "conversion_id": "stripe#in_lc_0001"}
        assert_reversed(shop, "stripe#in_lc_0001", "refunded", "refunded", "19.00")
        assert len(shop.gets) == 1

    @row("Stripe", "another id of a payment", "linked")
    def test_a_refund_by_a_linked_id_stops_a_conversion_still_waiting_to_be_sent(
        self, shop: Shop, fast_retries: pytest.MonkeyPatch
    ) -> None:
        shop.sandbox.state.fault = lambda received: (503, "")
        reply = shop.stripe("invoice.paid", stripe_invoice("in_lc_0001", "subscription_create"))
        answered(reply, "retry_pending")
        answered(shop.stripe("invoice_payment.paid", stripe_invoice_payment("in_lc_0001", "pi_lc_0005")), "linked")
        reply = shop.stripe(
            "charge.refunded", stripe_charge(charge_id="ch_lc_0005", pi="pi_lc_0005", amount=1900, refunded=1900)
        )
        assert reply.body == {"status": "refunded", "conversion_id": "stripe#in_lc_0001"}
        shop.sandbox.state.fault = None
        shop.aws.drain()
        record = shop.record("stripe#in_lc_0001")
        assert (record["status"], record["status_before_reversal"]) == ("refunded", "retry_pending")
        assert "due_at" not in record
        assert [r.http_status for r in shop.gets] == [503]  # the failed attempt, and nothing after the refund

    @row("Stripe", "another id of a payment", "linked")
    def test_a_payment_intent_naming_its_invoice_before_basil_is_linked_to_the_invoice(self, shop: Shop) -> None:
        answered(shop.stripe("invoice.paid", stripe_invoice("in_lc_0001", "subscription_create")), "sent")
        intent = stripe_payment_intent("pi_lc_0006", amount=1900, invoice="in_lc_0001")
        reply = shop.stripe("payment_intent.succeeded", intent)
        assert reply.body == {"status": "linked", "conversion_id": "stripe#in_lc_0001"}
        refund = stripe_charge(charge_id="ch_lc_0006", pi=None, amount=1900, refunded=1900)  # its latest_charge
        answered(shop.stripe("charge.refunded", refund), "refunded")
        assert_reversed(shop, "stripe#in_lc_0001", "refunded", "refunded", "19.00")
        assert len(shop.conversions()) == 1 and len(shop.gets) == 1


# ---------------------------------------------------------------------------------------------------------------
# Paddle Billing

PADDLE_SUB = "sub_01hv8x29kz0t586xy6zn1a62ny"


def paddle_transaction(
    txn: str,
    *,
    origin: str = "web",
    grand_total: str = "4900",
    subtotal: str | None = None,
    click_id: str | None = CLICK_ID,
    subscription: str | None = PADDLE_SUB,
) -> dict[str, Any]:
    """A transaction as transaction.completed carries it (Paddle's SDK fixture, trimmed)."""
    subtotal = grand_total if subtotal is None else subtotal
    discount = str(int(subtotal) - int(grand_total))
    return {
        "id": txn,
        "status": "completed",
        "customer_id": "ctm_01hv6y1jedq4p1n0yqn5ba3ky4",
        "custom_data": {"click_id": click_id} if click_id else None,
        "origin": origin,
        "collection_mode": "automatic",
        "subscription_id": subscription,
        "currency_code": "USD",
        "billed_at": "2026-11-02T10:18:48.294633Z",
        "details": {
            "totals": {
                "subtotal": subtotal,
                "discount": discount,
                "tax": "0",
                "total": grand_total,
                "grand_total": grand_total,
                "currency_code": "USD",
            }
        },
    }


def paddle_adjustment(
    action: str, *, txn: str = "txn_lc_0001", kind: str = "full", status: str = "approved", total: str = "4900"
) -> dict[str, Any]:
    return {
        "id": "adj_01hvgf2s84dr6reszzg29zbvcm",
        "action": action,
        "type": kind,
        "reason": "requested_by_customer",
        "status": status,
        "transaction_id": txn,
        "subscription_id": PADDLE_SUB,
        "currency_code": "USD",
        "totals": {
            "subtotal": total,
            "tax": "0",
            "total": total,
            "fee": "0",
            "earnings": total,
            "currency_code": "USD",
        },
    }


def paddle_purchase(shop: Shop) -> None:
    answered(shop.paddle("transaction.completed", paddle_transaction("txn_lc_0001")), "sent")


class TestPaddle:
    @row("Paddle", "first purchase", "purchase")
    @pytest.mark.parametrize(
        ("origin", "subscription"),
        [("web", PADDLE_SUB), ("api", PADDLE_SUB), ("web", None)],
        ids=["web subscription", "api subscription", "one-off"],
    )
    def test_a_completed_transaction_is_a_purchase(self, shop: Shop, origin: str, subscription: str | None) -> None:
        txn = paddle_transaction("txn_lc_0001", origin=origin, subscription=subscription)
        answered(shop.paddle("transaction.completed", txn), "sent")
        assert_sent(shop, "paddle#txn_lc_0001", "purchase", "49.00")
        assert len(shop.gets) == 1

    @row("Paddle", "trial start", "lead", "not_counted")
    @LEAD_CONFIGURATIONS
    def test_a_new_subscriptions_zero_subtotal_transaction_is_the_trial_start(self, shop: Shop, lead_goal: str) -> None:
        lead = configure_lead(shop, lead_goal)
        trial = paddle_transaction("txn_lc_trial", grand_total="0")
        answered(shop.paddle("transaction.completed", trial), "sent" if lead else "not_counted")
        assert_trial(shop, "paddle#txn_lc_trial", lead)

    @row("Paddle", "first payment after a trial", "purchase")
    @row("Paddle", "renewal", "renewal")
    def test_the_first_paid_recurring_transaction_after_a_trial_is_the_purchase(self, shop: Shop) -> None:
        answered(
            shop.paddle("transaction.completed", paddle_transaction("txn_lc_trial", grand_total="0")), "not_counted"
        )
        first = paddle_transaction("txn_lc_0002", origin="subscription_recurring", click_id=None)
        answered(shop.paddle("transaction.completed", first), "sent")
        second = paddle_transaction("txn_lc_0003", origin="subscription_recurring", click_id=None)
        answered(shop.paddle("transaction.completed", second), "sent")
        assert_sent(shop, "paddle#txn_lc_0002", "purchase", "49.00", get=0)
        assert_sent(shop, "paddle#txn_lc_0003", "renewal", "49.00", get=1)

    @row("Paddle", "renewal", "renewal")
    def test_a_recurring_transaction_after_the_purchase_is_a_renewal(self, shop: Shop) -> None:
        paddle_purchase(shop)
        recurring = paddle_transaction("txn_lc_0002", origin="subscription_recurring", grand_total="2900")
        answered(shop.paddle("transaction.completed", recurring), "sent")
        assert_sent(shop, "paddle#txn_lc_0001", "purchase", "49.00", get=0)
        assert_sent(shop, "paddle#txn_lc_0002", "renewal", "29.00", get=1)

    @row("Paddle", "upgrade or proration", "ignored")
    @UPGRADE_POLICIES
    @pytest.mark.parametrize("origin", ["subscription_update", "subscription_charge"])
    def test_an_upgrade_or_a_one_time_charge_counts_only_as_configured(
        self, shop: Shop, as_renewal: bool, origin: str
    ) -> None:
        if as_renewal:
            shop.configure(UPGRADES_COUNT_AS="renewal")
        paddle_purchase(shop)
        reply = shop.paddle("transaction.completed", paddle_transaction("txn_lc_up", origin=origin, grand_total="700"))
        assert_upgrade(shop, reply, "paddle#txn_lc_up", as_renewal, "7.00", gets_before=1)

    @row("Paddle", "$0 or 100 %-off order", "ignored")
    @pytest.mark.parametrize("subscription", [PADDLE_SUB, None], ids=["subscription", "one-off"])
    def test_a_transaction_with_a_grand_total_of_0_is_ignored(self, shop: Shop, subscription: str | None) -> None:
        free = paddle_transaction("txn_lc_free", grand_total="0", subtotal="4900", subscription=subscription)
        answered(shop.paddle("transaction.completed", free), "ignored")
        assert_nothing_stored_or_sent(shop)

    @row("Paddle", "payment-method change", "ignored")
    def test_a_payment_method_change_is_ignored(self, shop: Shop) -> None:
        change = paddle_transaction("txn_lc_pm", origin="subscription_payment_method_change", grand_total="0")
        answered(shop.paddle("transaction.completed", change), "ignored")
        assert_nothing_stored_or_sent(shop)

    @row("Paddle", "full refund", "refunded")
    def test_an_approved_full_refund_marks_the_transaction_refunded(self, shop: Shop) -> None:
        """Paddle creates a refund pending approval and updates it once approved."""
        paddle_purchase(shop)
        answered(shop.paddle("adjustment.created", paddle_adjustment("refund", status="pending_approval")), "ignored")
        assert shop.record("paddle#txn_lc_0001")["status"] == "sent"
        answered(shop.paddle("adjustment.updated", paddle_adjustment("refund")), "refunded")
        assert_reversed(shop, "paddle#txn_lc_0001", "refunded", "refunded", "49.00")
        assert len(shop.gets) == 1

    @row("Paddle", "partial refund", "noted")
    def test_an_approved_partial_refund_is_noted(self, shop: Shop) -> None:
        paddle_purchase(shop)
        adjustment = paddle_adjustment("refund", kind="partial", total="1000")
        answered(shop.paddle("adjustment.created", adjustment), "partially_refunded")
        assert_reversed(shop, "paddle#txn_lc_0001", "sent", "partially_refunded", "10.00")

    @row("Paddle", "dispute/chargeback", "charged_back")
    def test_an_approved_chargeback_marks_the_transaction_charged_back(self, shop: Shop) -> None:
        paddle_purchase(shop)
        answered(shop.paddle("adjustment.created", paddle_adjustment("chargeback")), "charged_back")
        assert_reversed(shop, "paddle#txn_lc_0001", "charged_back", "charged_back", "49.00", dispute="opened")

    @row("Paddle", "dispute won", "noted")
    def test_a_chargeback_reversed_is_noted_as_won(self, shop: Shop) -> None:
        paddle_purchase(shop)
        answered(shop.paddle("adjustment.created", paddle_adjustment("chargeback")), "charged_back")
        answered(shop.paddle("adjustment.created", paddle_adjustment("chargeback_reverse")), "dispute_won")
        assert_reversed(shop, "paddle#txn_lc_0001", "charged_back", "charged_back", "49.00", dispute="won")

    @row("Paddle", "cancellation", "ignored")
    def test_a_cancelled_subscription_keeps_its_sale(self, shop: Shop) -> None:
        paddle_purchase(shop)
        subscription = {"id": PADDLE_SUB, "status": "canceled", "canceled_at": "2026-12-01T00:00:00Z"}
        answered(shop.paddle("subscription.canceled", subscription), "ignored")
        assert_sent(shop, "paddle#txn_lc_0001", "purchase", "49.00")
        assert len(shop.conversions()) == 1


# ---------------------------------------------------------------------------------------------------------------
# Shopify: the bare REST resource, signed over the body

SHOPIFY_ORDER = 820982911946154508
SHOPIFY_PK = f"shopify#{SHOPIFY_ORDER}"


def shopify_order(
    *, financial_status: str = "paid", total: str = "59.99", cancelled: bool = False, updated_at: str = "10:14:05"
) -> dict[str, Any]:
    return {
        "id": SHOPIFY_ORDER,
        "name": "#1001",
        "created_at": "2026-11-02T10:14:03-05:00",
        "updated_at": f"2026-11-02T{updated_at}-05:00",
        "cancelled_at": "2026-11-03T09:00:00-05:00" if cancelled else None,
        "cancel_reason": "customer" if cancelled else None,
        "currency": "USD",
        "current_total_price": total,
        "total_price": total,
        "financial_status": financial_status,
        "landing_site": "/",
        "note_attributes": [{"name": "click_id", "value": CLICK_ID}],
        "test": False,
    }


def shopify_refund(amount: str = "20.00") -> dict[str, Any]:
    return {
        "id": 929361462,
        "order_id": SHOPIFY_ORDER,
        "created_at": "2026-11-04T12:00:00-05:00",
        "refund_line_items": [],
        "transactions": [
            {"id": 179259969, "kind": "refund", "status": "success", "amount": amount, "currency": "USD"},
        ],
    }


def shopify_dispute(status: str) -> dict[str, Any]:
    """A Shopify Payments dispute (the Dispute resource of the Admin API)."""
    return {
        "id": 598735659,
        "order_id": SHOPIFY_ORDER,
        "type": "chargeback",
        "amount": "59.99",
        "currency": "USD",
        "reason": "fraudulent",
        "network_reason_code": "4837",
        "status": status,
        "evidence_due_by": "2026-11-20T19:00:00-05:00",
        "initiated_at": "2026-11-05T19:00:00-05:00",
    }


def shopify_purchase(shop: Shop) -> None:
    answered(shop.shopify("orders/paid", shopify_order()), "sent")


class TestShopify:
    @row("Shopify", "first purchase", "purchase")
    def test_a_paid_order_is_one_purchase_whether_created_paid_or_then_paid(self, shop: Shop) -> None:
        answered(shop.shopify("orders/create", shopify_order()), "sent")
        answered(shop.shopify("orders/paid", shopify_order()), "duplicate")
        assert_sent(shop, SHOPIFY_PK, "purchase", "59.99")
        assert len(shop.gets) == 1

    @row("Shopify", "$0 or 100 %-off order", "ignored")
    def test_a_paid_order_of_0_is_ignored(self, shop: Shop) -> None:
        answered(shop.shopify("orders/paid", shopify_order(total="0.00")), "ignored")
        assert_nothing_stored_or_sent(shop)

    @row("Shopify", "full refund", "refunded")
    def test_an_order_updated_to_refunded_marks_it_refunded(self, shop: Shop) -> None:
        shopify_purchase(shop)
        refunded = shopify_order(financial_status="refunded", total="0.00", updated_at="12:00:00")
        answered(shop.shopify("orders/updated", refunded), "refunded")
        assert_reversed(shop, SHOPIFY_PK, "refunded", "refunded")
        assert len(shop.gets) == 1

    @row("Shopify", "partial refund", "noted")
    def test_a_refund_is_noted_with_its_amount(self, shop: Shop) -> None:
        shopify_purchase(shop)
        answered(shop.shopify("refunds/create", shopify_refund()), "partially_refunded")
        assert_reversed(shop, SHOPIFY_PK, "sent", "partially_refunded", "20.00")

    @row("Shopify", "partial refund", "noted")
    def test_an_order_updated_to_partially_refunded_is_noted(self, shop: Shop) -> None:
        shopify_purchase(shop)
        partial = shopify_order(financial_status="partially_refunded", total="39.99", updated_at="12:00:00")
        answered(shop.shopify("orders/updated", partial), "partially_refunded")
        assert_reversed(shop, SHOPIFY_PK, "sent", "partially_refunded")

    @row("Shopify", "dispute/chargeback", "charged_back")
    def test_a_chargeback_marks_the_order_charged_back(self, shop: Shop) -> None:
        shopify_purchase(shop)
        answered(shop.shopify("disputes/create", shopify_dispute("needs_response")), "charged_back")
        assert_reversed(shop, SHOPIFY_PK, "charged_back", "charged_back", "59.99", dispute="opened")

    @row("Shopify", "dispute won", "noted")
    def test_a_chargeback_won_is_noted(self, shop: Shop) -> None:
        shopify_purchase(shop)
        answered(shop.shopify("disputes/create", shopify_dispute("needs_response")), "charged_back")
        answered(shop.shopify("disputes/update", shopify_dispute("won")), "dispute_won")
        assert_reversed(shop, SHOPIFY_PK, "charged_back", "charged_back", "59.99", dispute="won")

    @row("Shopify", "dispute lost", "charged_back")
    @pytest.mark.parametrize("status", ["lost", "accepted"])
    def test_a_chargeback_lost_or_accepted_is_a_chargeback(self, shop: Shop, status: str) -> None:
        shopify_purchase(shop)
        answered(shop.shopify("disputes/create", shopify_dispute("needs_response")), "charged_back")
        answered(shop.shopify("disputes/update", shopify_dispute(status)), "dispute_lost")
        assert_reversed(shop, SHOPIFY_PK, "charged_back", "charged_back", "59.99", dispute="lost")

    @row("Shopify", "cancellation", "cancelled")
    def test_a_cancelled_order_is_marked_cancelled(self, shop: Shop) -> None:
        shopify_purchase(shop)
        cancelled = shopify_order(financial_status="refunded", cancelled=True, updated_at="13:00:00")
        answered(shop.shopify("orders/cancelled", cancelled), "cancelled")
        assert_reversed(shop, SHOPIFY_PK, "cancelled", "cancelled")
        assert len(shop.gets) == 1


# ---------------------------------------------------------------------------------------------------------------
# WooCommerce (and WooCommerce Subscriptions' orders)

WC_KEY = "wc_order_kzv8T1r6Qf3mB"


def wc_order(
    order_id: int = 727,
    *,
    status: str = "processing",
    total: str = "34.99",
    subscription_meta: tuple[str, int] | None = None,
    refunds: list[dict[str, Any]] | None = None,
    modified: str = "2026-11-02T15:14:09",
) -> dict[str, Any]:
    """An order as the order.* topics deliver it (the REST API v3 resource, trimmed)."""
    meta: list[dict[str, Any]] = [
        {"id": 1301, "key": "_wc_order_attribution_source_type", "value": "utm"},
        {"id": 1304, "key": "click_id", "value": CLICK_ID},
    ]
    if subscription_meta:
        meta.append({"id": 1310, "key": subscription_meta[0], "value": subscription_meta[1]})
    return {
        "id": order_id,
        "parent_id": 0,
        "status": status,
        "currency": "USD",
        "date_created_gmt": "2026-11-02T15:14:03",
        "date_modified_gmt": modified,
        "total": total,
        "order_key": f"{WC_KEY}{order_id}",
        "created_via": "checkout" if subscription_meta is None else "subscription",
        "number": str(order_id),
        "meta_data": meta,
        "refunds": refunds or [],
    }


def wc_pk(order_id: int = 727) -> str:
    return f"woocommerce#{order_id}:{WC_KEY}{order_id}"


def wc_purchase(shop: Shop) -> None:
    answered(shop.woocommerce("order.created", wc_order()), "sent")


class TestWooCommerce:
    @row("WooCommerce", "first purchase", "purchase")
    def test_an_order_processing_then_completed_is_one_purchase(self, shop: Shop) -> None:
        answered(shop.woocommerce("order.created", wc_order()), "sent")
        completed = wc_order(status="completed", modified="2026-11-03T09:00:00")
        answered(shop.woocommerce("order.updated", completed), "duplicate")
        assert_sent(shop, wc_pk(), "purchase", "34.99")
        assert len(shop.gets) == 1

    @row("WooCommerce", "trial start", "ignored")
    @row("WooCommerce", "$0 or 100 %-off order", "ignored")
    def test_an_order_of_0_is_ignored_a_trials_parent_order_too(self, shop: Shop) -> None:
        answered(shop.woocommerce("order.created", wc_order(total="0.00")), "ignored")
        assert_nothing_stored_or_sent(shop)

    @row("WooCommerce", "first payment after a trial", "renewal")
    def test_the_first_renewal_order_after_a_trial_is_a_renewal(self, shop: Shop) -> None:
        """A parent order does not name its subscription, so the relay never saw the subscription start."""
        answered(shop.woocommerce("order.created", wc_order(total="0.00")), "ignored")
        renewal = wc_order(728, subscription_meta=("_subscription_renewal", 726), modified="2026-11-16T15:14:09")
        answered(shop.woocommerce("order.created", renewal), "sent")
        assert_sent(shop, wc_pk(728), "renewal", "34.99")
        assert len(shop.gets) == 1

    @row("WooCommerce", "renewal", "renewal")
    def test_a_renewal_order_is_a_renewal(self, shop: Shop) -> None:
        wc_purchase(shop)
        renewal = wc_order(728, subscription_meta=("_subscription_renewal", 726), modified="2026-12-02T15:14:09")
        answered(shop.woocommerce("order.created", renewal), "sent")
        assert_sent(shop, wc_pk(), "purchase", "34.99", get=0)
        assert_sent(shop, wc_pk(728), "renewal", "34.99", get=1)

    @row("WooCommerce", "upgrade or proration", "ignored")
    @UPGRADE_POLICIES
    def test_a_switch_order_counts_only_as_configured(self, shop: Shop, as_renewal: bool) -> None:
        if as_renewal:
            shop.configure(UPGRADES_COUNT_AS="renewal")
        wc_purchase(shop)
        switch = wc_order(729, total="5.00", subscription_meta=("_subscription_switch", 726))
        reply = shop.woocommerce("order.created", switch)
        assert_upgrade(shop, reply, wc_pk(729), as_renewal, "5.00", gets_before=1)

    @row("WooCommerce", "full refund", "refunded")
    def test_an_order_refunded_is_marked_refunded(self, shop: Shop) -> None:
        wc_purchase(shop)
        refunded = wc_order(status="refunded", modified="2026-11-04T10:00:00")
        answered(shop.woocommerce("order.updated", refunded), "refunded")
        assert_reversed(shop, wc_pk(), "refunded", "refunded")
        assert len(shop.gets) == 1

    @row("WooCommerce", "partial refund", "noted")
    def test_an_order_whose_refunds_grew_is_noted_with_the_amount(self, shop: Shop) -> None:
        wc_purchase(shop)
        refunds = [{"id": 811, "reason": "damaged", "total": "-10.00"}]
        updated = wc_order(refunds=refunds, modified="2026-11-04T10:00:00")
        answered(shop.woocommerce("order.updated", updated), "duplicate")
        assert_reversed(shop, wc_pk(), "sent", "partially_refunded", "10.00")
        assert len(shop.gets) == 1

    @row("WooCommerce", "cancellation", "cancelled")
    def test_an_order_cancelled_is_marked_cancelled(self, shop: Shop) -> None:
        wc_purchase(shop)
        cancelled = wc_order(status="cancelled", modified="2026-11-04T10:00:00")
        answered(shop.woocommerce("order.updated", cancelled), "cancelled")
        assert_reversed(shop, wc_pk(), "cancelled", "cancelled")


# ---------------------------------------------------------------------------------------------------------------
# Lemon Squeezy (JSON:API bodies; the checkout's custom data in meta.custom_data)

LS_SUBSCRIPTION = 851


def ls_order(order_id: str = "1597", *, total: int = 1199, status: str = "paid", refunded: int = 0) -> dict[str, Any]:
    return {
        "type": "orders",
        "id": order_id,
        "attributes": {
            "store_id": 18,
            "order_number": 18001,
            "currency": "USD",
            "currency_rate": "1.00000000",
            "subtotal": total,
            "total": total,
            "total_usd": total,
            "refunded_amount": refunded,
            "status": status,
            "refunded": status in ("refunded", "partial_refund"),
            "refunded_at": "2026-11-04T12:00:00.000000Z" if refunded else None,
            "test_mode": False,
        },
    }


def ls_invoice(
    invoice_id: str, billing_reason: str, *, total: int = 999, status: str = "paid", refunded: int = 0
) -> dict[str, Any]:
    return {
        "type": "subscription-invoices",
        "id": invoice_id,
        "attributes": {
            "store_id": 18,
            "subscription_id": LS_SUBSCRIPTION,
            "billing_reason": billing_reason,
            "currency": "USD",
            "status": status,
            "refunded": status == "refunded",
            "subtotal": total,
            "total": total,
            "total_usd": total,
            "refunded_amount": refunded,
            "refunded_at": "2026-12-04T12:00:00.000000Z" if refunded else None,
            "test_mode": False,
        },
    }


def ls_subscription(status: str, order_id: int = 1597) -> dict[str, Any]:
    return {
        "type": "subscriptions",
        "id": str(LS_SUBSCRIPTION),
        "attributes": {
            "store_id": 18,
            "customer_id": 2241,
            "order_id": order_id,
            "status": status,
            "trial_ends_at": "2026-11-16T10:14:03.000000Z" if status == "on_trial" else None,
            "renews_at": "2026-12-02T10:14:03.000000Z",
            "test_mode": False,
        },
    }


def ls_subscription_purchase(shop: Shop) -> None:
    """A paid subscription's first payment as Lemon Squeezy fires it: the order, the subscription, the
    initial invoice."""
    answered(shop.lemonsqueezy("order_created", ls_order()), "sent")
    answered(shop.lemonsqueezy("subscription_created", ls_subscription("active")), "linked")
    answered(shop.lemonsqueezy("subscription_payment_success", ls_invoice("3300", "initial", total=1199)), "ignored")


class TestLemonSqueezy:
    @row("Lemon Squeezy", "first purchase", "purchase")
    def test_a_paid_order_is_a_purchase(self, shop: Shop) -> None:
        answered(shop.lemonsqueezy("order_created", ls_order()), "sent")
        assert_sent(shop, "lemonsqueezy#orders/1597", "purchase", "11.99")

    @row("Lemon Squeezy", "trial start", "lead", "not_counted")
    @LEAD_CONFIGURATIONS
    def test_a_subscription_created_on_trial_is_the_trial_start(self, shop: Shop, lead_goal: str) -> None:
        lead = configure_lead(shop, lead_goal)
        answered(shop.lemonsqueezy("order_created", ls_order(total=0)), "ignored")  # the trial's $0 order
        reply = shop.lemonsqueezy("subscription_created", ls_subscription("on_trial"))
        answered(reply, "sent" if lead else "not_counted")
        assert_trial(shop, f"lemonsqueezy#subscriptions/{LS_SUBSCRIPTION}:trial", lead)

    @row("Lemon Squeezy", "first payment after a trial", "purchase")
    def test_the_first_paid_renewal_after_a_trial_is_the_purchase(self, shop: Shop) -> None:
        """The renewal invoices of this subscription carry no custom data: the click id is the trial's."""
        answered(shop.lemonsqueezy("order_created", ls_order(total=0)), "ignored")
        answered(shop.lemonsqueezy("subscription_created", ls_subscription("on_trial")), "not_counted")
        first = ls_invoice("3301", "renewal")
        answered(shop.lemonsqueezy("subscription_payment_success", first, click_id=None), "sent")
        second = ls_invoice("3302", "renewal")
        answered(shop.lemonsqueezy("subscription_payment_success", second, click_id=None), "sent")
        assert_sent(shop, "lemonsqueezy#subscription-invoices/3301", "purchase", "9.99", get=0)
        assert_sent(shop, "lemonsqueezy#subscription-invoices/3302", "renewal", "9.99", get=1)

    @row("Lemon Squeezy", "renewal", "renewal")
    def test_a_renewal_after_the_first_order_is_a_renewal(self, shop: Shop) -> None:
        ls_subscription_purchase(shop)
        renewal = ls_invoice("3301", "renewal")
        answered(shop.lemonsqueezy("subscription_payment_success", renewal, click_id=None), "sent")
        assert_sent(shop, "lemonsqueezy#orders/1597", "purchase", "11.99", get=0)
        assert_sent(shop, "lemonsqueezy#subscription-invoices/3301", "renewal", "9.99", get=1)
        assert len(shop.gets) == 2

    @row("Lemon Squeezy", "upgrade or proration", "ignored")
    @UPGRADE_POLICIES
    def test_a_plan_changes_payment_counts_only_as_configured(self, shop: Shop, as_renewal: bool) -> None:
        if as_renewal:
            shop.configure(UPGRADES_COUNT_AS="renewal")
        ls_subscription_purchase(shop)
        reply = shop.lemonsqueezy("subscription_payment_success", ls_invoice("3305", "updated", total=400))
        assert_upgrade(shop, reply, "lemonsqueezy#subscription-invoices/3305", as_renewal, "4.00", gets_before=1)

    @row("Lemon Squeezy", "$0 or 100 %-off order", "ignored")
    def test_an_order_of_0_is_ignored(self, shop: Shop) -> None:
        answered(shop.lemonsqueezy("order_created", ls_order(total=0)), "ignored")
        assert_nothing_stored_or_sent(shop)

    @row("Lemon Squeezy", "first payment's invoice", "ignored")
    def test_the_initial_invoice_is_ignored_its_order_is_the_purchase(self, shop: Shop) -> None:
        ls_subscription_purchase(shop)
        assert [item["pk"] for item in shop.conversions()] == ["lemonsqueezy#orders/1597"]
        assert len(shop.gets) == 1

    @row("Lemon Squeezy", "full refund", "refunded")
    def test_an_order_refunded_is_marked_refunded(self, shop: Shop) -> None:
        answered(shop.lemonsqueezy("order_created", ls_order()), "sent")
        refunded = ls_order(status="refunded", refunded=1199)
        answered(shop.lemonsqueezy("order_refunded", refunded), "refunded")
        assert_reversed(shop, "lemonsqueezy#orders/1597", "refunded", "refunded", "11.99")

    @row("Lemon Squeezy", "full refund", "refunded")
    def test_a_renewal_payment_refunded_is_marked_refunded(self, shop: Shop) -> None:
        ls_subscription_purchase(shop)
        answered(shop.lemonsqueezy("subscription_payment_success", ls_invoice("3301", "renewal")), "sent")
        refunded = ls_invoice("3301", "renewal", status="refunded", refunded=999)
        answered(shop.lemonsqueezy("subscription_payment_refunded", refunded), "refunded")
        assert_reversed(shop, "lemonsqueezy#subscription-invoices/3301", "refunded", "refunded", "9.99")
        assert shop.record("lemonsqueezy#orders/1597")["status"] == "sent"

    @row("Lemon Squeezy", "partial refund", "noted")
    def test_an_order_partly_refunded_is_noted(self, shop: Shop) -> None:
        answered(shop.lemonsqueezy("order_created", ls_order()), "sent")
        partial = ls_order(status="partial_refund", refunded=500)
        answered(shop.lemonsqueezy("order_refunded", partial), "partially_refunded")
        assert_reversed(shop, "lemonsqueezy#orders/1597", "sent", "partially_refunded", "5.00")

    @row("Lemon Squeezy", "cancellation", "ignored")
    def test_a_cancelled_subscription_keeps_its_sale(self, shop: Shop) -> None:
        ls_subscription_purchase(shop)
        answered(shop.lemonsqueezy("subscription_cancelled", ls_subscription("cancelled")), "ignored")
        assert_sent(shop, "lemonsqueezy#orders/1597", "purchase", "11.99")
        assert len(shop.conversions()) == 1


# ---------------------------------------------------------------------------------------------------------------
# Trackers and CPA networks: the GET postback


CC_SUBSCRIPTION = "0117240102000000049"


def cc_sale(price: str = "18.00", subscription: str = CC_SUBSCRIPTION) -> dict[str, str]:
    return {
        "subscriptionId": subscription,
        "transactionId": subscription,
        "billedInitialPrice": price,
        "billedCurrency": "USD",
        "accountingInitialPrice": price,
        "accountingCurrency": "USD",
        "X-click_id": CLICK_ID,
    }


def cc_renewal(transaction: str = "0117240102000000077") -> dict[str, str]:
    return {
        "subscriptionId": CC_SUBSCRIPTION,
        "transactionId": transaction,
        "billedAmount": "18.00",
        "billedCurrency": "USD",
    }


def cc_reversal(transaction: str = CC_SUBSCRIPTION) -> dict[str, str]:
    return {"subscriptionId": CC_SUBSCRIPTION, "transactionId": transaction, "amount": "18.00", "currency": "USD"}


def cc_pk(transaction: str = CC_SUBSCRIPTION) -> str:
    return f"ccbill#{transaction}"


class TestCCBill:
    @row("CCBill", "first purchase", "purchase")
    def test_a_new_sale_is_a_purchase_sent_once(self, shop: Shop) -> None:
        answered(shop.ccbill("NewSaleSuccess", cc_sale()), "sent")
        answered(shop.ccbill("NewSaleSuccess", cc_sale()), "duplicate")
        answered(shop.ccbill("UpSaleSuccess", cc_sale(subscription="0117240102000000088")), "sent")
        assert_sent(shop, cc_pk(), "purchase", "18.00", get=0)
        assert_sent(shop, cc_pk("0117240102000000088"), "purchase", "18.00", get=1)

    @row("CCBill", "trial start", "ignored")
    def test_a_free_trial_is_ignored(self, shop: Shop) -> None:
        answered(shop.ccbill("NewSaleSuccess", cc_sale(price="0.00")), "ignored")
        assert_nothing_stored_or_sent(shop)

    @row("CCBill", "first payment after a trial", "purchase")
    def test_the_first_renewal_after_a_free_trial_is_the_purchase(self, shop: Shop) -> None:
        answered(shop.ccbill("NewSaleSuccess", cc_sale(price="0.00")), "ignored")
        answered(shop.ccbill("RenewalSuccess", cc_renewal()), "sent")
        assert_sent(shop, cc_pk("0117240102000000077"), "purchase", "18.00")

    @row("CCBill", "renewal", "renewal")
    def test_a_renewal_is_a_renewal_with_the_sales_click_id(self, shop: Shop) -> None:
        answered(shop.ccbill("NewSaleSuccess", cc_sale()), "sent")
        answered(shop.ccbill("RenewalSuccess", cc_renewal()), "sent")
        assert_sent(shop, cc_pk("0117240102000000077"), "renewal", "18.00", get=1)

    @row("CCBill", "upgrade or proration", "ignored")
    @row("CCBill", "declined payment", "ignored")
    @row("CCBill", "cancellation", "ignored")
    @pytest.mark.parametrize(
        "event_type", ["UpgradeSuccess", "NewSaleFailure", "RenewalFailure", "Cancellation", "Expiration"]
    )
    def test_upgrades_declines_and_cancellations_are_ignored(self, shop: Shop, event_type: str) -> None:
        answered(shop.ccbill(event_type, cc_sale()), "ignored")
        assert_nothing_stored_or_sent(shop)

    @row("CCBill", "full refund", "refunded")
    def test_a_refund_marks_the_sale(self, shop: Shop) -> None:
        answered(shop.ccbill("NewSaleSuccess", cc_sale()), "sent")
        answered(shop.ccbill("Refund", cc_reversal()), "refunded")
        assert_reversed(shop, cc_pk(), "refunded", "refunded", "18.00")

    @row("CCBill", "dispute/chargeback", "charged_back")
    @pytest.mark.parametrize("event_type", ["Chargeback", "Return"])
    def test_a_chargeback_or_return_marks_the_sale(self, shop: Shop, event_type: str) -> None:
        answered(shop.ccbill("NewSaleSuccess", cc_sale()), "sent")
        answered(shop.ccbill(event_type, cc_reversal()), "charged_back")
        assert_reversed(shop, cc_pk(), "charged_back", "charged_back", "18.00", "opened")
        assert len(shop.gets) == 1

    @row("CCBill", "void", "cancelled")
    def test_a_void_marks_the_renewal_it_names(self, shop: Shop) -> None:
        answered(shop.ccbill("NewSaleSuccess", cc_sale()), "sent")
        answered(shop.ccbill("RenewalSuccess", cc_renewal()), "sent")
        answered(shop.ccbill("Void", cc_reversal("0117240102000000077")), "cancelled")
        assert_reversed(shop, cc_pk("0117240102000000077"), "cancelled", "cancelled", "18.00")
        assert shop.record(cc_pk())["status"] == "sent"


VT_SALE = "456789"


def vt_payment(event: str, transaction: str, price: str = "12.31", **extra: str) -> dict[str, str]:
    params = {"saleID": VT_SALE, "transactionID": transaction, "priceAmount": price, "priceCurrency": "USD"}
    if event:
        params["event"] = event
    return {**params, **extra}


def vt_pk(transaction: str = "99999991") -> str:
    return f"verotel#{transaction}"


class TestVerotel:
    @row("Verotel", "first purchase", "purchase")
    @pytest.mark.parametrize("event", ["", "initial"])
    def test_a_purchase_or_first_payment_is_a_purchase_sent_once(self, shop: Shop, event: str) -> None:
        answered(shop.verotel(vt_payment(event, "99999991", custom1=CLICK_ID)), "sent")
        answered(shop.verotel(vt_payment(event, "99999991", custom1=CLICK_ID)), "duplicate")
        assert_sent(shop, vt_pk(), "purchase", "12.31")
        assert len(shop.gets) == 1

    @row("Verotel", "trial start", "ignored")
    def test_a_free_initial_is_ignored(self, shop: Shop) -> None:
        answered(shop.verotel(vt_payment("initial", "99999991", price="0.00", custom1=CLICK_ID)), "ignored")
        assert_nothing_stored_or_sent(shop)

    @row("Verotel", "first payment after a trial", "purchase")
    def test_the_first_rebill_after_a_free_trial_is_the_purchase(self, shop: Shop) -> None:
        shop.verotel(vt_payment("initial", "99999991", price="0.00", custom1=CLICK_ID))
        answered(shop.verotel(vt_payment("rebill", "99999992")), "sent")
        assert_sent(shop, vt_pk("99999992"), "purchase", "12.31")

    @row("Verotel", "renewal", "renewal")
    def test_a_rebill_is_a_renewal_with_the_first_payments_click_id(self, shop: Shop) -> None:
        shop.verotel(vt_payment("initial", "99999991", custom1=CLICK_ID))
        answered(shop.verotel(vt_payment("rebill", "99999992")), "sent")
        assert_sent(shop, vt_pk("99999992"), "renewal", "12.31", get=1)

    @row("Verotel", "upgrade or proration", "ignored")
    @row("Verotel", "cancellation", "ignored")
    @pytest.mark.parametrize("event", ["upgrade", "downgrade", "extend", "cancel", "expiry"])
    def test_upgrades_and_cancellations_are_ignored(self, shop: Shop, event: str) -> None:
        answered(shop.verotel(vt_payment(event, "99999993", custom1=CLICK_ID)), "ignored")
        assert_nothing_stored_or_sent(shop)

    @row("Verotel", "full refund", "refunded")
    def test_a_credit_marks_the_payment(self, shop: Shop) -> None:
        shop.verotel(vt_payment("initial", "99999991", custom1=CLICK_ID))
        answered(shop.verotel({"event": "credit", "saleID": VT_SALE, "transactionID": "99999991"}), "refunded")
        assert_reversed(shop, vt_pk(), "refunded", "refunded")

    @row("Verotel", "dispute/chargeback", "charged_back")
    def test_a_chargeback_marks_the_payment(self, shop: Shop) -> None:
        shop.verotel(vt_payment("initial", "99999991", custom1=CLICK_ID))
        answered(shop.verotel({"event": "chargeback", "saleID": VT_SALE, "transactionID": "99999991"}), "charged_back")
        assert_reversed(shop, vt_pk(), "charged_back", "charged_back", dispute="opened")
        assert len(shop.gets) == 1


def sp(stage: str, tranid: str, **extra: str) -> dict[str, str]:
    params = {
        "action": "Auth",
        "stage": stage,
        "approved": "Yes",
        "trantype": "Sale",
        "purchaseid": "12345678",
        "tranid": tranid,
        "relatedtranid": "",
        "price": "29.95",
        "currencycode": "USD",
    }
    return {**params, **extra}


class TestSegpay:
    @row("Segpay", "first purchase", "purchase")
    def test_an_approved_initial_is_a_purchase_sent_once(self, shop: Shop) -> None:
        answered(shop.segpay(**sp("Initial", "987654321", click_id=CLICK_ID)), "sent")
        answered(shop.segpay(**sp("Initial", "987654321", click_id=CLICK_ID)), "duplicate")
        assert_sent(shop, "segpay#987654321", "purchase", "29.95")
        assert len(shop.gets) == 1

    @row("Segpay", "first payment after a trial", "purchase")
    def test_the_first_paid_conversion_after_a_free_trial_is_the_purchase(self, shop: Shop) -> None:
        answered(shop.segpay(**sp("Initial", "987654321", price="0.00", click_id=CLICK_ID)), "ignored")
        answered(shop.segpay(**sp("Conversion", "987654322")), "sent")
        assert_sent(shop, "segpay#987654322", "purchase", "29.95")

    @row("Segpay", "renewal", "renewal")
    @pytest.mark.parametrize("stage", ["Rebill", "Conversion", "Instantconversion"])
    def test_a_rebill_is_a_renewal_with_the_purchases_click_id(self, shop: Shop, stage: str) -> None:
        shop.segpay(**sp("Initial", "987654321", click_id=CLICK_ID))
        answered(shop.segpay(**sp(stage, "987654322")), "sent")
        assert_sent(shop, "segpay#987654322", "renewal", "29.95", get=1)

    @row("Segpay", "declined payment", "ignored")
    def test_a_declined_postback_is_ignored(self, shop: Shop) -> None:
        answered(shop.segpay(**sp("Initial", "987654321", approved="No", click_id=CLICK_ID)), "ignored")
        assert_nothing_stored_or_sent(shop)

    @row("Segpay", "full refund", "refunded")
    @row("Segpay", "dispute/chargeback", "charged_back")
    @row("Segpay", "void", "cancelled")
    @pytest.mark.parametrize(
        ("fields", "kind"),
        [
            ({"trantype": "Credit"}, "refunded"),
            ({"trantype": "Chargeback"}, "charged_back"),
            ({"action": "Void"}, "cancelled"),
        ],
    )
    def test_a_credit_chargeback_or_void_marks_the_transaction_it_names(
        self, shop: Shop, fields: dict[str, str], kind: str
    ) -> None:
        shop.segpay(**sp("Initial", "987654321", click_id=CLICK_ID))
        answered(shop.segpay(**sp("Initial", "987654399", relatedtranid="987654321", **fields)), kind)
        record = shop.record("segpay#987654321")
        assert (record["status"], record["reversal_kind"]) == (kind, kind)
        assert len(shop.gets) == 1


def ep_approval(ans: str = "Y123456", **extra: str) -> dict[str, str]:
    params = {
        "ans": ans,
        "order_id": "123456789",
        "member_id": "987654",
        "transaction_id": "1122334455",
        "pi_code": "abc123pi",
        "amount": "29.95",
        "currency": "USD",
        "x_click_id": CLICK_ID,
    }
    return {**params, **extra}


def ep_dataplus(kind: str, transaction: str = "1122334499", **extra: str) -> dict[str, str]:
    params = {
        "ets_transaction_id": transaction,
        "ets_member_idx": "987654",
        "ets_transaction_type": kind,
        "ets_transaction_amount": "29.95",
        "ets_ref_trans_ids": "1122334455",
    }
    return {**params, **extra}


class TestEpoch:
    @row("Epoch", "first purchase", "purchase")
    def test_an_approval_is_a_purchase_sent_once(self, shop: Shop) -> None:
        answered(shop.epoch(**ep_approval()), "sent")
        answered(shop.epoch(**ep_approval()), "duplicate")
        assert_sent(shop, "epoch#1122334455", "purchase", "29.95")
        assert len(shop.gets) == 1

    @row("Epoch", "test transaction", "test_mode")
    def test_a_test_approval_is_recorded_not_sent(self, shop: Shop) -> None:
        answered(shop.epoch(**ep_approval("YGOODTEST")), "test_mode")
        assert shop.record("epoch#1122334455")["status"] == "test_mode" and shop.gets == []

    @row("Epoch", "declined payment", "ignored")
    @row("Epoch", "trial start", "ignored")
    def test_a_decline_and_a_free_trial_are_ignored(self, shop: Shop) -> None:
        answered(shop.epoch(**ep_approval("NDECLINED")), "ignored")
        answered(shop.epoch(**ep_dataplus("F")), "ignored")
        assert_nothing_stored_or_sent(shop)

    @row("Epoch", "renewal", "renewal")
    def test_a_dataplus_rebill_is_a_renewal_with_the_approvals_click_id(self, shop: Shop) -> None:
        shop.epoch(**ep_approval())
        answered(shop.epoch(**ep_dataplus("N")), "sent")
        assert_sent(shop, "epoch#1122334499", "renewal", "29.95", get=1)

    @row("Epoch", "full refund", "refunded")
    @row("Epoch", "dispute/chargeback", "charged_back")
    @pytest.mark.parametrize(("kind", "status"), [("C", "refunded"), ("D", "charged_back"), ("X", "charged_back")])
    def test_credits_and_chargebacks_mark_the_approval(self, shop: Shop, kind: str, status: str) -> None:
        shop.epoch(**ep_approval())
        answered(shop.epoch(**ep_dataplus(kind, "1122334500")), status)
        assert shop.record("epoch#1122334455")["status"] == status
        assert len(shop.gets) == 1


class TestTracker:
    @row("Tracker", "conversion", "purchase")
    @pytest.mark.parametrize(
        ("params", "goal"),
        [
            ({}, "purchase"),
            ({"status": "approved"}, "purchase"),
            ({"kind": "renewal"}, "renewal"),
            ({"kind": "lead"}, "lead"),
        ],
        ids=["no status", "approved", "renewal", "lead"],
    )
    def test_an_approved_postback_is_sent_towards_its_kinds_goal(
        self, shop: Shop, params: dict[str, str], goal: str
    ) -> None:
        shop.with_lead_goal()
        reply = shop.tracker(value="9.99", lead_code="T-1", **params)
        answered(reply, "sent")
        assert_sent(shop, reply.body["conversion_id"], goal, "9.99")
        assert shop.gets[0].params["lead_code"] == "T-1"

    @staticmethod
    def assert_each_status_reverses_its_sale(shop: Shop, statuses: list[str], kind: str, dispute: str | None) -> None:
        """One sale per status word (its own lead code), then the same postback with that status."""
        for n, status in enumerate(statuses):
            sale = shop.tracker(value="9.99", lead_code=f"T-{n}")
            answered(sale, "sent")
            answered(shop.tracker(value="9.99", lead_code=f"T-{n}", status=status), kind)
            assert_reversed(shop, sale.body["conversion_id"], kind, kind, "9.99", dispute=dispute)
        assert len(shop.gets) == len(statuses)  # the sales, and nothing for their reversals

    @row("Tracker", "reversal", "refunded")
    def test_a_refund_status_marks_the_conversion_refunded(self, shop: Shop) -> None:
        self.assert_each_status_reverses_its_sale(shop, ["refunded", "refund"], "refunded", None)

    @row("Tracker", "chargeback", "charged_back")
    def test_a_chargeback_status_marks_the_conversion_charged_back(self, shop: Shop) -> None:
        self.assert_each_status_reverses_its_sale(shop, ["chargeback", "chargedback"], "charged_back", "opened")

    @row("Tracker", "rejection", "cancelled")
    def test_a_rejection_marks_the_conversion_cancelled(self, shop: Shop) -> None:
        statuses = ["rejected", "declined", "reversed", "cancelled", "fraud", "trash"]
        self.assert_each_status_reverses_its_sale(shop, statuses, "cancelled", None)

    @row("Tracker", "any other status", "ignored")
    def test_any_other_status_is_ignored(self, shop: Shop) -> None:
        for status in ("lead", "pending", "hold"):
            answered(shop.tracker(value="9.99", lead_code="T-1", status=status), "ignored")
        assert_nothing_stored_or_sent(shop)


# ---------------------------------------------------------------------------------------------------------------
# The table and the cases cannot drift apart


def readme_rows() -> list[tuple[str, str, str, str]]:
    """(platform, moment, event, becomes) of every row of the README's lifecycle table."""
    lines = README.read_text(encoding="utf-8").splitlines()
    start = lines.index(TABLE_HEADING)
    rows: list[tuple[str, str, str, str]] = []
    in_table = False
    for line in lines[start + 1 :]:
        if line.startswith("| platform |"):
            in_table = True
            continue
        if not in_table:
            continue
        if not line.startswith("|"):
            break
        if set(line) <= {"|", "-", " "}:
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        assert len(cells) == 4, line
        rows.append((cells[0], cells[1], cells[2], cells[3]))
    return rows


def becomes(cell: str) -> tuple[str, ...]:
    """The backticked words of a "becomes" cell outside its parentheses: `lead` or `not_counted` → both;
    `ignored` (`renewal` with `UPGRADES_COUNT_AS=renewal`) → ignored; an empty cell (n/a) → n/a."""
    words = tuple(re.findall(r"`([^`]+)`", re.sub(r"\([^)]*\)", "", cell)))
    return words or ("n/a",)


class TestTheTable:
    def test_every_row_of_the_readme_table_is_a_case_here_with_what_it_becomes(self) -> None:
        rows = readme_rows()
        assert len(rows) > 50  # the parse found the table
        keys = [(platform, moment) for platform, moment, _, _ in rows]
        assert len(keys) == len(set(keys)), "a (platform, moment) row is in the table twice"
        assert set(keys) == set(CASES)
        for platform, moment, event, cell in rows:
            assert becomes(cell) == CASES[(platform, moment)], (platform, moment, cell)
            if CASES[(platform, moment)] == ("n/a",):
                assert event.startswith("n/a"), (platform, moment, event)

    def test_the_becomes_cells_are_read_as_intended(self) -> None:
        assert becomes("`lead` or `not_counted`") == ("lead", "not_counted")
        assert becomes("`ignored` (`renewal` with `UPGRADES_COUNT_AS=renewal`)") == ("ignored",)
        assert becomes("`purchase` (or the `kind`: `renewal`, `lead`)") == ("purchase",)
        assert becomes("") == ("n/a",)
