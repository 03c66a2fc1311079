"""WooCommerce: signatures exactly as WooCommerce signs (over `trim(wp_json_encode(...))`), the unsigned creation
ping, which order statuses count, identity, click id and amount; then the same through the real handler."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import pytest

from postback_relay.core.conversion import Conversion, Ignored, ParseContext, Reversal
from postback_relay.networks.trafficstars import CLICK_ID_PATTERN
from postback_relay.platforms.base import MalformedEvent, SignatureError, SignatureMismatch
from postback_relay.platforms.woocommerce import WOOCOMMERCE
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

SECRET = TEST_SOURCE_SECRETS["woocommerce_webhook_secret"]
CONTEXT = ParseContext(CLICK_ID_PATTERN)
ORDER_KEY = "wc_order_kzv8T1r6Qf3mB"
PURCHASE = f"woocommerce#727:{ORDER_KEY}"
SESSION_ENTRY = "_wc_order_attribution_session_entry"


def wp_json_encode(payload: Any) -> bytes:
    """The body as WooCommerce sends it: `trim(wp_json_encode($payload))`, i.e. PHP's json_encode defaults:
    compact, slashes escaped as `\\/`, non-ASCII as `\\uXXXX`."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=True).replace("/", "\\/").encode()


def wc_signature(body: bytes, secret: str) -> str:
    """X-WC-Webhook-Signature: base64_encode(hash_hmac('sha256', $body, $secret, true))."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def wc_order(
    *,
    order_id: int = 727,
    status: str = "processing",
    click_id: str | None = CLICK_ID,
    in_session_entry: bool = False,
    total: str = "34.99",
    currency: str = "USD",
    order_key: str = ORDER_KEY,
) -> dict[str, Any]:
    """An order as the order.* topics deliver it (the REST API v3 resource, trimmed)."""
    landing = "https://shop.example.com/landing/?utm_source=trafficstars"
    meta: list[dict[str, Any]] = [
        {"id": 1301, "key": "_wc_order_attribution_source_type", "value": "utm"},
        {"id": 1302, "key": "_wc_order_attribution_utm_source", "value": "trafficstars"},
    ]
    if click_id and in_session_entry:
        landing += f"&click_id={click_id}"
    elif click_id:
        meta.append({"id": 1304, "key": "click_id", "value": click_id})
    meta.append({"id": 1303, "key": SESSION_ENTRY, "value": landing})
    return {
        "id": order_id,
        "parent_id": 0,
        "status": status,
        "currency": currency,
        "version": "9.4.2",
        "date_created_gmt": "2026-11-02T15:14:03",
        "date_modified_gmt": "2026-11-02T15:14:09",
        "discount_total": "0.00",
        "shipping_total": "5.00",
        "total": total,
        "total_tax": "0.00",
        "customer_id": 0,
        "order_key": order_key,
        "billing": {"first_name": "Jon", "last_name": "Doe", "email": "jon@example.com", "country": "US"},
        "payment_method": "stripe",
        "payment_method_title": "Credit card",
        "transaction_id": "pi_3QabcdEFGHijkLMN",
        "created_via": "checkout",
        "date_paid_gmt": "2026-11-02T15:14:09" if status in ("processing", "completed") else None,
        "number": str(order_id),
        "meta_data": meta,
        "line_items": [{"id": 315, "name": "Hoodie", "quantity": 1, "total": "29.99", "meta_data": []}],
        "refunds": [],
        "currency_symbol": "$",
    }


def deliver(
    invoke: Invoker, topic: str, payload: Any, secret: str = SECRET, delivery_id: str = "3c8e3b1f0d6c5a8e"
) -> Reply:
    """POST ``payload`` to /webhooks/woocommerce as WooCommerce delivers it."""
    body = wp_json_encode(payload)
    resource, _, event = topic.partition(".")
    headers = {
        "User-Agent": "WooCommerce/9.4.2 Hookshot (WordPress/6.7.1)",
        "X-WC-Webhook-Source": "https://shop.example.com/",
        "X-WC-Webhook-Topic": topic,
        "X-WC-Webhook-Resource": resource,
        "X-WC-Webhook-Event": event,
        "X-WC-Webhook-ID": "12",
        "X-WC-Webhook-Delivery-ID": delivery_id,
        "X-WC-Webhook-Signature": wc_signature(body, secret),
    }
    return invoke(body, headers, path="/webhooks/woocommerce", content_type="application/json")


def ping(invoke: Invoker, body: bytes = b"webhook_id=12", headers: dict[str, str] | None = None) -> Reply:
    """WooCommerce's creation ping: an unsigned form POST (API Gateway base64-encodes its body)."""
    return invoke(
        body,
        {"User-Agent": "WooCommerce/9.4.2 Hookshot (WordPress/6.7.1)", **(headers or {})},
        path="/webhooks/woocommerce",
        content_type="application/x-www-form-urlencoded",
    )


def verify(body: bytes, header: str | None, secrets: list[str] | None = None) -> None:
    headers = {"x-wc-webhook-signature": header} if header is not None else {}
    WOOCOMMERCE.verify(body, headers, secrets or [SECRET], 0.0, 300)


class TestSignature:
    body = wp_json_encode(wc_order())

    def test_a_correct_signature_over_the_escaped_body_verifies(self) -> None:
        assert b"https:\\/\\/shop.example.com" in self.body  # signed as sent, before any JSON decoding
        verify(self.body, wc_signature(self.body, SECRET))

    def test_the_published_rfc_4231_vector_verifies_as_base64(self) -> None:
        verify(RFC4231_DATA, RFC4231_BASE64, [RFC4231_KEY])

    def test_a_re_encoded_body_no_longer_matches(self) -> None:
        reencoded = json.dumps(json.loads(self.body)).encode()
        with pytest.raises(SignatureMismatch):
            verify(reencoded, wc_signature(self.body, SECRET))

    def test_a_wrong_secret_is_a_mismatch_and_a_missing_header_is_refused(self) -> None:
        with pytest.raises(SignatureMismatch):
            verify(self.body, wc_signature(self.body, "other"))
        with pytest.raises(SignatureError):
            verify(self.body, None)

    @pytest.mark.parametrize(
        ("body", "headers", "expected"),
        [
            (b"webhook_id=12", {}, True),
            (b"webhook_id=12\n", {}, True),
            (b"webhook_id=12", {"x-wc-webhook-signature": "c2ln"}, False),  # signed: verified as usual
            (b"webhook_id=12&status=processing", {}, False),
            (b"webhook_id=abc", {}, False),
            (b'{"webhook_id": 12}', {}, False),
            (b"", {}, False),
        ],
    )
    def test_only_the_creation_ping_itself_is_a_ping(
        self, body: bytes, headers: dict[str, str], expected: bool
    ) -> None:
        assert WOOCOMMERCE.is_ping(body, headers) is expected


class TestEvents:
    def test_a_processing_order_is_a_conversion_of_the_order(self) -> None:
        event = WOOCOMMERCE.parse(wc_order(), CONTEXT)
        assert isinstance(event, Conversion)
        assert (event.identity, event.click_id, event.event_type) == (PURCHASE, CLICK_ID, "order.processing")
        assert event.amount is not None and (str(event.amount.amount), event.amount.currency) == ("34.99", "USD")

    def test_a_completed_order_is_the_same_conversion(self) -> None:
        assert WOOCOMMERCE.parse(wc_order(status="completed"), CONTEXT).identity == PURCHASE  # type: ignore[union-attr]

    @pytest.mark.parametrize("status", ["pending", "on-hold", "failed", "checkout-draft", "trash"])
    def test_orders_that_are_not_paid_are_ignored(self, status: str) -> None:
        assert isinstance(WOOCOMMERCE.parse(wc_order(status=status), CONTEXT), Ignored)

    def test_the_click_id_is_read_from_order_attributions_landing_url_when_no_meta_has_it(self) -> None:
        event = WOOCOMMERCE.parse(wc_order(in_session_entry=True), CONTEXT)
        assert event.click_id == CLICK_ID  # type: ignore[union-attr]

    def test_the_meta_key_is_configurable(self) -> None:
        payload = wc_order(click_id=None)
        payload["meta_data"].append({"id": 9, "key": "_ts_click_id", "value": CLICK_ID})
        custom = ParseContext(CLICK_ID_PATTERN, click_id_metadata_key="_ts_click_id")
        assert WOOCOMMERCE.parse(payload, custom).click_id == CLICK_ID  # type: ignore[union-attr]
        assert WOOCOMMERCE.parse(payload, CONTEXT).click_id is None  # type: ignore[union-attr]

    def test_two_shops_order_numbers_do_not_collide(self) -> None:
        other = WOOCOMMERCE.parse(wc_order(order_key="wc_order_OtherShop123"), CONTEXT)
        assert other.identity != PURCHASE  # type: ignore[union-attr]

    @pytest.mark.parametrize(("status", "kind"), [("refunded", "refunded"), ("cancelled", "cancelled")])
    def test_refunded_and_cancelled_orders_are_reversals(self, status: str, kind: str) -> None:
        event = WOOCOMMERCE.parse(wc_order(status=status), CONTEXT)
        assert isinstance(event, Reversal) and (event.identities, event.kind) == ((PURCHASE,), kind)

    @pytest.mark.parametrize("payload", [{"id": 727}, {"action": "woocommerce_order_status_changed", "arg": 727}])
    def test_deleted_orders_and_action_topics_are_ignored(self, payload: dict[str, Any]) -> None:
        assert isinstance(WOOCOMMERCE.parse(payload, CONTEXT), Ignored)

    @pytest.mark.parametrize(
        "payload",
        [[], {**wc_order(), "id": "727"}, {**wc_order(), "status": 3}, {**wc_order(), "total": "n/a"}],
    )
    def test_malformed_bodies_are_refused(self, payload: Any) -> None:
        with pytest.raises(MalformedEvent):
            WOOCOMMERCE.parse(payload, CONTEXT)


class TestThroughTheHandler:
    def test_the_creation_ping_is_exactly_200_and_touches_nothing(
        self, invoke: Invoker, aws: Aws, sandbox: TrafficStarsSandbox
    ) -> None:
        reply = ping(invoke)
        assert (reply.status, reply.body) == (200, {"status": "ping"})
        assert aws.items() == [] and sandbox.state.received == []
        assert aws.calls("GetSecretValue") == 0

    def test_the_ping_is_answered_before_the_secret_is_set_up(self, invoke: Invoker, aws: Aws) -> None:
        # WooCommerce pings when the webhook is saved, before its secret can have reached the relay.
        aws.put_secret({"trafficstars_key": TEST_KEY})
        assert ping(invoke).status == 200
        assert deliver(invoke, "order.created", wc_order()).status == 404

    def test_other_unsigned_form_posts_are_refused(self, invoke: Invoker, aws: Aws) -> None:
        assert ping(invoke, b"webhook_id=12&status=processing").status == 401
        assert ping(invoke, b"webhook_id=12", {"X-WC-Webhook-Signature": "Zm9yZ2Vk"}).status == 401
        assert aws.items() == []

    def test_a_paid_order_becomes_one_postback_and_one_record(
        self, invoke: Invoker, aws: Aws, sandbox: TrafficStarsSandbox
    ) -> None:
        reply = deliver(invoke, "order.created", wc_order())
        assert (reply.status, reply.body) == (200, {"status": "sent", "conversion_id": PURCHASE})
        [received] = sandbox.state.received
        assert (received.click_id, received.params["value"], received.key_matched) == (CLICK_ID, "34.99", True)
        record = aws.record(PURCHASE)
        assert record is not None and record["status"] == "sent"
        assert (record["source"], record["detail_order_number"], record["amount"]) == ("woocommerce", "727", "34.99")

    def test_created_pending_then_processing_then_completed_sends_once(
        self, invoke: Invoker, aws: Aws, sandbox: TrafficStarsSandbox
    ) -> None:
        statuses = [
            deliver(invoke, "order.created", wc_order(status="pending")).body["status"],
            deliver(invoke, "order.updated", wc_order(status="processing")).body["status"],
            deliver(invoke, "order.updated", wc_order(status="completed")).body["status"],
        ]
        assert statuses == ["ignored", "sent", "duplicate"]
        assert len(sandbox.state.received) == 1
        record = aws.record(PURCHASE)
        assert record is not None and record["event_types"] == {"order.processing", "order.completed"}

    def test_the_delivery_id_is_not_an_identity(self, invoke: Invoker, aws: Aws, sandbox: TrafficStarsSandbox) -> None:
        """WooCommerce's delivery id is the webhook id hashed with the current second: two orders delivered in
        the same second share it, and must still be two conversions."""
        first = deliver(invoke, "order.created", wc_order(), delivery_id="same-second")
        second = deliver(
            invoke, "order.created", wc_order(order_id=728, order_key="wc_order_B2"), delivery_id="same-second"
        )
        assert [first.body["status"], second.body["status"]] == ["sent", "sent"]
        assert len(sandbox.state.received) == 2

    def test_an_ignored_order_is_200_with_nothing_stored(
        self, invoke: Invoker, aws: Aws, sandbox: TrafficStarsSandbox
    ) -> None:
        for reply in (
            deliver(invoke, "order.updated", wc_order(status="on-hold")),
            deliver(invoke, "order.deleted", {"id": 727}),
        ):
            assert (reply.status, reply.body["status"]) == (200, "ignored")
        assert aws.items() == [] and sandbox.state.received == []

    def test_a_refund_marks_the_order_and_sends_nothing(
        self, invoke: Invoker, aws: Aws, sandbox: TrafficStarsSandbox
    ) -> None:
        deliver(invoke, "order.created", wc_order())
        reply = deliver(invoke, "order.updated", wc_order(status="refunded"))
        assert (reply.status, reply.body["status"]) == (200, "refunded")
        record = aws.record(PURCHASE)
        assert record is not None and (record["status"], record["status_before_reversal"]) == ("refunded", "sent")
        assert len(sandbox.state.received) == 1

    def test_value_is_converted_from_the_shop_currency(
        self, invoke: Invoker, relay_env: pytest.MonkeyPatch, sandbox: TrafficStarsSandbox
    ) -> None:
        relay_env.setenv("FX_RATES", '{"EUR": "1.10"}')
        deliver(invoke, "order.created", wc_order(total="20.00", currency="EUR"))
        assert sandbox.state.received[0].params["value"] == "22.00"

    def test_a_wrong_secret_or_a_tampered_body_is_401_and_stores_nothing(
        self, invoke: Invoker, aws: Aws, sandbox: TrafficStarsSandbox
    ) -> None:
        body = wp_json_encode(wc_order())
        wrong = deliver(invoke, "order.created", wc_order(), secret="wc_forged")
        tampered = invoke(
            body.replace(b'"34.99"', b'"3.49"'),
            {"X-WC-Webhook-Signature": wc_signature(body, SECRET)},
            path="/webhooks/woocommerce",
        )
        missing = invoke(body, {"X-WC-Webhook-Topic": "order.created"}, path="/webhooks/woocommerce")
        assert [r.status for r in (wrong, tampered, missing)] == [401, 401, 401]
        assert aws.items() == [] and sandbox.state.received == []

    def test_malformed_bodies_are_400(self, invoke: Invoker, aws: Aws) -> None:
        for body in (b'{"id":727,"status":', wp_json_encode({**wc_order(), "id": "727"})):
            reply = invoke(body, {"X-WC-Webhook-Signature": wc_signature(body, SECRET)}, path="/webhooks/woocommerce")
            assert (reply.status, reply.body["error"]) == (400, "malformed_body")
        assert aws.items() == []


EXPECTED = {
    "ping": "ping",
    "order.created": "sent",
    "order.updated-completed": "sent",
    "order.updated-refunded": "refunded",  # nothing recorded yet: kept, so a late delivery is not sent
    "order.updated-on-hold": "ignored",
}


def test_there_is_a_sample_for_every_handled_event_the_ping_a_reversal_and_an_ignored_one() -> None:
    assert {path.stem for path in samples("woocommerce")} == set(EXPECTED)


@pytest.mark.parametrize("path", samples("woocommerce"), ids=lambda p: p.stem)
def test_every_sample_event_goes_through_the_handler(
    path: Path, relay_env: pytest.MonkeyPatch, aws: Aws, sandbox: TrafficStarsSandbox
) -> None:
    relay_env.setenv("WOOCOMMERCE_WEBHOOK_SECRET", SECRET)
    status, body, event = run_sample(path)
    assert event["rawPath"] == "/webhooks/woocommerce"
    assert (status, body["status"]) == (200, EXPECTED[path.stem])
