"""Paddle Billing: signatures exactly as Paddle signs (cross-checked with Paddle's own SDK), which events count,
identity, click id, amounts in minor units, the sandbox route; then the same through the real handler."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from paddle_billing.Notifications import Secret, Verifier
from paddle_billing.Notifications.PaddleSignature import PaddleSignature

from postback_relay.core.conversion import Conversion, Ignored, ParseContext, Reversal
from postback_relay.networks.trafficstars import CLICK_ID_PATTERN
from postback_relay.platforms.base import MalformedEvent, SignatureError, SignatureMismatch
from postback_relay.platforms.paddle import PADDLE, PADDLE_SANDBOX
from postback_relay_dev.sandbox import TrafficStarsSandbox
from tests.support.aws import Aws
from tests.support.constants import TEST_KEY, TEST_SOURCE_SECRETS
from tests.support.helpers import CLICK_ID, Invoker, Reply, run_sample, samples

SECRET = TEST_SOURCE_SECRETS["paddle_webhook_secret"]
SANDBOX_SECRET = TEST_SOURCE_SECRETS["paddle_sandbox_webhook_secret"]
CONTEXT = ParseContext(CLICK_ID_PATTERN)
TRANSACTION = "txn_01hv8wptq8987qeep44cyrewp9"
PURCHASE = f"paddle#{TRANSACTION}"


def paddle_signature(body: bytes, secret: str, ts: int | None = None, extra_h1: list[str] | None = None) -> str:
    """Paddle-Signature as Paddle makes it: ts=…;h1=hex(HMAC-SHA256(secret, "{ts}:{raw body}"))[;h1=…]."""
    timestamp = int(time.time()) if ts is None else ts
    h1 = hmac.new(secret.encode(), f"{timestamp}:".encode() + body, hashlib.sha256).hexdigest()
    return ";".join([f"ts={timestamp}", *[f"h1={h}" for h in extra_h1 or []], f"h1={h1}"])


def notification(event_type: str, data: dict[str, Any], *, event_id: str | None = None) -> dict[str, Any]:
    """The notification envelope: a replay of the same event gets a new notification_id, same event_id."""
    return {
        "event_id": event_id or f"evt_{uuid.uuid4().hex[:26]}",
        "event_type": event_type,
        "occurred_at": "2026-11-02T10:18:49.738971Z",
        "notification_id": f"ntf_{uuid.uuid4().hex[:26]}",
        "data": data,
    }


def transaction(
    *,
    txn: str = TRANSACTION,
    status: str = "completed",
    click_id: str | None = CLICK_ID,
    grand_total: str = "4900",
    currency: str = "USD",
    origin: str = "web",
) -> dict[str, Any]:
    """A transaction as transaction.* events carry it (Paddle's SDK fixture, trimmed)."""
    return {
        "id": txn,
        "status": status,
        "customer_id": "ctm_01hv6y1jedq4p1n0yqn5ba3ky4",
        "address_id": "add_01hv8gq3318ktkfengj2r75gfx",
        "business_id": None,
        "custom_data": {"click_id": click_id, "plan": "pro"} if click_id else None,
        "origin": origin,
        "collection_mode": "automatic",
        "subscription_id": "sub_01hv8x29kz0t586xy6zn1a62ny",
        "invoice_id": "inv_01hv8x29nsh54c2pgt0hnq0zkx",
        "invoice_number": "325-10566",
        "currency_code": currency,
        "billed_at": "2026-11-02T10:18:48.294633Z",
        "created_at": "2026-11-02T10:12:33.201400Z",
        "updated_at": "2026-11-02T10:18:49.738971Z",
        "items": [{"price": {"id": "pri_01gsz8x8sawmvhz1pv30nge1ke", "name": "Monthly"}, "quantity": 1}],
        "details": {
            "totals": {
                "subtotal": grand_total,
                "tax": "0",
                "discount": "0",
                "total": grand_total,
                "credit": "0",
                "balance": "0",
                "grand_total": grand_total,
                "fee": "295",
                "earnings": "4605",
                "currency_code": currency,
            }
        },
        "payments": [{"amount": grand_total, "status": "captured", "method_details": {"type": "card"}}],
    }


def adjustment(
    *, action: str = "refund", status: str = "approved", kind: str = "full", total: str = "4900"
) -> dict[str, Any]:
    """An adjustment: it names the transaction, not the click id."""
    return {
        "id": "adj_01hvgf2s84dr6reszzg29zbvcm",
        "action": action,
        "type": kind,
        "reason": "requested_by_customer",
        "status": status,
        "transaction_id": TRANSACTION,
        "subscription_id": "sub_01hv8x29kz0t586xy6zn1a62ny",
        "customer_id": "ctm_01hv6y1jedq4p1n0yqn5ba3ky4",
        "currency_code": "USD",
        "totals": {
            "subtotal": total,
            "tax": "0",
            "total": total,
            "fee": "0",
            "earnings": total,
            "currency_code": "USD",
        },
        "created_at": "2026-11-04T08:48:20.239695Z",
        "updated_at": "2026-11-04T08:54:10.646377Z",
    }


def deliver(
    invoke: Invoker, payload: dict[str, Any], secret: str = SECRET, *, route: str = "paddle", ts: int | None = None
) -> Reply:
    body = json.dumps(payload).encode()
    headers = {"Paddle-Signature": paddle_signature(body, secret, ts), "User-Agent": "Paddle"}
    return invoke(body, headers, path=f"/webhooks/{route}", content_type="application/json")


def verify(body: bytes, header: str | None, secrets: list[str] | None = None, now: float | None = None) -> None:
    headers = {"paddle-signature": header} if header is not None else {}
    PADDLE.verify(body, headers, secrets or [SECRET], time.time() if now is None else now, 300)


class TestSignature:
    body = json.dumps(notification("transaction.completed", transaction())).encode()

    def test_a_correct_signature_verifies(self) -> None:
        verify(self.body, paddle_signature(self.body, SECRET))

    def test_the_paddle_sdks_own_test_vector_verifies(self) -> None:
        secret = "pdl_ntf_01hbpjmytsa32fhr36nqgc3kgb_WvRO0eL4Bj9rgYYIBZY6wZhG4EHy9jzh"
        header = "ts=1696195954;h1=dummy;h1=d96299976a6eb066f484d7fde011ac56fc32b38fc9940bc419d6e537fdc6ef02"
        verify(b"hello-world", header, [secret], now=1696195954)

    def test_our_test_signatures_satisfy_the_official_paddle_sdk(self) -> None:
        header = paddle_signature(self.body, SECRET)
        request = SimpleNamespace(headers={"Paddle-Signature": header}, body=self.body)
        assert Verifier(maximum_variance=60).verify(request, [Secret(SECRET)]) is True
        assert PaddleSignature().verify(header, self.body.decode(), Secret("pdl_other")) is False

    def test_a_signature_made_by_the_official_paddle_sdk_verifies(self) -> None:
        ts = int(time.time())
        h1 = PaddleSignature.calculate_hmac(SECRET, f"{ts}:{self.body.decode()}".encode()).hexdigest()
        verify(self.body, f"ts={ts};h1={h1}")

    def test_any_h1_under_any_secret_is_accepted_while_a_secret_is_rotated(self) -> None:
        verify(self.body, paddle_signature(self.body, SECRET, extra_h1=["0" * 64]))
        verify(self.body, paddle_signature(self.body, "pdl_new"), ["pdl_old", "pdl_new"])

    def test_the_tolerance_is_wider_than_the_sdks_five_seconds_and_applies_both_ways(self) -> None:
        now = time.time()
        for skew in (-60, 60, -299, 299):
            verify(self.body, paddle_signature(self.body, SECRET, int(now) + skew), now=now)
        for skew in (-301, 301):
            with pytest.raises(SignatureError, match="tolerance"):
                verify(self.body, paddle_signature(self.body, SECRET, int(now) + skew), now=now)

    def test_a_wrong_secret_or_a_tampered_body_is_a_mismatch(self) -> None:
        with pytest.raises(SignatureMismatch):
            verify(self.body, paddle_signature(self.body, "pdl_other"))
        with pytest.raises(SignatureMismatch):
            verify(self.body.replace(b"4900", b"490"), paddle_signature(self.body, SECRET))

    def test_the_colon_is_what_is_signed_not_stripes_dot(self) -> None:
        ts = int(time.time())
        dotted = hmac.new(SECRET.encode(), f"{ts}.".encode() + self.body, hashlib.sha256).hexdigest()
        with pytest.raises(SignatureMismatch):
            verify(self.body, f"ts={ts};h1={dotted}")

    @pytest.mark.parametrize("header", [None, "", "h1=abc", "ts=abc;h1=abc", "ts=1700000000", "ts=١٢;h1=00"])
    def test_missing_or_malformed_headers_are_refused(self, header: str | None) -> None:
        with pytest.raises(SignatureError):
            verify(self.body, header)


def parse(event_type: str, data: dict[str, Any], source: Any = PADDLE) -> Any:
    return source.parse(notification(event_type, data), CONTEXT)


class TestEvents:
    def test_a_completed_transaction_is_a_conversion_of_the_transaction(self) -> None:
        event = parse("transaction.completed", transaction(grand_total="4900"))
        assert isinstance(event, Conversion)
        assert (event.identity, event.click_id, event.goal, event.livemode) == (PURCHASE, CLICK_ID, "purchase", True)
        assert event.amount is not None and (str(event.amount.amount), event.amount.currency) == ("49.00", "USD")

    @pytest.mark.parametrize(
        ("origin", "payment"),
        [
            ("subscription_recurring", "cycle"),
            ("subscription_update", "change"),
            ("subscription_charge", "change"),
            ("subscription_payment_method_change", "payment_method_change"),
            ("web", "first"),
            ("api", "first"),
        ],
    )
    def test_the_origin_says_which_moment_of_a_subscription_a_transaction_is(self, origin: str, payment: str) -> None:
        assert parse("transaction.completed", transaction(origin=origin)).payment == payment

    def test_a_checkout_of_no_subscription_is_a_one_off_purchase_and_one_with_nothing_to_pay_a_trial(self) -> None:
        one_off = transaction()
        one_off["subscription_id"] = None
        assert parse("transaction.completed", one_off).payment == "one_off"
        trial = transaction(grand_total="0")
        trial["details"]["totals"]["subtotal"] = "0"
        assert parse("transaction.completed", trial).payment == "trial_start"

    def test_amounts_are_in_the_currencys_lowest_denomination(self) -> None:
        assert str(parse("transaction.completed", transaction(grand_total="7500", currency="JPY")).amount.amount) == (
            "7500"
        )

    def test_the_custom_data_key_is_configurable(self) -> None:
        data = transaction(click_id=None)
        data["custom_data"] = {"ts": CLICK_ID}
        custom = ParseContext(CLICK_ID_PATTERN, click_id_metadata_key="ts")
        assert PADDLE.parse(notification("transaction.completed", data), custom).click_id == CLICK_ID  # type: ignore[union-attr]

    def test_sandbox_notifications_are_test_mode_under_their_own_source(self) -> None:
        event = parse("transaction.completed", transaction(), PADDLE_SANDBOX)
        assert (event.identity, event.livemode) == (f"paddle-sandbox#{TRANSACTION}", False)

    @pytest.mark.parametrize(
        ("event_type", "data"),
        [
            ("transaction.paid", transaction(status="paid")),
            ("transaction.completed", transaction(status="past_due")),
            ("subscription.created", {"id": "sub_1"}),
        ],
    )
    def test_other_events_are_ignored(self, event_type: str, data: dict[str, Any]) -> None:
        assert isinstance(parse(event_type, data), Ignored)

    @pytest.mark.parametrize(
        ("action", "kind", "expected"),
        [
            ("refund", "full", "refunded"),
            ("refund", "partial", "partially_refunded"),
            ("chargeback", "full", "charged_back"),
        ],
    )
    def test_approved_refunds_and_chargebacks_reverse_their_transaction(
        self, action: str, kind: str, expected: str
    ) -> None:
        event = parse("adjustment.updated", adjustment(action=action, kind=kind))
        assert isinstance(event, Reversal) and (event.identities, event.kind) == ((PURCHASE,), expected)
        assert event.amount is not None and str(event.amount.amount) == "49.00"

    @pytest.mark.parametrize(
        "data", [adjustment(status="pending_approval"), adjustment(status="rejected"), adjustment(action="credit")]
    )
    def test_adjustments_not_yet_approved_or_not_reversing_are_ignored(self, data: dict[str, Any]) -> None:
        assert isinstance(parse("adjustment.created", data), Ignored)

    @pytest.mark.parametrize(
        "payload",
        [
            [],
            {"event_type": "transaction.completed", "data": {}},
            notification("transaction.completed", {**transaction(), "id": "pi_123"}),
            notification("transaction.completed", transaction(grand_total="49.00")),
            notification("transaction.completed", transaction(grand_total="-1")),
            notification("adjustment.updated", {**adjustment(), "transaction_id": None}),
        ],
    )
    def test_malformed_notifications_are_refused(self, payload: Any) -> None:
        with pytest.raises(MalformedEvent):
            PADDLE.parse(payload, CONTEXT)


class TestThroughTheHandler:
    def test_a_completed_transaction_becomes_one_postback_and_one_record(
        self, invoke: Invoker, aws: Aws, sandbox: TrafficStarsSandbox
    ) -> None:
        reply = deliver(invoke, notification("transaction.completed", transaction()))
        assert (reply.status, reply.body) == (200, {"status": "sent", "conversion_id": PURCHASE})
        [received] = sandbox.state.received
        assert (received.click_id, received.params["value"], received.key_matched) == (CLICK_ID, "49.00", True)
        record = aws.record(PURCHASE)
        assert record is not None and (record["status"], record["amount"], record["detail_origin"]) == (
            "sent",
            "49.00",
            "web",
        )

    def test_a_retry_and_a_replay_with_a_new_notification_id_send_one_postback(
        self, invoke: Invoker, aws: Aws, sandbox: TrafficStarsSandbox
    ) -> None:
        original = notification("transaction.completed", transaction())
        replay = {**original, "notification_id": "ntf_01replayreplayreplayreplay"}
        statuses = [deliver(invoke, payload).body["status"] for payload in (original, original, replay)]
        assert statuses == ["sent", "duplicate", "duplicate"]
        assert len(sandbox.state.received) == 1
        record = aws.record(PURCHASE)
        assert record is not None and record["event_ids"] == {original["event_id"]} and record["deliveries"] == 3

    def test_a_signature_older_than_the_tolerance_is_401_and_the_tolerance_is_a_setting(
        self, invoke: Invoker, relay_env: pytest.MonkeyPatch, aws: Aws
    ) -> None:
        payload = notification("transaction.completed", transaction())
        assert deliver(invoke, payload, ts=int(time.time()) - 30).status == 200  # the SDK's 5 s would refuse it
        relay_env.setenv("SIGNATURE_TOLERANCE_SECONDS", "10")
        from postback_relay.runtime import reset_runtime

        reset_runtime()
        other = notification("transaction.completed", transaction(txn="txn_01other"))
        assert deliver(invoke, other, ts=int(time.time()) - 30).status == 401

    def test_transaction_paid_is_ignored_with_nothing_stored(
        self, invoke: Invoker, aws: Aws, sandbox: TrafficStarsSandbox
    ) -> None:
        reply = deliver(invoke, notification("transaction.paid", transaction(status="paid")))
        assert (reply.status, reply.body["status"]) == (200, "ignored")
        assert aws.items() == [] and sandbox.state.received == []

    def test_an_approved_refund_marks_the_transaction_and_sends_nothing(
        self, invoke: Invoker, aws: Aws, sandbox: TrafficStarsSandbox
    ) -> None:
        deliver(invoke, notification("transaction.completed", transaction()))
        pending = deliver(invoke, notification("adjustment.created", adjustment(status="pending_approval")))
        approved = deliver(invoke, notification("adjustment.updated", adjustment()))
        assert [pending.body["status"], approved.body["status"]] == ["ignored", "refunded"]
        record = aws.record(PURCHASE)
        assert record is not None and (record["status"], record["reversal_amount"]) == ("refunded", "49.00")
        assert len(sandbox.state.received) == 1

    def test_sandbox_purchases_are_recorded_as_test_mode_and_not_forwarded(
        self, invoke: Invoker, aws: Aws, sandbox: TrafficStarsSandbox
    ) -> None:
        payload = notification("transaction.completed", transaction())
        reply = deliver(invoke, payload, SANDBOX_SECRET, route="paddle-sandbox")
        assert (reply.status, reply.body["status"]) == (200, "test_mode")
        assert sandbox.state.received == []
        assert deliver(invoke, payload, SECRET, route="paddle-sandbox").status == 401  # each route its own secret

    def test_a_renewal_goes_to_its_own_goal_in_the_query_form(
        self, invoke: Invoker, relay_env: pytest.MonkeyPatch, sandbox: TrafficStarsSandbox
    ) -> None:
        relay_env.setenv("TRAFFICSTARS_URL_FORM", "query")
        relay_env.setenv("TRAFFICSTARS_GOAL_PURCHASE", "1101")
        relay_env.setenv("TRAFFICSTARS_GOAL_RENEWAL", "1102")
        deliver(invoke, notification("transaction.completed", transaction()))
        deliver(
            invoke, notification("transaction.completed", transaction(txn="txn_02", origin="subscription_recurring"))
        )
        assert [r.params["goalid"] for r in sandbox.state.received] == ["1101", "1102"]
        assert all(r.form == "query" and r.key_matched for r in sandbox.state.received)

    def test_a_wrong_secret_a_missing_header_or_a_tampered_body_is_401_and_stores_nothing(
        self, invoke: Invoker, aws: Aws, sandbox: TrafficStarsSandbox
    ) -> None:
        payload = notification("transaction.completed", transaction())
        body = json.dumps(payload).encode()
        wrong = deliver(invoke, payload, "pdl_ntfset_forged")
        missing = invoke(body, {}, path="/webhooks/paddle")
        tampered = invoke(
            body.replace(b'"4900"', b'"490"'),
            {"Paddle-Signature": paddle_signature(body, SECRET)},
            path="/webhooks/paddle",
        )
        assert [r.status for r in (wrong, missing, tampered)] == [401, 401, 401]
        assert aws.items() == [] and sandbox.state.received == []

    def test_malformed_bodies_are_400(self, invoke: Invoker, aws: Aws) -> None:
        for body in (b'{"event_id": "evt_1", ', json.dumps({"event_id": "evt_1", "event_type": "x"}).encode()):
            reply = invoke(body, {"Paddle-Signature": paddle_signature(body, SECRET)}, path="/webhooks/paddle")
            assert (reply.status, reply.body["error"]) == (400, "malformed_body")
        assert aws.items() == []

    def test_without_its_secret_paddle_is_404_and_accepts_nothing(self, invoke: Invoker, aws: Aws) -> None:
        aws.put_secret({"trafficstars_key": TEST_KEY})
        reply = deliver(invoke, notification("transaction.completed", transaction()))
        assert (reply.status, reply.body["error"]) == (404, "source_not_configured")
        assert aws.items() == []


EXPECTED = {
    "transaction.completed": "sent",
    "transaction.completed-renewal": "sent",
    "transaction.completed-sandbox": "test_mode",
    "adjustment.updated": "refunded",  # nothing recorded yet: kept, so a late delivery of the purchase is not sent
    "transaction.paid": "ignored",
}


def test_there_is_a_sample_for_every_handled_event_a_reversal_and_an_ignored_one() -> None:
    assert {path.stem for path in samples("paddle")} == set(EXPECTED)


@pytest.mark.parametrize("path", samples("paddle"), ids=lambda p: p.stem)
def test_every_sample_event_goes_through_the_handler(
    path: Path, relay_env: pytest.MonkeyPatch, aws: Aws, sandbox: TrafficStarsSandbox
) -> None:
    relay_env.setenv("PADDLE_WEBHOOK_SECRET", SECRET)
    relay_env.setenv("PADDLE_SANDBOX_WEBHOOK_SECRET", SANDBOX_SECRET)
    status, body, event = run_sample(path)
    assert event["rawPath"] == ("/webhooks/paddle-sandbox" if "sandbox" in path.stem else "/webhooks/paddle")
    assert json.loads(event["body"])["event_type"] == path.stem.split("-")[0]
    assert (status, body["status"]) == (200, EXPECTED[path.stem])
