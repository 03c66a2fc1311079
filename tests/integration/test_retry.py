"""The retry pipeline: the SQS worker (real handler, moto queues), the sweep, the dead-letter queue."""

from __future__ import annotations

import json
import time

import pytest

from postback_relay.aws.store import Claim, ConversionStore
from postback_relay.runtime import get_runtime, reset_runtime
from postback_relay_dev.sandbox import TrafficStarsSandbox
from postback_relay_dev.worker import sqs_event, sweep_once
from tests.support.aws import Aws
from tests.support.constants import TEST_KEY, TEST_STRIPE_SECRET
from tests.support.helpers import Invoker, checkout_session, stripe_event

PURCHASE = "stripe#pi_test_0001"


def purchase(pi: str = "pi_test_0001") -> bytes:
    return stripe_event("checkout.session.completed", checkout_session(payment_intent=pi))


def test_the_worker_delivers_a_queued_conversion_after_recovery_with_the_same_lead_code(
    invoke: Invoker, fast_retries: pytest.MonkeyPatch, aws: Aws, sandbox: TrafficStarsSandbox
) -> None:
    sandbox.state.fault = lambda r: (503, "")
    assert invoke.stripe(purchase(), TEST_STRIPE_SECRET).body["status"] == "retry_pending"
    aws.drain(rounds=3)  # still down: the worker reschedules it
    record = aws.record(PURCHASE)
    assert record is not None and record["status"] == "retry_pending" and record["attempts"] >= 2
    sandbox.state.fault = None
    aws.drain()
    record = aws.record(PURCHASE)
    assert record is not None and record["status"] == "sent" and "due_at" not in record
    assert len(sandbox.state.accepted()) == 1
    assert len({r.params["lead_code"] for r in sandbox.state.received}) == 1


def test_a_conversion_not_yet_due_is_left_for_later(
    invoke: Invoker, relay_env: pytest.MonkeyPatch, aws: Aws, sandbox: TrafficStarsSandbox
) -> None:
    relay_env.setenv("RETRY_BASE_DELAY_SECONDS", "3600")
    sandbox.state.fault = lambda r: (503, "")
    invoke.stripe(purchase(), TEST_STRIPE_SECRET)
    sandbox.state.fault = None
    assert get_runtime().relay.retry(PURCHASE) is None
    assert len(sandbox.state.received) == 1


def test_retry_after_sets_the_next_due_time(invoke: Invoker, aws: Aws, sandbox: TrafficStarsSandbox) -> None:
    sandbox.state.fault = lambda r: (429, "")
    invoke.stripe(purchase(), TEST_STRIPE_SECRET)
    record = aws.record(PURCHASE)
    assert record is not None and record["due_at"] >= time.time() + 10  # at least the 30 s base's lower half


def test_a_wait_longer_than_sqs_can_delay_is_queued_for_its_due_time_and_held_in_the_due_index(
    invoke: Invoker, relay_env: pytest.MonkeyPatch, aws: Aws, sandbox: TrafficStarsSandbox
) -> None:
    relay_env.setenv("RETRY_BASE_DELAY_SECONDS", "3600")
    sandbox.state.fault = lambda r: (503, "")
    assert invoke.stripe(purchase(), TEST_STRIPE_SECRET).status == 200
    assert aws.delayed() == 1  # 15 minutes at most: it arrives early and is put back (below)
    record = aws.record(PURCHASE)
    assert record is not None and record["due_at"] > time.time() + 1700  # and the sweep holds it too


def test_a_message_that_arrives_before_its_conversion_is_due_is_put_back_not_dropped(
    invoke: Invoker, relay_env: pytest.MonkeyPatch, aws: Aws, sandbox: TrafficStarsSandbox
) -> None:
    from postback_relay.handlers.retry import retry_handler
    from postback_relay_dev.apigw import LocalContext

    relay_env.setenv("RETRY_BASE_DELAY_SECONDS", "3600")
    sandbox.state.fault = lambda r: (503, "")
    invoke.stripe(purchase(), TEST_STRIPE_SECRET)
    aws.sqs.purge_queue(QueueUrl=aws.retry_url)
    record = aws.record(PURCHASE)
    assert record is not None
    early = {"MessageId": "m1", "ReceiptHandle": "r1"}
    body = {"conversion_id": PURCHASE, "due_at": float(record["due_at"])}
    result = retry_handler(sqs_event([{**early, "Body": json.dumps(body)}], "arn:aws:sqs:::q"), LocalContext())
    assert result == {"batchItemFailures": []} and len(sandbox.state.received) == 1  # no GET before its time
    assert aws.delayed() == 1  # put back, with the remaining delay
    assert aws.record(PURCHASE) == record  # and the record untouched
    stale = {"conversion_id": PURCHASE, "due_at": float(record["due_at"]) - 60}  # for a due time since replaced
    retry_handler(sqs_event([{**early, "Body": json.dumps(stale)}], "arn:aws:sqs:::q"), LocalContext())
    assert aws.delayed() == 1  # dropped: the message queued for the current due time is on its way


def test_a_rejection_during_a_retry_is_final(
    invoke: Invoker, fast_retries: pytest.MonkeyPatch, aws: Aws, sandbox: TrafficStarsSandbox
) -> None:
    sandbox.state.fault = lambda r: (503, "")
    invoke.stripe(purchase(), TEST_STRIPE_SECRET)
    sandbox.state.fault = lambda r: (400, json.dumps({"error": {"msg": "invalid code"}}))
    aws.drain()
    record = aws.record(PURCHASE)
    assert record is not None and (record["status"], record["trafficstars_answer"]) == ("rejected", "invalid code")
    assert aws.queued() == []


def test_an_exhausted_window_marks_failed_with_the_last_answer_and_dead_letters_it(
    invoke: Invoker, fast_retries: pytest.MonkeyPatch, aws: Aws, sandbox: TrafficStarsSandbox
) -> None:
    fast_retries.setenv("RETRY_WINDOW_SECONDS", "1")
    reset_runtime()
    sandbox.state.fault = lambda r: (502, "<h1>Bad gateway</h1>")
    invoke.stripe(purchase(), TEST_STRIPE_SECRET)
    time.sleep(1.1)
    aws.drain()
    record = aws.record(PURCHASE)
    assert record is not None and record["status"] == "failed"
    assert record["trafficstars_answer"] == "HTTP 502: <h1>Bad gateway</h1>" and "due_at" not in record
    messages = aws.sqs.receive_message(QueueUrl=aws.dead_letter_url, MaxNumberOfMessages=10)["Messages"]
    assert [json.loads(m["Body"])["conversion_id"] for m in messages] == [PURCHASE]


def test_the_sweep_requeues_a_conversion_whose_message_was_lost(
    invoke: Invoker, fast_retries: pytest.MonkeyPatch, aws: Aws, sandbox: TrafficStarsSandbox
) -> None:
    sandbox.state.fault = lambda r: (503, "")
    invoke.stripe(purchase(), TEST_STRIPE_SECRET)
    aws.sqs.purge_queue(QueueUrl=aws.retry_url)  # the message is lost
    sandbox.state.fault = None
    assert aws.drain() == 0
    assert sweep_once() == 1
    aws.drain()
    record = aws.record(PURCHASE)
    assert record is not None and record["status"] == "sent"
    assert sweep_once() == 0  # nothing left in flight or waiting


def test_a_worker_killed_between_claim_and_send_is_sent_once_after_its_lease(
    invoke: Invoker, fast_retries: pytest.MonkeyPatch, aws: Aws, sandbox: TrafficStarsSandbox
) -> None:
    sandbox.state.fault = lambda r: (503, "")
    invoke.stripe(purchase(), TEST_STRIPE_SECRET)
    aws.sqs.purge_queue(QueueUrl=aws.retry_url)
    sandbox.state.fault = None
    dying = ConversionStore(aws.dynamodb, aws.table_name, 90)
    assert isinstance(dying.claim(PURCHASE, 2), Claim)  # claimed, then the worker dies: no send, no outcome
    lease_until = time.time() + 2
    assert sweep_once() == 0  # the lease still holds
    time.sleep(max(0.0, lease_until - time.time()) + 0.1)
    assert sweep_once() == 1
    aws.drain()
    assert len(sandbox.state.accepted()) == 1
    record = aws.record(PURCHASE)
    assert record is not None and record["status"] == "sent"


def test_a_batch_reports_only_the_failed_message(
    invoke: Invoker, fast_retries: pytest.MonkeyPatch, aws: Aws, sandbox: TrafficStarsSandbox
) -> None:
    from postback_relay.handlers.retry import retry_handler
    from postback_relay_dev.apigw import LocalContext

    sandbox.state.fault = lambda r: (503, "")
    invoke.stripe(purchase("pi_a"), TEST_STRIPE_SECRET)
    sandbox.state.fault = None
    messages = [
        {"MessageId": "m1", "ReceiptHandle": "r1", "Body": json.dumps({"conversion_id": "stripe#pi_a"})},
        {"MessageId": "m2", "ReceiptHandle": "r2", "Body": "not json"},
    ]
    result = retry_handler(sqs_event(messages, "arn:aws:sqs:us-east-1:123456789012:q"), LocalContext())
    assert result["batchItemFailures"] == [{"itemIdentifier": "m2"}]
    record = aws.record("stripe#pi_a")
    assert record is not None and record["status"] == "sent"


def test_the_worker_and_a_redelivery_never_both_send(
    invoke: Invoker, fast_retries: pytest.MonkeyPatch, aws: Aws, sandbox: TrafficStarsSandbox
) -> None:
    sandbox.state.fault = lambda r: (503, "")
    invoke.stripe(purchase(), TEST_STRIPE_SECRET)
    sandbox.state.fault = None
    assert invoke.stripe(purchase(), TEST_STRIPE_SECRET).body["status"] == "duplicate"  # the sender's redelivery
    aws.drain()  # the queued retry sends it
    assert len(sandbox.state.accepted()) == 1
    assert aws.record(PURCHASE)["status"] == "sent"  # type: ignore[index]


def test_queue_messages_carry_only_the_conversion_key(invoke: Invoker, aws: Aws, sandbox: TrafficStarsSandbox) -> None:
    sandbox.state.fault = lambda r: (503, "")
    invoke.stripe(purchase(), TEST_STRIPE_SECRET)
    time.sleep(0)  # messages may be delayed; receive what is visible after the delay
    attributes = aws.sqs.get_queue_attributes(QueueUrl=aws.retry_url, AttributeNames=["All"])["Attributes"]
    assert int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesDelayed"]) == 1
    assert TEST_KEY not in json.dumps(attributes)
