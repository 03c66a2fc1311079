"""The Stripe path end to end: the real handler, moto server, and the HTTPS TrafficStars sandbox.

Each test pins one line of the contract in the core issue."""

from __future__ import annotations

import base64
import json
import threading
import time
from decimal import Decimal

import pytest

from postback_relay.handlers.http import outcome_status
from postback_relay.runtime import reset_runtime
from postback_relay_dev.sandbox import TrafficStarsSandbox
from tests.support.aws import Aws
from tests.support.constants import TEST_KEY, TEST_STRIPE_SECRET
from tests.support.helpers import (
    CLICK_ID,
    Invoker,
    charge_refunded,
    checkout_session,
    invoice,
    payment_intent,
    stripe_event,
    stripe_signature,
)

PURCHASE = "stripe#pi_test_0001"


def purchase(**kwargs: object) -> bytes:
    return stripe_event("checkout.session.completed", checkout_session(**kwargs))  # type: ignore[arg-type]


class TestHealth:
    def test_health_answers_without_aws(self, invoke: Invoker, aws: Aws) -> None:
        reply = invoke(b"", path="/health", method="GET")
        assert (reply.status, reply.body) == (200, {"status": "ok"})
        assert aws.server.calls == []


class TestForwarding:
    def test_a_paid_purchase_becomes_one_postback_and_one_record(
        self, invoke: Invoker, aws: Aws, sandbox: TrafficStarsSandbox
    ) -> None:
        reply = invoke.stripe(purchase(), TEST_STRIPE_SECRET)
        assert (reply.status, reply.body) == (200, {"status": "sent", "conversion_id": PURCHASE})
        [received] = sandbox.state.received
        assert received.click_id == CLICK_ID and received.key_matched
        assert received.params["value"] == "49.00"
        record = aws.record(PURCHASE)
        assert record is not None
        assert record["status"] == "sent"
        assert record["source"] == "stripe" and record["purchase_id"] == "pi_test_0001"
        assert record["click_id"] == CLICK_ID
        assert (record["amount"], record["currency"], record["value"]) == ("49.00", "USD", "49.00")
        assert record["lead_code"] == received.params["lead_code"]
        assert record["attempts"] == 1 and len(record["attempt_log"]) == 1
        assert record["trafficstars_answer"] == "ok" and record["trafficstars_http_status"] == 200
        assert record["postback_url"].endswith("&key=***")
        assert record["expires_at"] > time.time() + 89 * 86400
        assert {"received_at", "sent_at", "event_ids", "event_types"} <= set(record)

    def test_the_body_is_verified_after_base64_decoding(self, invoke: Invoker, sandbox: TrafficStarsSandbox) -> None:
        body = purchase()
        reply = invoke(
            body,
            {"Stripe-Signature": stripe_signature(body, TEST_STRIPE_SECRET)},
            content_type="application/octet-stream",
        )  # API Gateway base64-encodes this type
        assert reply.status == 200 and reply.body["status"] == "sent"

    def test_value_is_converted_to_the_account_currency(
        self, invoke: Invoker, relay_env: pytest.MonkeyPatch, sandbox: TrafficStarsSandbox
    ) -> None:
        relay_env.setenv("FX_RATES", '{"EUR": "1.10"}')
        invoke.stripe(purchase(amount=10000, currency="eur"), TEST_STRIPE_SECRET)
        assert sandbox.state.received[0].params["value"] == "110.00"

    def test_an_unknown_currency_is_sent_without_value(
        self, invoke: Invoker, aws: Aws, sandbox: TrafficStarsSandbox
    ) -> None:
        reply = invoke.stripe(purchase(amount=10000, currency="brl"), TEST_STRIPE_SECRET)
        assert reply.body["status"] == "sent"
        assert "value" not in sandbox.state.received[0].params
        record = aws.record(PURCHASE)
        assert record is not None and record["value_note"] == "unknown_currency:BRL" and "value" not in record

    def test_a_zero_decimal_currency_uses_its_exponent(
        self, invoke: Invoker, relay_env: pytest.MonkeyPatch, sandbox: TrafficStarsSandbox
    ) -> None:
        relay_env.setenv("FX_RATES", '{"JPY": "0.0067"}')
        invoke.stripe(purchase(amount=7500, currency="jpy"), TEST_STRIPE_SECRET)
        assert sandbox.state.received[0].params["value"] == "50.25"

    @pytest.mark.parametrize(
        ("action", "sent_value", "note"), [("clamp", "200.00", "clamped"), ("omit", None, "omitted")]
    )
    def test_a_value_above_the_range_is_clamped_or_omitted_and_recorded(
        self,
        invoke: Invoker,
        relay_env: pytest.MonkeyPatch,
        aws: Aws,
        sandbox: TrafficStarsSandbox,
        action: str,
        sent_value: str | None,
        note: str,
    ) -> None:
        relay_env.setenv("VALUE_OUT_OF_RANGE", action)
        assert invoke.stripe(purchase(amount=99900), TEST_STRIPE_SECRET).body["status"] == "sent"
        assert sandbox.state.received[0].params.get("value") == sent_value
        record = aws.record(PURCHASE)
        assert record is not None and record["value_note"] == f"out_of_range_{note}:999.00"

    def test_fixed_value_policy(
        self, invoke: Invoker, relay_env: pytest.MonkeyPatch, sandbox: TrafficStarsSandbox
    ) -> None:
        relay_env.setenv("VALUE_POLICY", "fixed")
        relay_env.setenv("VALUE_FIXED", "15")
        invoke.stripe(purchase(amount=99900), TEST_STRIPE_SECRET)
        assert sandbox.state.received[0].params["value"] == "15.00"

    def test_test_mode_purchases_are_recorded_not_forwarded_unless_allowed(
        self, invoke: Invoker, relay_env: pytest.MonkeyPatch, aws: Aws, sandbox: TrafficStarsSandbox
    ) -> None:
        body = stripe_event("checkout.session.completed", checkout_session(), livemode=False)
        assert invoke.stripe(body, TEST_STRIPE_SECRET).body["status"] == "test_mode"
        assert sandbox.state.received == []
        relay_env.setenv("FORWARD_TEST_EVENTS", "true")
        reset_runtime()  # settings are read once per container
        other = stripe_event("checkout.session.completed", checkout_session(payment_intent="pi_t2"), livemode=False)
        assert invoke.stripe(other, TEST_STRIPE_SECRET).body["status"] == "sent"


class TestClickId:
    def test_no_click_id_is_recorded_answered_200_and_not_sent(
        self, invoke: Invoker, aws: Aws, sandbox: TrafficStarsSandbox
    ) -> None:
        reply = invoke.stripe(purchase(click_id=None), TEST_STRIPE_SECRET)
        assert (reply.status, reply.body["status"]) == (200, "no_click_id")
        assert sandbox.state.received == []
        record = aws.record(PURCHASE)
        assert record is not None and record["status"] == "no_click_id" and "lead_code" not in record

    def test_an_invalid_click_id_is_recorded_with_its_raw_value(
        self, invoke: Invoker, aws: Aws, sandbox: TrafficStarsSandbox
    ) -> None:
        reply = invoke.stripe(purchase(click_id="{click_id}"), TEST_STRIPE_SECRET)
        assert (reply.status, reply.body["status"]) == (200, "invalid_click_id")
        assert sandbox.state.received == []
        record = aws.record(PURCHASE)
        assert record is not None and record["raw_click_id"] == "{click_id}"

    def test_a_later_event_with_the_click_id_upgrades_the_record_and_sends_once(
        self, invoke: Invoker, aws: Aws, sandbox: TrafficStarsSandbox
    ) -> None:
        # Stripe usually fires payment_intent.succeeded (no click id) before checkout.session.completed.
        first = invoke.stripe(stripe_event("payment_intent.succeeded", payment_intent()), TEST_STRIPE_SECRET)
        assert first.body["status"] == "no_click_id"
        second = invoke.stripe(purchase(), TEST_STRIPE_SECRET)
        assert second.body["status"] == "sent"
        third = invoke.stripe(stripe_event("payment_intent.succeeded", payment_intent()), TEST_STRIPE_SECRET)
        assert third.body["status"] == "duplicate"
        assert len(sandbox.state.received) == 1
        record = aws.record(PURCHASE)
        assert record is not None and record["click_id"] == CLICK_ID and record["status"] == "sent"
        assert record["deliveries"] == 3

    @pytest.mark.parametrize("basil", [True, False])
    def test_a_subscription_renewal_is_a_new_conversion(
        self, invoke: Invoker, sandbox: TrafficStarsSandbox, basil: bool
    ) -> None:
        for number in (1, 2):
            body = stripe_event("invoice.paid", invoice(invoice_id=f"in_{number}", basil=basil))
            assert invoke.stripe(body, TEST_STRIPE_SECRET).body["status"] == "sent"
        assert len(sandbox.state.received) == 2
        assert len({r.params["lead_code"] for r in sandbox.state.received}) == 2


class TestExactlyOnce:
    def test_ten_sequential_duplicates_send_one_postback(
        self, invoke: Invoker, aws: Aws, sandbox: TrafficStarsSandbox
    ) -> None:
        body = purchase()
        replies = [invoke.stripe(body, TEST_STRIPE_SECRET) for _ in range(10)]
        assert [r.status for r in replies] == [200] * 10
        assert [r.body["status"] for r in replies] == ["sent"] + ["duplicate"] * 9
        assert len(sandbox.state.received) == 1
        assert len(aws.items()) == 1

    def test_twenty_concurrent_duplicates_send_one_postback(
        self, relay_env: pytest.MonkeyPatch, aws: Aws, sandbox: TrafficStarsSandbox
    ) -> None:
        """Twenty containers (own clients each) receive the same delivery at once."""
        from postback_relay.platforms.stripe import STRIPE
        from postback_relay.runtime import build_runtime
        from postback_relay.settings import Settings

        body = purchase()
        headers = {"stripe-signature": stripe_signature(body, TEST_STRIPE_SECRET)}
        relays = [build_runtime(Settings.from_env()).relay for _ in range(20)]
        barrier = threading.Barrier(20)
        statuses: list[tuple[int, str]] = []

        def deliver(index: int) -> None:
            barrier.wait()
            outcome = relays[index].handle(STRIPE, body, headers)
            statuses.append((outcome_status(outcome), outcome.status))

        threads = [threading.Thread(target=deliver, args=(i,)) for i in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert len(statuses) == 20 and all(code == 200 for code, _ in statuses)
        assert sorted(s for _, s in statuses) == ["duplicate"] * 19 + ["sent"]
        assert len(sandbox.state.received) == 1

    def test_the_events_of_one_purchase_send_one_postback(
        self, invoke: Invoker, aws: Aws, sandbox: TrafficStarsSandbox
    ) -> None:
        """checkout.session.completed + payment_intent.succeeded + invoice.paid of one subscription purchase."""
        session = checkout_session(payment_intent=None, invoice="in_sub_1")
        events = [
            stripe_event("checkout.session.completed", session),
            stripe_event(
                "payment_intent.succeeded", payment_intent(pi="pi_sub_1", invoice="in_sub_1", click_id=CLICK_ID)
            ),
            stripe_event("invoice.paid", invoice(invoice_id="in_sub_1", billing_reason="subscription_create")),
        ]
        statuses = [invoke.stripe(body, TEST_STRIPE_SECRET).body["status"] for body in events]
        assert statuses == ["sent", "linked", "duplicate"]  # the PaymentIntent only adds its id to the invoice
        assert len(sandbox.state.received) == 1
        record = aws.record("stripe#in_sub_1")
        assert record is not None and len(record["event_ids"]) == 2
        assert record["event_types"] == {"checkout.session.completed", "invoice.paid"}
        assert aws.record("alias#stripe#pi_sub_1") is not None

    def test_a_one_off_purchase_fires_session_and_payment_intent_and_sends_once(
        self, invoke: Invoker, sandbox: TrafficStarsSandbox
    ) -> None:
        invoke.stripe(purchase(), TEST_STRIPE_SECRET)
        pi = stripe_event("payment_intent.succeeded", payment_intent(click_id=CLICK_ID))
        assert invoke.stripe(pi, TEST_STRIPE_SECRET).body["status"] == "duplicate"
        assert len(sandbox.state.received) == 1


class TestTrafficStarsAnswers:
    def test_an_invalid_code_is_a_final_rejection_with_trafficstars_message(
        self, invoke: Invoker, aws: Aws, sandbox: TrafficStarsSandbox
    ) -> None:
        sandbox.state.fault = lambda r: (400, json.dumps({"error": {"msg": "invalid code"}}))
        reply = invoke.stripe(purchase(), TEST_STRIPE_SECRET)
        assert (reply.status, reply.body["status"], reply.body["reason"]) == (200, "rejected", "invalid code")
        record = aws.record(PURCHASE)
        assert record is not None and record["status"] == "rejected"
        assert record["trafficstars_answer"] == "invalid code" and record["trafficstars_reason"] == "invalid_code"
        sandbox.state.fault = None
        assert invoke.stripe(purchase(), TEST_STRIPE_SECRET).body["status"] == "duplicate"  # final: not retried
        assert len(sandbox.state.received) == 1

    @pytest.mark.parametrize(
        "message",
        [
            "invalid price value: 'abc'",
            "the price should be between 0.010 and 200.000",
            "The transfer of the lead_code is possible only with the https protocol",
        ],
    )
    def test_price_and_https_errors_are_final_rejections(
        self, invoke: Invoker, aws: Aws, sandbox: TrafficStarsSandbox, message: str
    ) -> None:
        sandbox.state.fault = lambda r: (400, json.dumps({"error": {"msg": message}}))
        reply = invoke.stripe(purchase(), TEST_STRIPE_SECRET)
        assert (reply.status, reply.body["reason"]) == (200, message)
        record = aws.record(PURCHASE)
        assert record is not None and (record["status"], record["trafficstars_answer"]) == ("rejected", message)

    @pytest.mark.parametrize("fault", [(503, "<html>busy</html>"), (429, ""), (500, '{"error":{"msg":"db"}}')])
    def test_an_outage_is_recorded_retry_pending_queued_and_a_redelivery_only_noted(
        self, invoke: Invoker, aws: Aws, sandbox: TrafficStarsSandbox, fault: tuple[int, str]
    ) -> None:
        sandbox.state.fault = lambda r: fault
        first = invoke.stripe(purchase(), TEST_STRIPE_SECRET)
        assert (first.status, first.body["status"]) == (200, "retry_pending")  # durable and queued
        assert len(aws.queued()) == 1
        record = aws.record(PURCHASE)
        assert record is not None and record["status"] == "retry_pending"
        assert record["trafficstars_http_status"] == fault[0]
        sandbox.state.fault = None
        second = invoke.stripe(purchase(), TEST_STRIPE_SECRET)
        assert (second.status, second.body["status"], second.body["conversion_status"]) == (
            200,
            "duplicate",
            "retry_pending",
        )
        noted = aws.record(PURCHASE)
        assert noted is not None and noted["deliveries"] == 2
        assert {k: noted[k] for k in ("status", "due_at", "attempts")} == {
            k: record[k] for k in ("status", "due_at", "attempts")
        }
        assert len(sandbox.state.received) == 1  # the queued retry sends it, not the redelivery

    def test_without_a_retry_queue_an_outage_is_answered_503_so_the_sender_retries(
        self, invoke: Invoker, relay_env: pytest.MonkeyPatch, aws: Aws, sandbox: TrafficStarsSandbox
    ) -> None:
        relay_env.delenv("RETRY_QUEUE_URL")
        sandbox.state.fault = lambda r: (503, "")
        assert invoke.stripe(purchase(), TEST_STRIPE_SECRET).status == 503
        record = aws.record(PURCHASE)
        assert record is not None and record["status"] == "retry_pending" and "due_at" in record

    def test_if_sqs_refuses_the_retry_the_sender_is_asked_to_retry(
        self, invoke: Invoker, aws: Aws, sandbox: TrafficStarsSandbox
    ) -> None:
        invoke(b"", path="/health", method="GET")
        sandbox.state.fault = lambda r: (503, "")
        aws.server.fault = lambda environ: "SendMessage" in environ.get("HTTP_X_AMZ_TARGET", "")
        reply = invoke.stripe(purchase(), TEST_STRIPE_SECRET)
        assert (reply.status, reply.body["status"]) == (503, "retry_pending")
        record = aws.record(PURCHASE)
        assert record is not None and record["status"] == "retry_pending" and "due_at" in record  # the sweep's

    def test_a_timeout_is_retryable_and_the_answer_still_fits_the_senders_budget(
        self, invoke: Invoker, relay_env: pytest.MonkeyPatch, aws: Aws, sandbox: TrafficStarsSandbox
    ) -> None:
        relay_env.setenv("TRAFFICSTARS_READ_TIMEOUT", "0.3")
        sandbox.state.delay_seconds = 1.0
        started = time.monotonic()
        reply = invoke.stripe(purchase(), TEST_STRIPE_SECRET)
        assert time.monotonic() - started < 2.5
        assert (reply.status, reply.body["status"]) == (200, "retry_pending")
        record = aws.record(PURCHASE)
        assert record is not None and record["trafficstars_reason"] == "timeout"

    def test_invalid_key_refetches_the_secret_once_and_uses_a_rotated_key(
        self, invoke: Invoker, aws: Aws, sandbox: TrafficStarsSandbox
    ) -> None:
        invoke.stripe(purchase(payment_intent="pi_warm"), TEST_STRIPE_SECRET)  # fills the secret cache
        sandbox.state.key = "rotated-in-trafficstars"
        aws.put_secret({"trafficstars_key": "rotated-in-trafficstars", "stripe_webhook_secret": TEST_STRIPE_SECRET})
        reply = invoke.stripe(purchase(), TEST_STRIPE_SECRET)
        assert reply.body["status"] == "sent"
        record = aws.record(PURCHASE)
        assert record is not None and [a["outcome"] for a in record["attempt_log"]] == ["invalid_key", "ok"]

    def test_invalid_key_with_no_newer_key_is_a_final_rejection(
        self, invoke: Invoker, aws: Aws, sandbox: TrafficStarsSandbox
    ) -> None:
        sandbox.state.key = "a-key-nobody-configured"
        reply = invoke.stripe(purchase(), TEST_STRIPE_SECRET)
        assert (reply.status, reply.body["status"], reply.body["reason"]) == (200, "rejected", "invalid key")
        record = aws.record(PURCHASE)
        assert record is not None and record["trafficstars_reason"] == "invalid_key"
        assert aws.calls("GetSecretValue") == 2  # the cached fetch and exactly one refetch

    def test_invalid_key_when_the_refetched_secret_has_lost_its_key_is_still_a_recorded_rejection(
        self, invoke: Invoker, aws: Aws, sandbox: TrafficStarsSandbox
    ) -> None:
        invoke.stripe(purchase(payment_intent="pi_warm"), TEST_STRIPE_SECRET)  # fills the secret cache
        sandbox.state.key = "a-key-nobody-configured"
        aws.put_secret({"stripe_webhook_secret": TEST_STRIPE_SECRET})  # the key removed meanwhile
        reply = invoke.stripe(purchase(), TEST_STRIPE_SECRET)
        assert (reply.status, reply.body["status"]) == (200, "rejected")
        record = aws.record(PURCHASE)
        assert record is not None and [a["outcome"] for a in record["attempt_log"]] == ["invalid_key"]


class TestRefusals:
    def test_a_wrong_signature_is_401_and_stores_nothing(
        self, invoke: Invoker, aws: Aws, sandbox: TrafficStarsSandbox
    ) -> None:
        reply = invoke.stripe(purchase(), "whsec_forged")
        assert reply.status == 401 and reply.body["error"] == "invalid_signature"
        assert aws.items() == [] and sandbox.state.received == []

    @pytest.mark.parametrize("headers", [{}, {"Stripe-Signature": "t=1,v1=00"}, {"Stripe-Signature": "nonsense"}])
    def test_a_missing_or_malformed_signature_is_401(self, invoke: Invoker, aws: Aws, headers: dict[str, str]) -> None:
        reply = invoke(purchase(), headers)
        assert reply.status == 401 and "message" in reply.body
        assert aws.items() == []

    def test_a_stale_signature_is_401(self, invoke: Invoker, aws: Aws) -> None:
        assert invoke.stripe(purchase(), TEST_STRIPE_SECRET, int(time.time()) - 301).status == 401
        assert invoke.stripe(purchase(), TEST_STRIPE_SECRET, int(time.time()) + 301).status == 401
        assert invoke.stripe(purchase(), TEST_STRIPE_SECRET, int(time.time()) - 299).status == 200

    def test_a_tampered_body_is_401(self, invoke: Invoker, aws: Aws) -> None:
        body = purchase()
        header = stripe_signature(body, TEST_STRIPE_SECRET)
        assert invoke(body.replace(b"4900", b"1"), {"Stripe-Signature": header}).status == 401
        assert aws.items() == []

    def test_a_rotated_signing_secret_is_picked_up_without_a_redeploy(self, invoke: Invoker, aws: Aws) -> None:
        assert invoke.stripe(purchase(payment_intent="pi_a"), TEST_STRIPE_SECRET).status == 200
        aws.put_secret({"trafficstars_key": TEST_KEY, "stripe_webhook_secret": "whsec_rotated"})
        assert invoke.stripe(purchase(payment_intent="pi_b"), "whsec_rotated").status == 200
        assert invoke.stripe(purchase(payment_intent="pi_c"), TEST_STRIPE_SECRET).status == 401

    def test_forced_refetches_are_spaced_so_junk_cannot_hammer_secrets_manager(
        self, invoke: Invoker, relay_env: pytest.MonkeyPatch, aws: Aws
    ) -> None:
        relay_env.setenv("SECRET_REFRESH_MIN_INTERVAL_SECONDS", "60")
        for _ in range(10):
            assert invoke.stripe(purchase(), "whsec_forged").status == 401
        assert aws.calls("GetSecretValue") == 2

    def test_malformed_json_is_400_with_a_json_error(self, invoke: Invoker, aws: Aws) -> None:
        body = b'{"id": "evt_1", "type": '
        reply = invoke(body, {"Stripe-Signature": stripe_signature(body, TEST_STRIPE_SECRET)})
        assert (reply.status, reply.body["error"]) == (400, "malformed_body")
        assert aws.items() == []

    def test_a_signed_body_of_the_wrong_shape_is_400(self, invoke: Invoker, aws: Aws) -> None:
        body = b'{"id": "evt_1", "type": "checkout.session.completed", "data": []}'
        assert invoke(body, {"Stripe-Signature": stripe_signature(body, TEST_STRIPE_SECRET)}).status == 400

    def test_an_oversized_body_is_413(self, invoke: Invoker, relay_env: pytest.MonkeyPatch, aws: Aws) -> None:
        relay_env.setenv("MAX_BODY_BYTES", "2048")
        body = stripe_event("checkout.session.completed", {**checkout_session(), "padding": "x" * 4000})
        reply = invoke(body, {"Stripe-Signature": stripe_signature(body, TEST_STRIPE_SECRET)})
        assert (reply.status, reply.body["error"]) == (413, "body_too_large")

    def test_an_unrelated_event_is_200_ignored_and_stores_nothing(self, invoke: Invoker, aws: Aws) -> None:
        body = stripe_event("customer.created", {"id": "cus_1", "object": "customer"})
        reply = invoke.stripe(body, TEST_STRIPE_SECRET)
        assert (reply.status, reply.body["status"]) == (200, "ignored")
        assert aws.items() == []

    def test_a_source_without_its_secret_is_404_and_accepts_nothing(self, invoke: Invoker, aws: Aws) -> None:
        aws.put_secret({"trafficstars_key": TEST_KEY})
        reply = invoke.stripe(purchase(), TEST_STRIPE_SECRET)
        assert (reply.status, reply.body["error"]) == (404, "source_not_configured")
        assert aws.items() == []

    def test_an_unknown_source_is_404(self, invoke: Invoker, aws: Aws) -> None:
        assert invoke(b"{}", path="/webhooks/nowhere").status == 404


class TestDurability:
    def test_dynamodb_failing_means_5xx_not_2xx(self, invoke: Invoker, aws: Aws, sandbox: TrafficStarsSandbox) -> None:
        invoke(b"", path="/health", method="GET")
        aws.server.fault = lambda environ: environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB")
        reply = invoke.stripe(purchase(), TEST_STRIPE_SECRET)
        assert reply.status == 503 and reply.body["error"] == "temporarily_unavailable"
        assert sandbox.state.received == []  # nothing is sent before the record is durable
        aws.server.fault = None
        assert invoke.stripe(purchase(), TEST_STRIPE_SECRET).body["status"] == "sent"

    def test_secrets_manager_failing_with_nothing_cached_is_503(self, invoke: Invoker, aws: Aws) -> None:
        aws.server.fault = lambda environ: "secretsmanager" in environ.get("HTTP_X_AMZ_TARGET", "")
        reply = invoke.stripe(purchase(), TEST_STRIPE_SECRET)
        assert reply.status == 503
        assert aws.items() == []
        aws.server.fault = None
        assert invoke.stripe(purchase(), TEST_STRIPE_SECRET).status == 200


class TestReversals:
    def test_a_refund_marks_the_recorded_purchase_and_sends_nothing(
        self, invoke: Invoker, aws: Aws, sandbox: TrafficStarsSandbox
    ) -> None:
        invoke.stripe(purchase(), TEST_STRIPE_SECRET)
        reply = invoke.stripe(stripe_event("charge.refunded", charge_refunded()), TEST_STRIPE_SECRET)
        assert (reply.status, reply.body["status"]) == (200, "refunded")
        record = aws.record(PURCHASE)
        assert record is not None
        assert (record["status"], record["status_before_reversal"]) == ("refunded", "sent")
        assert record["reversal_amount"] == "49.00"
        assert len(sandbox.state.received) == 1

    def test_a_partial_refund_is_noted_without_changing_the_status(self, invoke: Invoker, aws: Aws) -> None:
        invoke.stripe(purchase(), TEST_STRIPE_SECRET)
        invoke.stripe(stripe_event("charge.refunded", charge_refunded(full=False)), TEST_STRIPE_SECRET)
        record = aws.record(PURCHASE)
        assert record is not None and (record["status"], record["reversal_kind"]) == ("sent", "partially_refunded")

    def test_a_refunded_purchase_that_was_not_yet_sent_is_never_sent(
        self, invoke: Invoker, aws: Aws, sandbox: TrafficStarsSandbox
    ) -> None:
        sandbox.state.fault = lambda r: (503, "")
        invoke.stripe(purchase(), TEST_STRIPE_SECRET)
        invoke.stripe(stripe_event("charge.refunded", charge_refunded()), TEST_STRIPE_SECRET)
        sandbox.state.fault = None
        assert invoke.stripe(purchase(), TEST_STRIPE_SECRET).body == {
            "status": "duplicate",
            "conversion_id": PURCHASE,
            "conversion_status": "refunded",
        }
        assert sandbox.state.accepted() == []

    def test_a_dispute_marks_a_chargeback(self, invoke: Invoker, aws: Aws) -> None:
        invoke.stripe(purchase(), TEST_STRIPE_SECRET)
        dispute = {
            "id": "dp_1",
            "object": "dispute",
            "amount": 4900,
            "currency": "usd",
            "payment_intent": "pi_test_0001",
            "charge": "ch_1",
        }
        assert invoke.stripe(stripe_event("charge.dispute.created", dispute), TEST_STRIPE_SECRET).body["status"] == (
            "charged_back"
        )

    def test_a_refund_before_its_purchase_is_kept_and_the_late_purchase_is_never_sent(
        self, invoke: Invoker, aws: Aws, sandbox: TrafficStarsSandbox
    ) -> None:
        """A platform retrying the paid event after an outage may deliver it after its refund."""
        reply = invoke.stripe(stripe_event("charge.refunded", charge_refunded(pi="pi_late")), TEST_STRIPE_SECRET)
        assert (reply.status, reply.body["status"], reply.body["recorded_before_purchase"]) == (200, "refunded", True)
        late = invoke.stripe(purchase(payment_intent="pi_late"), TEST_STRIPE_SECRET)
        assert (late.status, late.body["status"], late.body["conversion_status"]) == (200, "duplicate", "refunded")
        assert sandbox.state.received == []
        record = aws.record("stripe#pi_late")
        assert record is not None and record["status"] == "refunded" and "click_id" not in record


class TestSecrecy:
    def test_the_key_and_signing_secret_appear_in_no_log_line_item_or_answer(
        self, invoke: Invoker, aws: Aws, sandbox: TrafficStarsSandbox, capfd: pytest.CaptureFixture[str]
    ) -> None:
        replies = [invoke.stripe(purchase(), TEST_STRIPE_SECRET), invoke.stripe(purchase(), TEST_STRIPE_SECRET)]
        sandbox.state.fault = lambda r: (503, "down")
        replies.append(invoke.stripe(purchase(payment_intent="pi_2"), TEST_STRIPE_SECRET))
        sandbox.state.fault = lambda r: (400, json.dumps({"error": {"msg": "invalid key"}}))
        replies.append(invoke.stripe(purchase(payment_intent="pi_3"), TEST_STRIPE_SECRET))
        replies.append(invoke.stripe(purchase(payment_intent="pi_4"), "whsec_forged"))
        out, err = capfd.readouterr()
        written = out + err + json.dumps(aws.raw_items()) + json.dumps([r.body for r in replies])
        assert "postback" in out  # the logs were captured
        assert TEST_KEY not in written
        assert TEST_STRIPE_SECRET not in written
        assert Decimal(aws.record(PURCHASE)["value"]) == Decimal("49.00")  # type: ignore[index]

    def test_every_log_line_is_structured_json(
        self, invoke: Invoker, sandbox: TrafficStarsSandbox, capfd: pytest.CaptureFixture[str]
    ) -> None:
        invoke.stripe(purchase(), TEST_STRIPE_SECRET)
        lines = [line for line in capfd.readouterr().out.splitlines() if line.strip()]
        assert lines and all(isinstance(json.loads(line), dict) for line in lines)

    def test_the_raw_body_can_be_base64_encoded_by_api_gateway(self, invoke: Invoker) -> None:
        body = purchase()
        encoded = base64.b64encode(body)
        assert base64.b64decode(encoded) == body


class TestQueryForm:
    """TRAFFICSTARS_URL_FORM=query: the current form, with goals per kind, opt-in price and duplicates."""

    def test_a_purchase_is_sent_in_the_query_form_without_price_or_duplicates_by_default(
        self, invoke: Invoker, relay_env: pytest.MonkeyPatch, aws: Aws, sandbox: TrafficStarsSandbox
    ) -> None:
        relay_env.setenv("TRAFFICSTARS_URL_FORM", "query")
        relay_env.setenv("TRAFFICSTARS_GOAL_PURCHASE", "1101")
        assert invoke.stripe(purchase(), TEST_STRIPE_SECRET).body["status"] == "sent"
        [received] = sandbox.state.received
        assert (received.form, received.click_id, received.key_matched) == ("query", CLICK_ID, True)
        assert received.params == {
            "clickid": CLICK_ID,
            "goalid": "1101",
            "value": "49.00",
            "lead_code": received.params["lead_code"],
            "key": "***",
        }
        record = aws.record(PURCHASE)
        assert record is not None and record["goal"] == "purchase"
        assert record["postback_url"].startswith(sandbox.base_url + "?clickid=") and record["postback_url"].endswith(
            "&key=***"
        )

    def test_price_and_duplicates_are_sent_only_when_configured(
        self, invoke: Invoker, relay_env: pytest.MonkeyPatch, sandbox: TrafficStarsSandbox
    ) -> None:
        relay_env.setenv("TRAFFICSTARS_URL_FORM", "query")
        relay_env.setenv("TRAFFICSTARS_PRICE", "value")
        relay_env.setenv("TRAFFICSTARS_ALLOW_DUPLICATES", "true")
        invoke.stripe(purchase(), TEST_STRIPE_SECRET)
        [received] = sandbox.state.received
        assert (received.params["price"], received.params["value"], received.params["allow_duplicates"]) == (
            "49.00",
            "49.00",
            "1",
        )

    def test_stripe_renewals_go_to_the_renewal_goal(
        self, invoke: Invoker, relay_env: pytest.MonkeyPatch, sandbox: TrafficStarsSandbox
    ) -> None:
        relay_env.setenv("TRAFFICSTARS_URL_FORM", "query")
        relay_env.setenv("TRAFFICSTARS_GOAL_PURCHASE", "1101")
        relay_env.setenv("TRAFFICSTARS_GOAL_RENEWAL", "1102")
        first = invoice(invoice_id="in_first", billing_reason="subscription_create")
        invoke.stripe(stripe_event("invoice.paid", first), TEST_STRIPE_SECRET)
        invoke.stripe(stripe_event("invoice.paid", invoice(invoice_id="in_cycle")), TEST_STRIPE_SECRET)
        assert [r.params["goalid"] for r in sandbox.state.received] == ["1101", "1102"]
