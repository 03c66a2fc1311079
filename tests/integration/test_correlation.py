"""One correlation id per conversion: the platform's event id, on every log line, in the record and its
attempts, and on the trace (issue 6). Before the body is verified the event id is unknown (and untrusted):
those lines carry API Gateway's request id, which the access log has too."""

from __future__ import annotations

import json
from typing import Any

import pytest

from postback_relay_dev.sandbox import TrafficStarsSandbox
from tests.support.aws import Aws
from tests.support.constants import TEST_STRIPE_SECRET
from tests.support.helpers import Invoker, checkout_session, payment_intent, stripe_event

PURCHASE = "stripe#pi_test_0001"


def log_lines(capfd: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    """The handler's JSON log lines (not its EMF metric records)."""
    lines = [json.loads(line) for line in capfd.readouterr().out.splitlines() if line.strip()]
    return [line for line in lines if "_aws" not in line]


def test_every_log_line_of_a_delivery_carries_its_event_id(
    invoke: Invoker, sandbox: TrafficStarsSandbox, capfd: pytest.CaptureFixture[str]
) -> None:
    capfd.readouterr()
    invoke.stripe(stripe_event("checkout.session.completed", checkout_session(), event_id="evt_A"), TEST_STRIPE_SECRET)
    lines = log_lines(capfd)
    assert {line["message"] for line in lines} >= {"postback sent", "webhook handled"}
    assert all(line["correlation_id"] == "evt_A" for line in lines)
    assert all(line["conversion_id"] == PURCHASE for line in lines)


def test_a_refused_delivery_is_correlated_by_the_api_request_id(
    invoke: Invoker, capfd: pytest.CaptureFixture[str]
) -> None:
    capfd.readouterr()
    body = stripe_event("checkout.session.completed", checkout_session(), event_id="evt_forged")
    assert invoke.stripe(body, "whsec_forged").status == 401
    [line] = log_lines(capfd)
    assert line["message"] == "webhook refused"
    assert line["correlation_id"] and line["correlation_id"] != "evt_forged"  # unverified: not trusted


def test_the_record_and_each_attempt_carry_the_correlation_id(
    invoke: Invoker, fast_retries: pytest.MonkeyPatch, aws: Aws, sandbox: TrafficStarsSandbox
) -> None:
    sandbox.state.fault = lambda r: (503, "")
    body = stripe_event("checkout.session.completed", checkout_session(), event_id="evt_first")
    invoke.stripe(body, TEST_STRIPE_SECRET)
    sandbox.state.fault = None
    invoke.stripe(body, TEST_STRIPE_SECRET)  # the sender's redelivery of the same event: only noted
    aws.drain()  # the retry worker's attempt, correlated by the conversion's own id
    record = aws.record(PURCHASE)
    assert record is not None and record["status"] == "sent"
    assert record["correlation_id"] == "evt_first"
    assert [a["correlation_id"] for a in record["attempt_log"]] == ["evt_first", "evt_first"]


def test_an_upgrading_event_keeps_the_conversions_id_and_names_itself_on_its_attempt(
    invoke: Invoker, aws: Aws, sandbox: TrafficStarsSandbox
) -> None:
    """payment_intent.succeeded (no click id) creates the record; checkout.session.completed sends it."""
    invoke.stripe(stripe_event("payment_intent.succeeded", payment_intent(), event_id="evt_pi"), TEST_STRIPE_SECRET)
    body = stripe_event("checkout.session.completed", checkout_session(), event_id="evt_cs")
    assert invoke.stripe(body, TEST_STRIPE_SECRET).body["status"] == "sent"
    record = aws.record(PURCHASE)
    assert record is not None
    assert (record["correlation_id"], record["first_event_id"]) == ("evt_pi", "evt_pi")
    assert record["event_ids"] == {"evt_pi", "evt_cs"}
    assert [a["correlation_id"] for a in record["attempt_log"]] == ["evt_cs"]


def test_the_trace_is_annotated_with_the_correlation_and_conversion_ids(
    invoke: Invoker, sandbox: TrafficStarsSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    from postback_relay.handlers import http as app

    annotations: dict[str, Any] = {}
    monkeypatch.setattr(app.tracer, "put_annotation", lambda key, value: annotations.__setitem__(key, value))
    invoke.stripe(stripe_event("checkout.session.completed", checkout_session(), event_id="evt_T"), TEST_STRIPE_SECRET)
    assert annotations == {
        "source": "stripe",
        "outcome": "sent",
        "correlation_id": "evt_T",
        "conversion_id": PURCHASE,
    }


def test_a_refusal_is_annotated_with_its_code(invoke: Invoker, monkeypatch: pytest.MonkeyPatch) -> None:
    from postback_relay.handlers import http as app

    annotations: dict[str, Any] = {}
    monkeypatch.setattr(app.tracer, "put_annotation", lambda key, value: annotations.__setitem__(key, value))
    invoke.stripe(stripe_event("checkout.session.completed", checkout_session()), "whsec_forged")
    assert (annotations["source"], annotations["outcome"]) == ("stripe", "invalid_signature")
    assert "conversion_id" not in annotations
