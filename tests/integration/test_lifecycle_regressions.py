"""One test per defect the state machine fixed (each of them failed before it): finished conversions put
back in the due index by their redeliveries until the sweep starved, a refund overwritten by the outcome of
a send in flight, retry messages visible a second early and dropped, and anonymous requests answered 5xx."""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Any

import pytest

from postback_relay.aws.queue import RetryQueue
from postback_relay.aws.store import Claim, ConversionStore
from postback_relay.core.record import Status
from postback_relay.platforms.stripe import STRIPE
from postback_relay.runtime import build_runtime, reset_runtime
from postback_relay.settings import Settings
from postback_relay_dev.sandbox import Received, TrafficStarsSandbox
from postback_relay_dev.worker import sweep_once
from tests.support import emf
from tests.support.aws import Aws
from tests.support.constants import FAULT_FIGURES, TEST_KEY, TEST_SOURCE_SECRETS, TEST_STRIPE_SECRET
from tests.support.helpers import CLICK_ID, Invoker, charge_refunded, checkout_session, stripe_event, stripe_signature


def purchase(pi: str) -> bytes:
    return stripe_event("checkout.session.completed", checkout_session(payment_intent=pi))


class TestRedeliveries:
    def test_a_redelivered_finished_conversion_stays_out_of_the_due_index(
        self, invoke: Invoker, aws: Aws, sandbox: TrafficStarsSandbox
    ) -> None:
        body = purchase("pi_done")
        assert invoke.stripe(body, TEST_STRIPE_SECRET).body["status"] == "sent"
        assert invoke.stripe(body, TEST_STRIPE_SECRET).body["status"] == "duplicate"
        record = aws.record("stripe#pi_done")
        assert record is not None and record["status"] == "sent" and record["deliveries"] == 2
        assert not {"due_shard", "due_at", "lease_token", "lease_until"} & set(record)

    def test_finished_conversions_each_redelivered_never_starve_the_sweep_of_a_stranded_one(
        self, fast_retries: pytest.MonkeyPatch, aws: Aws, sandbox: TrafficStarsSandbox
    ) -> None:
        """More finished-then-redelivered conversions than one page of the due index (500 before), then one
        conversion stranded (its message lost): the next sweep finds it. FAULT_FINISHED sets how many
        (the README's figure is for 10,000)."""
        count = int(os.environ.get("FAULT_FINISHED", "600"))
        store = ConversionStore(aws.dynamodb, aws.table_name, 90, clock=lambda: time.time() - 3600)
        fields = {"source": "stripe", "click_id": CLICK_ID, "lead_code": "l"}
        for n in range(count):
            pk = f"stripe#pi_finished_{n:05}"
            claim = store.create(pk, Status.SENDING, {**fields, "purchase_id": pk}, f"evt_{n}", "checkout", 30)
            assert isinstance(claim, Claim)
            store.finish(pk, claim, Status.SENT, {}, [{"outcome": "ok"}])
            store.note_delivery(pk, f"evt_{n}_again", "invoice.paid")
        sandbox.state.fault = lambda r: (503, "")
        Invoker().stripe(purchase("pi_stranded"), TEST_STRIPE_SECRET)
        aws.sqs.purge_queue(QueueUrl=aws.retry_url)  # the retry message is lost
        sandbox.state.fault = None
        time.sleep(0.05)
        swept = sweep_once()
        aws.drain()
        stranded = aws.record("stripe#pi_stranded")
        FAULT_FIGURES.append(
            f"10. {count} finished conversions each redelivered, then one stranded: the next sweep queued {swept}, "
            f"the stranded one ended {stranded['status'] if stranded else None}"
        )
        assert swept == 1 and stranded is not None and stranded["status"] == "sent"


class TestLostAnswers:
    """DynamoDB applied a write and its answer was lost: botocore retries it, the retry's condition refuses
    it, and the refusal returns the record the first attempt wrote. The store knows its own lease token."""

    @staticmethod
    def lose_the_first(operation: str) -> Any:
        lost: list[str] = []

        def lose(environ: dict[str, Any]) -> bool:
            if operation in environ.get("HTTP_X_AMZ_TARGET", "") and not lost:
                lost.append(operation)
                return True
            return False

        return lose

    def test_a_create_whose_answer_was_lost_is_still_sent_at_once(
        self, invoke: Invoker, aws: Aws, sandbox: TrafficStarsSandbox
    ) -> None:
        invoke(b"", path="/health", method="GET")
        aws.server.lose_answer = self.lose_the_first("UpdateItem")
        reply = invoke.stripe(purchase("pi_lost_answer"), TEST_STRIPE_SECRET)
        assert (reply.status, reply.body["status"]) == (200, "sent")
        assert len(sandbox.state.received) == 1
        assert aws.record("stripe#pi_lost_answer")["deliveries"] == 1  # type: ignore[index]

    def test_a_claim_whose_answer_was_lost_is_still_the_workers(
        self, invoke: Invoker, fast_retries: pytest.MonkeyPatch, aws: Aws, sandbox: TrafficStarsSandbox
    ) -> None:
        sandbox.state.fault = lambda r: (503, "")
        invoke.stripe(purchase("pi_lost_claim"), TEST_STRIPE_SECRET)
        sandbox.state.fault = None
        aws.server.lose_answer = self.lose_the_first("UpdateItem")
        aws.drain()
        record = aws.record("stripe#pi_lost_claim")
        assert record is not None and record["status"] == "sent" and len(sandbox.state.accepted()) == 1

    def test_an_outcome_whose_answer_was_lost_is_known_as_written(
        self, invoke: Invoker, aws: Aws, sandbox: TrafficStarsSandbox
    ) -> None:
        invoke(b"", path="/health", method="GET")
        calls: list[str] = []

        def lose_the_second_write(environ: dict[str, Any]) -> bool:
            if "UpdateItem" in environ.get("HTTP_X_AMZ_TARGET", ""):
                calls.append("w")
                return len(calls) == 2  # the create goes through; the outcome's answer is lost
            return False

        aws.server.lose_answer = lose_the_second_write
        sandbox.state.fault = lambda r: (503, "")
        reply = invoke.stripe(purchase("pi_lost_outcome"), TEST_STRIPE_SECRET)
        assert (reply.status, reply.body["status"]) == (200, "retry_pending")  # recorded and queued
        assert len(aws.queued()) == 1


class TestRecordsOfTheFirstRelease:
    def test_a_finished_record_a_redelivery_had_put_back_in_the_due_index_is_swept_once_and_leaves_it(
        self, fast_retries: pytest.MonkeyPatch, aws: Aws, sandbox: TrafficStarsSandbox
    ) -> None:
        """As 0.1.0 left it: sent, and back in the due index with a due time long past."""
        item = {
            "pk": {"S": "stripe#pi_old"},
            "status": {"S": "sent"},
            "source": {"S": "stripe"},
            "purchase_id": {"S": "pi_old"},
            "due_shard": {"S": "due"},
            "due_at": {"N": str(time.time() - 3600)},
            "lease_until": {"N": str(time.time() - 3600)},
        }
        aws.dynamodb.put_item(TableName=aws.table_name, Item=item)
        assert sweep_once() == 1
        aws.drain()
        record = aws.record("stripe#pi_old")
        assert record is not None and record["status"] == "sent" and sandbox.state.received == []
        assert not {"due_shard", "due_at", "lease_until"} & set(record)
        assert sweep_once() == 0


class TestRefundDuringASend:
    def test_a_refund_that_lands_while_a_send_times_out_is_never_sent_afterwards(
        self, invoke: Invoker, fast_retries: pytest.MonkeyPatch, aws: Aws, sandbox: TrafficStarsSandbox
    ) -> None:
        fast_retries.setenv("TRAFFICSTARS_READ_TIMEOUT", "0.3")
        reset_runtime()
        other_container = build_runtime(Settings.from_env()).relay
        refunded = threading.Event()

        def refund_then_time_out(received: Received) -> tuple[int, str] | None:
            if not refunded.is_set():
                body = stripe_event("charge.refunded", charge_refunded(pi="pi_refunded"))
                headers = {"stripe-signature": stripe_signature(body, TEST_STRIPE_SECRET)}
                assert other_container.handle(STRIPE, body, headers).status == "refunded"
                refunded.set()
                time.sleep(0.5)  # the relay gave up waiting: it cannot know whether this GET counted
                return 503, ""
            return None

        sandbox.state.fault = refund_then_time_out
        reply = invoke.stripe(purchase("pi_refunded"), TEST_STRIPE_SECRET)
        assert (reply.status, reply.body["status"]) == (200, "refunded") and refunded.is_set()
        time.sleep(0.6)
        aws.drain()
        sweep_once()
        aws.drain()
        assert len(sandbox.state.received) == 1  # the GET that was in flight; nothing after the refund
        record = aws.record("stripe#pi_refunded")
        assert record is not None and record["status"] == "refunded"
        assert record["status_before_reversal"] == "retry_pending"  # what became of the send in flight
        assert [entry["outcome"] for entry in record["attempt_log"]] == ["retryable"]
        assert "due_at" not in record and "lease_token" not in record


class _Recording:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send_message(self, **request: Any) -> None:
        self.sent.append(request)


class TestRetriesOnTime:
    @pytest.mark.parametrize("delay", [0.001, 0.4, 1.0, 29.2, 899.5])
    def test_a_retry_message_is_never_visible_before_its_conversion_is_due(self, delay: float) -> None:
        client = _Recording()
        RetryQueue(client, "https://q", None).schedule("stripe#pi_1", delay, 1_800_000_000 + delay)
        (message,) = client.sent
        assert delay <= message["DelaySeconds"] < delay + 1
        assert json.loads(message["MessageBody"]) == {"conversion_id": "stripe#pi_1", "due_at": 1_800_000_000 + delay}

    def test_a_wait_longer_than_sqs_allows_is_delayed_the_most_sqs_allows(self) -> None:
        client = _Recording()
        RetryQueue(client, "https://q", None).schedule("stripe#pi_1", 3600, None)
        assert client.sent[0]["DelaySeconds"] == 900


class TestAnonymousInputNeverA5xx:
    def test_a_stripe_timestamp_of_310_digits_is_401(self, invoke: Invoker, aws: Aws) -> None:
        reply = invoke(purchase("pi_x"), {"Stripe-Signature": "t=" + "9" * 310 + ",v1=" + "0" * 64})
        assert (reply.status, reply.body["error"]) == (401, "invalid_signature")

    def test_a_paddle_timestamp_of_310_digits_is_401(self, invoke: Invoker, aws: Aws) -> None:
        reply = invoke(b"{}", {"Paddle-Signature": "ts=" + "9" * 310 + ";h1=" + "0" * 64}, path="/webhooks/paddle")
        assert (reply.status, reply.body["error"]) == (401, "invalid_signature")

    def test_a_signed_body_nested_100000_deep_is_400(self, invoke: Invoker, aws: Aws) -> None:
        body = b"[" * 100_000 + b"]" * 100_000
        reply = invoke.stripe(body, TEST_STRIPE_SECRET)
        assert (reply.status, reply.body["error"]) == (400, "malformed_body")
        assert aws.items() == []

    def test_a_route_whose_platform_has_no_secret_is_404_and_only_a_signed_delivery_counts_as_misconfigured(
        self, invoke: Invoker, aws: Aws, capfd: pytest.CaptureFixture[str]
    ) -> None:
        aws.put_secret({"trafficstars_key": TEST_KEY, **TEST_SOURCE_SECRETS})  # no stripe_webhook_secret
        capfd.readouterr()
        scanner = invoke(purchase("pi_x"), {"Stripe-Signature": "garbage"})
        anonymous = capfd.readouterr().out
        signed = invoke.stripe(purchase("pi_x"), "whsec_of_a_stripe_account_this_relay_does_not_know")
        delivery = capfd.readouterr().out
        assert (scanner.status, scanner.body["error"]) == (404, "source_not_configured")
        assert (signed.status, signed.body["error"]) == (404, "source_not_configured")
        assert emf.values(anonymous, "UnconfiguredSourceDeliveries") == []
        assert emf.values(delivery, "UnconfiguredSourceDeliveries") == [1.0]
        assert emf.values(delivery, "UnconfiguredSourceDeliveries", source="stripe") == [1.0]
        assert aws.items() == []
