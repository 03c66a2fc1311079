"""Lemon Squeezy: signatures exactly as Lemon Squeezy signs, orders and renewals (not the initial invoice that
duplicates its order), refunds, test mode; then the same through the real handler, answering exactly 200."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import pytest

from postback_relay.core.conversion import Conversion, Ignored, ParseContext, Reversal
from postback_relay.networks.trafficstars import CLICK_ID_PATTERN
from postback_relay.platforms.base import MalformedEvent, SignatureError, SignatureMismatch
from postback_relay.platforms.lemonsqueezy import LEMONSQUEEZY
from postback_relay_dev.sandbox import TrafficStarsSandbox
from tests.support.aws import Aws
from tests.support.constants import TEST_KEY, TEST_SOURCE_SECRETS
from tests.support.helpers import CLICK_ID, RFC4231_DATA, RFC4231_HEX, RFC4231_KEY, Invoker, Reply, run_sample, samples

SECRET = TEST_SOURCE_SECRETS["lemonsqueezy_webhook_secret"]
CONTEXT = ParseContext(CLICK_ID_PATTERN)
PURCHASE = "lemonsqueezy#orders/1597"


def ls_signature(body: bytes, secret: str) -> str:
    """X-Signature as Lemon Squeezy makes it: the hex HMAC-SHA256 digest of the raw body."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def webhook(
    event_name: str,
    data: dict[str, Any],
    *,
    click_id: str | None = CLICK_ID,
    test_mode: bool = False,
) -> dict[str, Any]:
    """The JSON:API body: the checkout's custom data travels in meta.custom_data."""
    meta: dict[str, Any] = {"test_mode": test_mode, "event_name": event_name, "webhook_id": "7d3e5c1a-2b4f"}
    if click_id:
        meta["custom_data"] = {"click_id": click_id}
    return {"meta": meta, "data": data}


def ls_order(
    *,
    order_id: str = "1597",
    status: str = "paid",
    total: int = 1199,
    currency: str = "USD",
    refunded: int = 0,
    total_usd: int | None = None,
    currency_rate: str = "1.00000000",
) -> dict[str, Any]:
    return {
        "type": "orders",
        "id": order_id,
        "attributes": {
            "store_id": 18,
            "customer_id": 2241,
            "identifier": "104e18a2-d755-4d4b-80c4-a6c1dcbe1c10",
            "order_number": 18001,
            "user_email": "jon@example.com",
            "currency": currency,
            "currency_rate": currency_rate,
            "subtotal": total,
            "discount_total": 0,
            "tax": 0,
            "total": total,
            "total_usd": total if total_usd is None else total_usd,
            "refunded_amount": refunded,
            "status": status,
            "status_formatted": status.replace("_", " ").title(),
            "refunded": status in ("refunded", "partial_refund"),
            "refunded_at": "2026-11-04T12:00:00.000000Z" if refunded else None,
            "first_order_item": {"product_name": "Pro plan", "variant_name": "Monthly", "price": total},
            "created_at": "2026-11-02T10:14:03.000000Z",
            "updated_at": "2026-11-02T10:14:05.000000Z",
            "test_mode": False,
        },
        "relationships": {},
        "links": {"self": f"https://api.lemonsqueezy.com/v1/orders/{order_id}"},
    }


def invoice(
    *,
    invoice_id: str = "3301",
    billing_reason: str = "renewal",
    total: int = 999,
    currency: str = "USD",
    total_usd: int | None = None,
) -> dict[str, Any]:
    """A subscription invoice as Lemon Squeezy's API reference shows one (its USD figures included)."""
    return {
        "type": "subscription-invoices",
        "id": invoice_id,
        "attributes": {
            "store_id": 18,
            "subscription_id": 851,
            "customer_id": 2241,
            "billing_reason": billing_reason,
            "currency": currency,
            "status": "paid",
            "refunded": False,
            "subtotal": total,
            "tax": 0,
            "total": total,
            "total_usd": total if total_usd is None else total_usd,
            "refunded_amount": 0,
            "created_at": "2026-12-02T10:14:03.000000Z",
            "test_mode": False,
        },
    }


def deliver(invoke: Invoker, payload: dict[str, Any], secret: str = SECRET) -> Reply:
    body = json.dumps(payload).encode()
    headers = {"X-Event-Name": payload["meta"]["event_name"], "X-Signature": ls_signature(body, secret)}
    return invoke(body, headers, path="/webhooks/lemonsqueezy", content_type="application/json")


def verify(body: bytes, header: str | None, secrets: list[str] | None = None) -> None:
    headers = {"x-signature": header} if header is not None else {}
    LEMONSQUEEZY.verify(body, headers, secrets or [SECRET], 0.0, 300)


def parse(payload: dict[str, Any], context: ParseContext = CONTEXT) -> Any:
    return LEMONSQUEEZY.parse(payload, context)


class TestSignature:
    body = json.dumps(webhook("order_created", ls_order())).encode()

    def test_a_correct_signature_verifies(self) -> None:
        verify(self.body, ls_signature(self.body, SECRET))

    def test_the_published_rfc_4231_vector_verifies_as_hex(self) -> None:
        verify(RFC4231_DATA, RFC4231_HEX, [RFC4231_KEY])
        verify(RFC4231_DATA, RFC4231_HEX.upper(), [RFC4231_KEY])

    def test_a_wrong_secret_or_a_tampered_body_is_a_mismatch(self) -> None:
        with pytest.raises(SignatureMismatch):
            verify(self.body, ls_signature(self.body, "other"))
        with pytest.raises(SignatureMismatch):
            verify(self.body.replace(b"1199", b"119"), ls_signature(self.body, SECRET))

    @pytest.mark.parametrize("header", [None, ""])
    def test_a_missing_header_is_refused(self, header: str | None) -> None:
        with pytest.raises(SignatureError):
            verify(self.body, header)


class TestEvents:
    def test_a_paid_order_is_a_conversion_of_the_order(self) -> None:
        event = parse(webhook("order_created", ls_order()))
        assert isinstance(event, Conversion)
        assert (event.identity, event.click_id, event.goal, event.livemode) == (PURCHASE, CLICK_ID, "purchase", True)
        assert event.amount is not None and (str(event.amount.amount), event.amount.currency) == ("11.99", "USD")

    def test_an_order_carries_lemon_squeezys_own_usd_total(self) -> None:
        event = parse(webhook("order_created", ls_order(total=1000, currency="EUR", total_usd=1085)))
        assert isinstance(event, Conversion) and event.amount is not None and event.platform_converted is not None
        assert (str(event.amount.amount), event.amount.currency) == ("10.00", "EUR")
        assert (str(event.platform_converted.amount), event.platform_converted.currency) == ("10.85", "USD")
        renewal = parse(webhook("subscription_payment_success", invoice(currency="GBP", total=800, total_usd=1016)))
        assert renewal.platform_converted is not None and str(renewal.platform_converted.amount) == "10.16"

    def test_an_event_without_total_usd_has_no_platform_conversion(self) -> None:
        order = ls_order(currency="EUR")
        del order["attributes"]["total_usd"]
        event = parse(webhook("order_created", order))
        assert isinstance(event, Conversion) and event.platform_converted is None and event.amount is not None

    def test_a_renewal_payment_is_a_renewal_of_its_invoice(self) -> None:
        event = parse(webhook("subscription_payment_success", invoice()))
        assert isinstance(event, Conversion)
        assert (event.identity, event.goal, str(event.amount.amount)) == (  # type: ignore[union-attr]
            "lemonsqueezy#subscription-invoices/3301",
            "renewal",
            "9.99",
        )

    def test_the_initial_payment_duplicates_its_order_and_is_ignored(self) -> None:
        assert isinstance(parse(webhook("subscription_payment_success", invoice(billing_reason="initial"))), Ignored)

    def test_a_plan_change_is_a_change_of_its_subscription(self) -> None:
        event = parse(webhook("subscription_payment_success", invoice(billing_reason="updated")))
        assert isinstance(event, Conversion) and (event.payment, event.subscription) == ("change", "851")

    def test_an_unpaid_order_is_ignored(self) -> None:
        assert isinstance(parse(webhook("order_created", ls_order(status="pending"))), Ignored)

    def test_test_mode_is_read_from_meta(self) -> None:
        assert parse(webhook("order_created", ls_order(), test_mode=True)).livemode is False

    def test_the_custom_data_key_is_configurable(self) -> None:
        payload = webhook("order_created", ls_order(), click_id=None)
        payload["meta"]["custom_data"] = {"ts": CLICK_ID}
        custom = ParseContext(CLICK_ID_PATTERN, click_id_metadata_key="ts")
        assert parse(payload, custom).click_id == CLICK_ID
        assert parse(payload).click_id is None

    @pytest.mark.parametrize(("status", "kind"), [("refunded", "refunded"), ("partial_refund", "partially_refunded")])
    def test_a_refunded_order_reverses_it(self, status: str, kind: str) -> None:
        event = parse(webhook("order_refunded", ls_order(status=status, refunded=600), click_id=None))
        assert isinstance(event, Reversal) and (event.identities, event.kind) == ((PURCHASE,), kind)
        assert event.amount is not None and str(event.amount.amount) == "6.00"

    @pytest.mark.parametrize("event_name", ["license_key_created", "order_updated"])
    def test_other_events_are_ignored(self, event_name: str) -> None:
        assert isinstance(parse(webhook(event_name, ls_order())), Ignored)

    @pytest.mark.parametrize(
        "payload",
        [
            [],
            {"meta": {}, "data": {}},
            webhook("order_created", {**ls_order(), "id": "x1"}),
            webhook("order_created", {**ls_order(), "type": "subscriptions"}),
            webhook("order_created", ls_order(total=-5)),
            webhook("order_created", ls_order(currency="$")),
            webhook("order_created", ls_order(currency="EUR", total_usd=-1)),
            webhook("order_created", {**ls_order(), "attributes": {**ls_order()["attributes"], "total_usd": "10.85"}}),
        ],
    )
    def test_malformed_bodies_are_refused(self, payload: Any) -> None:
        with pytest.raises(MalformedEvent):
            LEMONSQUEEZY.parse(payload, CONTEXT)


class TestThroughTheHandler:
    def test_a_paid_order_becomes_one_postback_answered_exactly_200(
        self, invoke: Invoker, aws: Aws, sandbox: TrafficStarsSandbox
    ) -> None:
        reply = deliver(invoke, webhook("order_created", ls_order()))
        assert (reply.status, reply.body) == (200, {"status": "sent", "conversion_id": PURCHASE})
        [received] = sandbox.state.received
        assert (received.click_id, received.params["value"], received.key_matched) == (CLICK_ID, "11.99", True)
        record = aws.record(PURCHASE)
        assert record is not None and (record["status"], record["goal"]) == ("sent", "purchase")

    def test_a_subscriptions_first_payment_sends_one_postback_and_each_renewal_one_more(
        self, invoke: Invoker, aws: Aws, sandbox: TrafficStarsSandbox
    ) -> None:
        replies = [
            deliver(invoke, webhook("order_created", ls_order())),
            deliver(
                invoke, webhook("subscription_payment_success", invoice(invoice_id="3300", billing_reason="initial"))
            ),
            deliver(invoke, webhook("subscription_payment_success", invoice(invoice_id="3301"))),
            deliver(invoke, webhook("subscription_payment_success", invoice(invoice_id="3301"))),  # retried
        ]
        assert [r.status for r in replies] == [200, 200, 200, 200]
        assert [r.body["status"] for r in replies] == ["sent", "ignored", "sent", "duplicate"]
        assert len(sandbox.state.received) == 2
        assert len({r.params["lead_code"] for r in sandbox.state.received}) == 2

    def test_an_order_in_a_currency_without_a_rate_is_sent_with_lemon_squeezys_usd_total(
        self, invoke: Invoker, aws: Aws, sandbox: TrafficStarsSandbox
    ) -> None:
        order = ls_order(total=1000, currency="EUR", total_usd=1085, currency_rate="1.08500000")
        reply = deliver(invoke, webhook("order_created", order))
        assert (reply.status, reply.body["status"]) == (200, "sent")
        [received] = sandbox.state.received
        assert (received.click_id, received.params["value"]) == (CLICK_ID, "10.85")
        record = aws.record(PURCHASE)
        assert record is not None
        assert (record["amount"], record["currency"], record["value"], record["value_currency"]) == (
            "10.00",
            "EUR",
            "10.85",
            "USD",
        )
        assert record["value_note"] == "platform_converted_from:EUR"

    def test_a_configured_rate_comes_before_lemon_squeezys_usd_total(
        self, invoke: Invoker, relay_env: pytest.MonkeyPatch, sandbox: TrafficStarsSandbox
    ) -> None:
        relay_env.setenv("FX_RATES", '{"EUR": "1.10"}')
        deliver(invoke, webhook("order_created", ls_order(total=1000, currency="EUR", total_usd=1085)))
        assert [r.params["value"] for r in sandbox.state.received] == ["11.00"]

    def test_a_renewal_in_another_currency_takes_its_usd_total_too(
        self, invoke: Invoker, aws: Aws, sandbox: TrafficStarsSandbox
    ) -> None:
        renewal = invoice(currency="GBP", total=800, total_usd=1016)
        reply = deliver(invoke, webhook("subscription_payment_success", renewal))
        assert reply.body == {"status": "sent", "conversion_id": "lemonsqueezy#subscription-invoices/3301"}
        assert [r.params["value"] for r in sandbox.state.received] == ["10.16"]

    def test_without_total_usd_a_currency_without_a_rate_is_sent_without_value(
        self, invoke: Invoker, aws: Aws, sandbox: TrafficStarsSandbox
    ) -> None:
        order = ls_order(currency="EUR")
        del order["attributes"]["total_usd"]
        assert deliver(invoke, webhook("order_created", order)).body["status"] == "sent"
        record = aws.record(PURCHASE)
        assert record is not None and (record.get("value"), record["value_note"]) == (None, "unknown_currency:EUR")
        assert [r.params.get("value") for r in sandbox.state.received] == [None]

    def test_outside_usd_accounts_lemon_squeezys_usd_total_needs_a_usd_rate(
        self, invoke: Invoker, aws: Aws, relay_env: pytest.MonkeyPatch, sandbox: TrafficStarsSandbox
    ) -> None:
        relay_env.setenv("ACCOUNT_CURRENCY", "GBP")  # no rate for EUR nor for USD: Lemon Squeezy's USD cannot help
        deliver(invoke, webhook("order_created", ls_order(currency="EUR", total_usd=1085)))
        record = aws.record(PURCHASE)
        assert record is not None and (record.get("value"), record["value_note"]) == (None, "unknown_currency:EUR")
        assert [r.params.get("value") for r in sandbox.state.received] == [None]

    def test_outside_usd_accounts_lemon_squeezys_usd_total_is_converted_with_the_usd_rate(
        self, invoke: Invoker, aws: Aws, relay_env: pytest.MonkeyPatch, sandbox: TrafficStarsSandbox
    ) -> None:
        relay_env.setenv("ACCOUNT_CURRENCY", "GBP")
        relay_env.setenv("FX_RATES", '{"USD": "0.80"}')
        deliver(invoke, webhook("order_created", ls_order(currency="EUR", total=1000, total_usd=1085)))
        record = aws.record(PURCHASE)
        assert record is not None and (record["value"], record["value_currency"], record["value_note"]) == (
            "8.68",
            "GBP",
            "platform_converted_from:EUR;converted_from:USD",
        )
        assert [r.params["value"] for r in sandbox.state.received] == ["8.68"]

    def test_a_test_mode_order_is_recorded_and_not_forwarded(
        self, invoke: Invoker, aws: Aws, sandbox: TrafficStarsSandbox
    ) -> None:
        reply = deliver(invoke, webhook("order_created", ls_order(), test_mode=True))
        assert (reply.status, reply.body["status"]) == (200, "test_mode")
        assert sandbox.state.received == []

    def test_a_refund_marks_the_order_and_sends_nothing(
        self, invoke: Invoker, aws: Aws, sandbox: TrafficStarsSandbox
    ) -> None:
        deliver(invoke, webhook("order_created", ls_order()))
        refund = webhook("order_refunded", ls_order(status="refunded", refunded=1199), click_id=None)
        reply = deliver(invoke, refund)
        assert (reply.status, reply.body["status"]) == (200, "refunded")
        record = aws.record(PURCHASE)
        assert record is not None and (record["status"], record["reversal_amount"]) == ("refunded", "11.99")
        assert len(sandbox.state.received) == 1

    def test_an_ignored_event_is_exactly_200_with_nothing_stored(
        self, invoke: Invoker, aws: Aws, sandbox: TrafficStarsSandbox
    ) -> None:
        cancelled = webhook("subscription_cancelled", {"type": "subscriptions", "id": "851", "attributes": {}})
        reply = deliver(invoke, cancelled)
        assert (reply.status, reply.body["status"]) == (200, "ignored")
        assert aws.items() == [] and sandbox.state.received == []

    def test_a_wrong_secret_a_missing_header_or_a_tampered_body_is_401_and_stores_nothing(
        self, invoke: Invoker, aws: Aws, sandbox: TrafficStarsSandbox
    ) -> None:
        payload = webhook("order_created", ls_order())
        body = json.dumps(payload).encode()
        wrong = deliver(invoke, payload, "ls_forged")
        missing = invoke(body, {"X-Event-Name": "order_created"}, path="/webhooks/lemonsqueezy")
        tampered = invoke(
            body.replace(b"1199", b"119"), {"X-Signature": ls_signature(body, SECRET)}, path="/webhooks/lemonsqueezy"
        )
        assert [r.status for r in (wrong, missing, tampered)] == [401, 401, 401]
        assert aws.items() == [] and sandbox.state.received == []

    def test_malformed_bodies_are_400(self, invoke: Invoker, aws: Aws) -> None:
        for body in (b'{"meta": ', json.dumps(webhook("order_created", {"type": "orders"})).encode()):
            reply = invoke(body, {"X-Signature": ls_signature(body, SECRET)}, path="/webhooks/lemonsqueezy")
            assert (reply.status, reply.body["error"]) == (400, "malformed_body")
        assert aws.items() == []

    def test_without_its_secret_lemon_squeezy_is_404_and_accepts_nothing(self, invoke: Invoker, aws: Aws) -> None:
        aws.put_secret({"trafficstars_key": TEST_KEY})
        reply = deliver(invoke, webhook("order_created", ls_order()))
        assert (reply.status, reply.body["error"]) == (404, "source_not_configured")
        assert aws.items() == []


EXPECTED = {
    "order_created": "sent",
    "subscription_payment_success": "sent",
    "subscription_payment_success-initial": "ignored",
    "order_refunded": "refunded",  # nothing recorded yet: kept, so a late delivery of the order is not sent
    "subscription_created": "linked",  # its order is the subscription's first paid payment
}


def test_there_is_a_sample_for_every_handled_event_a_reversal_and_an_ignored_one() -> None:
    assert {path.stem for path in samples("lemonsqueezy")} == set(EXPECTED)


@pytest.mark.parametrize("path", samples("lemonsqueezy"), ids=lambda p: p.stem)
def test_every_sample_event_goes_through_the_handler(
    path: Path, relay_env: pytest.MonkeyPatch, aws: Aws, sandbox: TrafficStarsSandbox
) -> None:
    relay_env.setenv("LEMONSQUEEZY_WEBHOOK_SECRET", SECRET)
    status, body, event = run_sample(path)
    assert event["rawPath"] == "/webhooks/lemonsqueezy"
    assert event["headers"]["x-event-name"] == path.stem.split("-")[0]
    assert (status, body["status"]) == (200, EXPECTED[path.stem])
