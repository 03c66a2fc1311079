"""Replay: the dead-letter queue re-driven, or records re-sent, through the same claim: twice is once."""

from __future__ import annotations

import time

import pytest

from postback_relay.aws.queue import RetryQueue
from postback_relay.aws.store import ConversionStore
from postback_relay.ops.replay import redrive_dead_letters, replay_records
from postback_relay.runtime import reset_runtime
from postback_relay_dev.sandbox import TrafficStarsSandbox
from tests.support.aws import Aws
from tests.support.constants import TEST_STRIPE_SECRET
from tests.support.helpers import Invoker, checkout_session, stripe_event


@pytest.fixture
def failed(invoke: Invoker, fast_retries: pytest.MonkeyPatch, aws: Aws, sandbox: TrafficStarsSandbox) -> list[str]:
    """Three conversions that exhausted a one-second retry window while TrafficStars was down."""
    fast_retries.setenv("RETRY_WINDOW_SECONDS", "1")
    reset_runtime()
    sandbox.state.fault = lambda r: (503, "")
    ids = []
    for n in range(3):
        body = stripe_event("checkout.session.completed", checkout_session(payment_intent=f"pi_{n}"))
        ids.append(invoke.stripe(body, TEST_STRIPE_SECRET).body["conversion_id"])
    time.sleep(1.1)
    aws.drain()
    assert all(aws.record(i)["status"] == "failed" for i in ids)  # type: ignore[index]
    sandbox.state.fault = None
    sandbox.state.received.clear()
    fast_retries.setenv("RETRY_WINDOW_SECONDS", "259200")
    reset_runtime()
    return ids


def tools(aws: Aws) -> tuple[ConversionStore, RetryQueue]:
    return ConversionStore(aws.dynamodb, aws.table_name, 90), RetryQueue(aws.sqs, aws.retry_url, aws.dead_letter_url)


def test_redriving_the_dead_letter_queue_twice_sends_each_conversion_once(
    failed: list[str], aws: Aws, sandbox: TrafficStarsSandbox
) -> None:
    store, queue = tools(aws)
    for conversion_id in failed:  # the same conversion twice in the DLQ (poison redrive + explicit)
        queue.dead_letter(conversion_id, "again", 1)
    first = redrive_dead_letters(aws.sqs, store, queue)
    assert sorted(set(first.queued)) == sorted(failed)
    second = redrive_dead_letters(aws.sqs, store, queue)
    assert second.queued == []
    aws.drain()
    for conversion_id in failed:
        queue.dead_letter(conversion_id, "third time", 1)
    third = redrive_dead_letters(aws.sqs, store, queue)
    aws.drain()
    assert third.queued == [] and set(third.skipped.values()) == {"status is sent"}
    lead_codes = [r.params["lead_code"] for r in sandbox.state.accepted()]
    assert len(lead_codes) == len(set(lead_codes)) == 3


def test_a_dry_run_changes_nothing(failed: list[str], aws: Aws, sandbox: TrafficStarsSandbox) -> None:
    store, queue = tools(aws)
    report = redrive_dead_letters(aws.sqs, store, queue, dry_run=True)
    assert sorted(report.queued) == sorted(failed)
    assert all(aws.record(i)["status"] == "failed" for i in failed)  # type: ignore[index]
    aws.drain()
    assert sandbox.state.received == []


def test_a_replay_while_sqs_is_down_reopens_and_the_sweep_queues_what_it_could_not(
    failed: list[str], aws: Aws, sandbox: TrafficStarsSandbox
) -> None:
    """The records are due again at once; SQS refusing the messages only moves who queues them."""
    store, queue = tools(aws)
    aws.server.fault = lambda environ: "AmazonSQS" in environ.get("HTTP_X_AMZ_TARGET", "")
    try:
        report = replay_records(store, queue, ["failed"])
    finally:
        aws.server.fault = None
    assert report.queued == [] and sorted(report.deferred) == sorted(failed)
    assert all(aws.record(i)["status"] == "retry_pending" for i in failed)  # type: ignore[index]
    from postback_relay.handlers.retry import sweep_handler
    from postback_relay_dev.apigw import LocalContext

    sweep_handler({}, LocalContext(function_name="SweepFunction", timeout_s=60))
    aws.drain()
    assert len(sandbox.state.accepted()) == 3


def test_records_selected_by_status_and_click_id_are_replayed_once(
    failed: list[str], aws: Aws, sandbox: TrafficStarsSandbox
) -> None:
    store, queue = tools(aws)
    report = replay_records(store, queue, ["failed"])
    assert sorted(report.queued) == sorted(failed)
    again = replay_records(store, queue, ["failed", "retry_pending"])
    aws.drain()
    assert len(sandbox.state.accepted()) == 3
    assert replay_records(store, queue, ["failed"]).queued == []
    assert len(again.queued) <= 3


def test_sent_conversions_cannot_be_replayed(aws: Aws) -> None:
    store, queue = tools(aws)
    with pytest.raises(ValueError, match="cannot replay status sent"):
        replay_records(store, queue, ["sent"])
