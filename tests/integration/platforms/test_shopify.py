"""Shopify: signatures exactly as Shopify signs, which orders count, identity, click id and amount; then the
same through the real handler, moto server and the HTTPS TrafficStars sandbox."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from postback_relay.core.conversion import Conversion, Ignored, ParseContext, Reversal
from postback_relay.networks.trafficstars import CLICK_ID_PATTERN
from postback_relay.platforms.base import MalformedEvent, SignatureError, SignatureMismatch
from postback_relay.platforms.shopify import SHOPIFY
from postback_relay_dev.sandbox import TrafficStarsSandbox
from tests.support.aws import Aws
from tests.support.constants import TEST_KEY, TEST_SOURCE_SECRETS
from tests.support.helpers import (
    CLICK_ID,
    RFC4231_BASE64,
    RFC4231_DATA,
    RFC4231_KEY,
    Invoker,
    Reply,
    run_sample,
    samples,
)

SECRET = TEST_SOURCE_SECRETS["shopify_webhook_secret"]
CONTEXT = ParseContext(CLICK_ID_PATTERN)
ORDER_ID = 820982911946154508
PURCHASE = f"shopify#{ORDER_ID}"


def shopify_hmac(body: bytes, secret: str) -> str:
    """X-Shopify-Hmac-Sha256 as Shopify makes it: base64 of the HMAC-SHA256 digest of the raw body."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def order(
    *,
    order_id: int = ORDER_ID,
    financial_status: str = "paid",
    click_id: str | None = CLICK_ID,
    in_landing_site: bool = False,
    total: str = "59.99",
    currency: str = "USD",
    test: bool = False,
    cancelled: bool = False,
) -> dict[str, Any]:
    """An order as Shopify's orders/* topics send it (the REST resource, trimmed to what matters here)."""
    landing = f"/products/hoodie?utm_source=trafficstars&click_id={click_id}" if in_landing_site else "/"
    notes = [{"name": "gift_note", "value": "Happy birthday"}]
    if click_id and not in_landing_site:
        notes.append({"name": "click_id", "value": click_id})
    return {
        "id": order_id,
        "admin_graphql_api_id": f"gid://shopify/Order/{order_id}",
        "name": "#1001",
        "order_number": 1001,
        "email": "jon@example.com",
        "created_at": "2026-11-02T10:14:03-05:00",
        "updated_at": "2026-11-02T10:14:05-05:00",
        "processed_at": "2026-11-02T10:14:03-05:00",
        "cancelled_at": "2026-11-03T09:00:00-05:00" if cancelled else None,
        "cancel_reason": "customer" if cancelled else None,
        "currency": currency,
        "presentment_currency": currency,
        "current_total_price": total,
        "total_price": total,
        "subtotal_price": total,
        "total_tax": "0.00",
        "financial_status": financial_status,
        "fulfillment_status": None,
        "landing_site": landing,
        "referring_site": "https://www.example-ads.com/",
        "note_attributes": notes,
        "source_name": "web",
        "test": test,
        "line_items": [{"id": 866550311766439020, "title": "Hoodie", "quantity": 1, "price": total}],
    }


def refund(*, order_id: int = ORDER_ID, amount: str = "20.00", status: str = "success") -> dict[str, Any]:
    """A refund as refunds/create sends it: no click id, only the order it belongs to."""
    return {
        "id": 929361462,
        "order_id": order_id,
        "created_at": "2026-11-04T12:00:00-05:00",
        "note": "damaged",
        "restock": True,
        "refund_line_items": [],
        "transactions": [
            {
                "id": 179259969,
                "order_id": order_id,
                "kind": "refund",
                "status": status,
                "amount": amount,
                "currency": "USD",
                "gateway": "shopify_payments",
            }
        ],
    }


def deliver(invoke: Invoker, topic: str, payload: dict[str, Any], secret: str = SECRET) -> Reply:
    """POST ``payload`` to /webhooks/shopify as Shopify delivers it: signed, with its topic headers."""
    body = json.dumps(payload).encode()
    headers = {
        "X-Shopify-Topic": topic,
        "X-Shopify-Shop-Domain": "example.myshopify.com",
        "X-Shopify-API-Version": "2026-10",
        "X-Shopify-Webhook-Id": str(uuid.uuid4()),
        "X-Shopify-Hmac-Sha256": shopify_hmac(body, secret),
    }
    return invoke(body, headers, path="/webhooks/shopify")


def verify(body: bytes, header: str | None, secrets: list[str] | None = None) -> None:
    headers = {"x-shopify-hmac-sha256": header} if header is not None else {}
    SHOPIFY.verify(body, headers, secrets or [SECRET], 0.0, 300)


class TestSignature:
    body = json.dumps(order()).encode()

    def test_a_correct_signature_verifies(self) -> None:
        verify(self.body, shopify_hmac(self.body, SECRET))

    def test_the_published_rfc_4231_vector_verifies_as_base64(self) -> None:
        verify(RFC4231_DATA, RFC4231_BASE64, [RFC4231_KEY])

    def test_a_hex_digest_is_not_shopifys_format(self) -> None:
        hex_digest = hmac.new(SECRET.encode(), self.body, hashlib.sha256).hexdigest()
        with pytest.raises(SignatureMismatch):
            verify(self.body, hex_digest)

    def test_the_unprefixed_header_of_event_deliveries_is_read_too(self) -> None:
        SHOPIFY.verify(self.body, {"shopify-hmac-sha256": shopify_hmac(self.body, SECRET)}, [SECRET], 0.0, 300)

    def test_either_secret_verifies_while_one_is_rolled(self) -> None:
        verify(self.body, shopify_hmac(self.body, "new"), ["old", "new"])

    def test_a_wrong_secret_or_a_tampered_body_is_a_mismatch(self) -> None:
        with pytest.raises(SignatureMismatch):
            verify(self.body, shopify_hmac(self.body, "other"))
        with pytest.raises(SignatureMismatch):
            verify(self.body.replace(b"59.99", b"5.99"), shopify_hmac(self.body, SECRET))

    @pytest.mark.parametrize("header", [None, ""])
    def test_a_missing_header_is_refused(self, header: str | None) -> None:
        with pytest.raises(SignatureError):
            verify(self.body, header)

    def test_an_empty_body_is_refused_even_with_its_signature(self) -> None:
        with pytest.raises(SignatureError):
            verify(b"", shopify_hmac(b"", SECRET))


class TestEvents:
    def test_a_paid_order_is_a_conversion_of_the_order(self) -> None:
        event = SHOPIFY.parse(order(), CONTEXT)
        assert isinstance(event, Conversion)
        assert (event.identity, event.click_id, event.livemode) == (PURCHASE, CLICK_ID, True)
        assert event.amount is not None and (str(event.amount.amount), event.amount.currency) == ("59.99", "USD")
        assert event.details == {"order_name": "#1001"}

    def test_the_click_id_is_read_from_the_landing_site_when_no_cart_attribute_has_it(self) -> None:
        assert SHOPIFY.parse(order(in_landing_site=True), CONTEXT).click_id == CLICK_ID  # type: ignore[union-attr]

    def test_a_cart_attribute_wins_over_the_landing_site(self) -> None:
        payload = order()
        payload["landing_site"] = "/?click_id=" + "f" * 40
        assert SHOPIFY.parse(payload, CONTEXT).click_id == CLICK_ID  # type: ignore[union-attr]

    def test_the_attribute_name_is_the_configured_key(self) -> None:
        payload = order(click_id=None)
        payload["note_attributes"] = [{"name": "ts_click", "value": CLICK_ID}]
        custom = ParseContext(CLICK_ID_PATTERN, click_id_metadata_key="ts_click")
        assert SHOPIFY.parse(payload, custom).click_id == CLICK_ID  # type: ignore[union-attr]
        assert SHOPIFY.parse(payload, CONTEXT).click_id is None  # type: ignore[union-attr]

    @pytest.mark.parametrize("status", ["pending", "authorized", "partially_paid", "voided"])
    def test_an_order_that_is_not_paid_is_ignored(self, status: str) -> None:
        assert isinstance(SHOPIFY.parse(order(financial_status=status), CONTEXT), Ignored)

    def test_a_test_order_is_test_mode(self) -> None:
        assert SHOPIFY.parse(order(test=True), CONTEXT).livemode is False  # type: ignore[union-attr]

    def test_a_zero_decimal_currency_is_read_as_sent(self) -> None:
        event = SHOPIFY.parse(order(total="7500", currency="JPY"), CONTEXT)
        assert event.amount is not None and str(event.amount.amount) == "7500"  # type: ignore[union-attr]

    def test_a_refund_reverses_its_order_and_sums_what_was_returned(self) -> None:
        event = SHOPIFY.parse(refund(amount="20.00"), CONTEXT)
        assert isinstance(event, Reversal)
        assert (event.identities, event.kind) == ((PURCHASE,), "partially_refunded")
        assert event.amount is not None and str(event.amount.amount) == "20.00"

    def test_a_refund_whose_amount_cannot_be_read_is_still_a_reversal(self) -> None:
        payload = refund()
        del payload["transactions"][0]["currency"]
        event = SHOPIFY.parse(payload, CONTEXT)
        assert isinstance(event, Reversal) and event.amount is None

    def test_a_refund_that_returned_no_money_is_ignored(self) -> None:
        assert isinstance(SHOPIFY.parse(refund(status="failure"), CONTEXT), Ignored)

    def test_a_cancelled_or_refunded_order_is_a_reversal(self) -> None:
        cancelled = SHOPIFY.parse(order(cancelled=True, financial_status="refunded"), CONTEXT)
        assert isinstance(cancelled, Reversal) and cancelled.kind == "cancelled"
        refunded = SHOPIFY.parse(order(financial_status="refunded"), CONTEXT)
        assert isinstance(refunded, Reversal) and refunded.kind == "refunded"

    def test_other_resources_are_ignored(self) -> None:
        customer = {"id": 706405506930370084, "email": "bob@example.com", "orders_count": 1}
        assert isinstance(SHOPIFY.parse(customer, CONTEXT), Ignored)

    @pytest.mark.parametrize(
        "payload",
        [
            [],
            {"financial_status": "paid"},
            {**order(), "id": "abc"},
            {**order(), "current_total_price": "lots"},
            {**order(), "current_total_price": "-1.00"},
            {**order(), "currency": "dollars"},
            {**refund(), "order_id": None},
        ],
    )
    def test_malformed_bodies_are_refused(self, payload: Any) -> None:
        with pytest.raises(MalformedEvent):
            SHOPIFY.parse(payload, CONTEXT)


class TestThroughTheHandler:
    def test_a_paid_order_becomes_one_postback_and_one_record(
        self, invoke: Invoker, aws: Aws, sandbox: TrafficStarsSandbox
    ) -> None:
        reply = deliver(invoke, "orders/paid", order())
        assert (reply.status, reply.body) == (200, {"status": "sent", "conversion_id": PURCHASE})
        [received] = sandbox.state.received
        assert (received.click_id, received.params["value"], received.key_matched) == (CLICK_ID, "59.99", True)
        record = aws.record(PURCHASE)
        assert record is not None and record["status"] == "sent"
        assert (record["source"], record["purchase_id"], record["detail_order_name"]) == (
            "shopify",
            str(ORDER_ID),
            "#1001",
        )
        assert (record["amount"], record["currency"], record["lead_code"]) == (
            "59.99",
            "USD",
            received.params["lead_code"],
        )

    def test_orders_create_of_a_paid_order_and_orders_paid_send_one_postback(
        self, invoke: Invoker, aws: Aws, sandbox: TrafficStarsSandbox
    ) -> None:
        first = deliver(invoke, "orders/create", order())
        second = deliver(invoke, "orders/paid", order())
        retried = deliver(invoke, "orders/paid", order())  # Shopify retries with the original payload
        assert [r.body["status"] for r in (first, second, retried)] == ["sent", "duplicate", "duplicate"]
        assert len(sandbox.state.received) == 1
        assert len(aws.items()) == 1

    def test_an_unpaid_order_is_ignored_and_its_payment_later_is_sent(
        self, invoke: Invoker, aws: Aws, sandbox: TrafficStarsSandbox
    ) -> None:
        pending = deliver(invoke, "orders/create", order(financial_status="pending"))
        assert (pending.status, pending.body["status"]) == (200, "ignored")
        assert aws.items() == [] and sandbox.state.received == []
        assert deliver(invoke, "orders/paid", order()).body["status"] == "sent"

    def test_a_test_order_is_recorded_and_not_forwarded(
        self, invoke: Invoker, aws: Aws, sandbox: TrafficStarsSandbox
    ) -> None:
        assert deliver(invoke, "orders/paid", order(test=True)).body["status"] == "test_mode"
        assert sandbox.state.received == []
        record = aws.record(PURCHASE)
        assert record is not None and record["livemode"] is False

    def test_a_refund_marks_the_order_and_sends_nothing(
        self, invoke: Invoker, aws: Aws, sandbox: TrafficStarsSandbox
    ) -> None:
        deliver(invoke, "orders/paid", order())
        reply = deliver(invoke, "refunds/create", refund(amount="20.00"))
        assert (reply.status, reply.body["status"]) == (200, "partially_refunded")
        record = aws.record(PURCHASE)
        assert record is not None
        assert (record["status"], record["reversal_kind"], record["reversal_amount"]) == (
            "sent",
            "partially_refunded",
            "20.00",
        )
        assert len(sandbox.state.received) == 1

    def test_a_cancelled_order_is_marked_cancelled_and_never_sent_later(
        self, invoke: Invoker, aws: Aws, sandbox: TrafficStarsSandbox
    ) -> None:
        sandbox.state.fault = lambda received: (503, "")
        deliver(invoke, "orders/paid", order())  # TrafficStars is down: recorded retry_pending
        cancelled = deliver(invoke, "orders/cancelled", order(cancelled=True, financial_status="refunded"))
        assert cancelled.body["status"] == "cancelled"
        sandbox.state.fault = None
        retry = deliver(invoke, "orders/paid", order())
        assert retry.body == {"status": "duplicate", "conversion_id": PURCHASE, "conversion_status": "cancelled"}
        assert sandbox.state.accepted() == []

    def test_a_wrong_secret_a_missing_header_or_a_tampered_body_is_401_and_stores_nothing(
        self, invoke: Invoker, aws: Aws, sandbox: TrafficStarsSandbox
    ) -> None:
        body = json.dumps(order()).encode()
        wrong = deliver(invoke, "orders/paid", order(), secret="shpss_forged")
        missing = invoke(body, {"X-Shopify-Topic": "orders/paid"}, path="/webhooks/shopify")
        tampered = invoke(
            body.replace(b'"59.99"', b'"5.99"'),
            {"X-Shopify-Hmac-Sha256": shopify_hmac(body, SECRET)},
            path="/webhooks/shopify",
        )
        assert [r.status for r in (wrong, missing, tampered)] == [401, 401, 401]
        assert {r.body["error"] for r in (wrong, missing, tampered)} == {"invalid_signature"}
        assert aws.items() == [] and sandbox.state.received == []

    def test_malformed_bodies_are_400(self, invoke: Invoker, aws: Aws) -> None:
        for body in (b'{"id": 1, "financial_status": ', json.dumps({**order(), "id": "x"}).encode()):
            reply = invoke(body, {"X-Shopify-Hmac-Sha256": shopify_hmac(body, SECRET)}, path="/webhooks/shopify")
            assert (reply.status, reply.body["error"]) == (400, "malformed_body")
        assert aws.items() == []

    def test_without_its_secret_shopify_is_404_and_accepts_nothing(self, invoke: Invoker, aws: Aws) -> None:
        aws.put_secret({"trafficstars_key": TEST_KEY})
        reply = deliver(invoke, "orders/paid", order())
        assert (reply.status, reply.body["error"]) == (404, "source_not_configured")
        assert "shopify_webhook_secret" in reply.body["message"]
        assert aws.items() == []


EXPECTED = {
    "orders-paid": "sent",
    "orders-create": "sent",
    "refunds-create": "ignored",  # a partial refund of nothing recorded changes nothing
    "orders-cancelled": "cancelled",  # nothing recorded yet: kept, so a late delivery of the order is not sent
    "orders-create-pending": "ignored",
    "disputes-create": "charged_back",  # nothing recorded yet: kept, so a late delivery of the order is not sent
}


def test_there_is_a_sample_for_every_handled_topic_the_reversals_and_an_ignored_one() -> None:
    assert {path.stem for path in samples("shopify")} == set(EXPECTED)


@pytest.mark.parametrize("path", samples("shopify"), ids=lambda p: p.stem)
def test_every_sample_event_goes_through_the_handler(
    path: Path, relay_env: pytest.MonkeyPatch, aws: Aws, sandbox: TrafficStarsSandbox
) -> None:
    relay_env.setenv("SHOPIFY_WEBHOOK_SECRET", SECRET)
    status, body, event = run_sample(path)
    assert event["rawPath"] == "/webhooks/shopify"
    assert event["headers"]["x-shopify-topic"] == path.stem.replace("-pending", "").replace("-", "/", 1)
    assert (status, body["status"]) == (200, EXPECTED[path.stem])
