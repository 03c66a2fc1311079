"""The metrics each webhook produces, read back from the EMF lines the real handler prints (issue 6).

Alarms read the roll-ups (`service` alone, `service` + `outcome`, `service` + `reason`), the dashboard the
detailed sets; both are checked here, with the names the template uses."""

from __future__ import annotations

import json

import pytest
from aws_lambda_powertools.metrics.provider import cold_start

from postback_relay.handlers import telemetry
from postback_relay_dev.sandbox import TrafficStarsSandbox
from tests.support import emf
from tests.support.aws import Aws
from tests.support.constants import TEST_STRIPE_SECRET
from tests.support.helpers import Invoker, charge_refunded, checkout_session, stripe_event

ALLOWED_DIMENSIONS = {"service", "source", "outcome", "reason", "function_name"}


def purchase(**kwargs: object) -> bytes:
    return stripe_event("checkout.session.completed", checkout_session(**kwargs))  # type: ignore[arg-type]


def printed(capfd: pytest.CaptureFixture[str]) -> str:
    return capfd.readouterr().out


class TestOutcomes:
    def test_a_sent_postback_counts_the_webhook_the_postback_its_latency_and_value(
        self, invoke: Invoker, sandbox: TrafficStarsSandbox, capfd: pytest.CaptureFixture[str]
    ) -> None:
        printed(capfd)
        assert invoke.stripe(purchase(), TEST_STRIPE_SECRET).body["status"] == "sent"
        out = printed(capfd)
        assert emf.values(out, "Webhooks", source="stripe", outcome="sent") == [1.0]
        assert emf.values(out, "Webhooks") == [1.0]  # the total the postbacks-silent alarm reads
        assert emf.values(out, "Webhooks", outcome="sent") == []  # no roll-up nothing reads: each one is billed
        assert emf.values(out, "Postbacks", source="stripe", outcome="sent") == [1.0]
        assert emf.values(out, "Postbacks", outcome="sent") == [1.0]
        [latency] = emf.values(out, "PostbackLatency", source="stripe")
        assert latency > 0 and emf.values(out, "PostbackLatency") == [latency]
        assert emf.values(out, "ValueSent", source="stripe") == [49.0] == emf.values(out, "ValueSent")
        assert emf.values(out, "Retries", source="stripe") == []
        assert emf.values(out, "PostbackRejected") == []
        assert {p.namespace for p in emf.datapoints(out)} == {"PostbackRelay"}

    def test_units_are_what_the_dashboard_expects(
        self, invoke: Invoker, sandbox: TrafficStarsSandbox, capfd: pytest.CaptureFixture[str]
    ) -> None:
        printed(capfd)
        invoke.stripe(purchase(), TEST_STRIPE_SECRET)
        units = {p.name: p.unit for p in emf.datapoints(printed(capfd))}
        assert units["Webhooks"] == units["Postbacks"] == "Count"
        assert units["PostbackLatency"] == "Milliseconds" and units["ValueSent"] == "None"

    def test_a_duplicate_is_counted_and_sends_nothing(
        self, invoke: Invoker, sandbox: TrafficStarsSandbox, capfd: pytest.CaptureFixture[str]
    ) -> None:
        invoke.stripe(purchase(), TEST_STRIPE_SECRET)
        printed(capfd)
        assert invoke.stripe(purchase(), TEST_STRIPE_SECRET).body["status"] == "duplicate"
        out = printed(capfd)
        assert emf.values(out, "Webhooks", source="stripe", outcome="duplicate") == [1.0]
        assert emf.values(out, "Postbacks", source="stripe", outcome="duplicate") == []
        assert emf.datapoints(out) and {p.name for p in emf.datapoints(out)} == {"Webhooks"}

    @pytest.mark.parametrize(
        ("body", "outcome"),
        [
            (purchase(click_id=None), "no_click_id"),
            (purchase(click_id="{click_id}"), "invalid_click_id"),
            (stripe_event("checkout.session.completed", checkout_session(), livemode=False), "test_mode"),
            (stripe_event("customer.created", {"id": "cus_1", "object": "customer"}), "ignored"),
        ],
    )
    def test_webhooks_that_send_nothing_are_counted_by_outcome(
        self,
        invoke: Invoker,
        sandbox: TrafficStarsSandbox,
        capfd: pytest.CaptureFixture[str],
        body: bytes,
        outcome: str,
    ) -> None:
        printed(capfd)
        assert invoke.stripe(body, TEST_STRIPE_SECRET).body["status"] == outcome
        out = printed(capfd)
        assert emf.values(out, "Webhooks", source="stripe", outcome=outcome) == [1.0]
        assert {p.name for p in emf.datapoints(out)} == {"Webhooks"} and sandbox.state.received == []

    def test_a_refund_is_counted_as_refunded(
        self, invoke: Invoker, sandbox: TrafficStarsSandbox, capfd: pytest.CaptureFixture[str]
    ) -> None:
        invoke.stripe(purchase(), TEST_STRIPE_SECRET)
        printed(capfd)
        invoke.stripe(stripe_event("charge.refunded", charge_refunded()), TEST_STRIPE_SECRET)
        assert emf.values(printed(capfd), "Webhooks", source="stripe", outcome="refunded") == [1.0]

    @pytest.mark.parametrize(
        ("message", "reason"),
        [
            ("invalid code", "invalid_code"),
            ("the price should be between 0.010 and 200.000", "price"),
            ("invalid key", "invalid_key"),
        ],
    )
    def test_a_rejection_is_counted_with_trafficstars_reason(
        self,
        invoke: Invoker,
        sandbox: TrafficStarsSandbox,
        capfd: pytest.CaptureFixture[str],
        message: str,
        reason: str,
    ) -> None:
        sandbox.state.fault = lambda r: (400, json.dumps({"error": {"msg": message}}))
        printed(capfd)
        assert invoke.stripe(purchase(), TEST_STRIPE_SECRET).body["status"] == "rejected"
        out = printed(capfd)
        assert emf.values(out, "Webhooks", source="stripe", outcome="rejected") == [1.0]
        assert emf.values(out, "Postbacks", outcome="rejected") == [1.0]
        assert emf.values(out, "PostbackRejected", source="stripe", reason=reason) == [1.0]
        assert emf.values(out, "PostbackRejected", reason=reason) == [1.0]  # what the invalid-key alarm reads
        assert emf.values(out, "ValueSent") == []

    def test_an_invalid_key_fixed_by_a_rotated_secret_is_not_a_rejection(
        self, invoke: Invoker, aws: Aws, sandbox: TrafficStarsSandbox, capfd: pytest.CaptureFixture[str]
    ) -> None:
        invoke.stripe(purchase(payment_intent="pi_warm"), TEST_STRIPE_SECRET)  # fills the secret cache
        sandbox.state.key = "rotated-key"
        aws.put_secret({"trafficstars_key": "rotated-key", "stripe_webhook_secret": TEST_STRIPE_SECRET})
        printed(capfd)
        assert invoke.stripe(purchase(), TEST_STRIPE_SECRET).body["status"] == "sent"
        out = printed(capfd)
        assert emf.values(out, "PostbackRejected") == []
        assert len(emf.values(out, "PostbackLatency", source="stripe")) == 2  # both GETs measured

    def test_the_workers_attempt_counts_a_retry_and_a_redelivery_counts_none(
        self,
        invoke: Invoker,
        fast_retries: pytest.MonkeyPatch,
        aws: Aws,
        sandbox: TrafficStarsSandbox,
        capfd: pytest.CaptureFixture[str],
    ) -> None:
        sandbox.state.fault = lambda r: (503, "")
        printed(capfd)
        assert invoke.stripe(purchase(), TEST_STRIPE_SECRET).body["status"] == "retry_pending"
        first = printed(capfd)
        assert emf.values(first, "Webhooks", source="stripe", outcome="retry_pending") == [1.0]
        assert emf.values(first, "Postbacks", outcome="retry_pending") == [1.0]
        assert emf.values(first, "Retries") == []
        sandbox.state.fault = None
        assert invoke.stripe(purchase(), TEST_STRIPE_SECRET).body["status"] == "duplicate"
        redelivery = printed(capfd)
        assert emf.values(redelivery, "Webhooks", source="stripe", outcome="duplicate") == [1.0]
        assert emf.values(redelivery, "Retries") == [] == emf.values(redelivery, "Postbacks")
        aws.drain()
        worker = printed(capfd)
        assert emf.values(worker, "Retries", source="stripe") == [1.0] == emf.values(worker, "Retries")
        assert emf.values(worker, "Postbacks", outcome="sent") == [1.0]

    def test_a_missing_key_is_retry_pending_without_a_latency(
        self, invoke: Invoker, aws: Aws, sandbox: TrafficStarsSandbox, capfd: pytest.CaptureFixture[str]
    ) -> None:
        aws.put_secret({"stripe_webhook_secret": TEST_STRIPE_SECRET})
        printed(capfd)
        assert invoke.stripe(purchase(), TEST_STRIPE_SECRET).body["status"] == "retry_pending"
        out = printed(capfd)
        assert emf.values(out, "Postbacks", outcome="retry_pending") == [1.0]
        assert emf.values(out, "PostbackLatency") == []  # no GET was made


class TestRefusals:
    def test_a_bad_signature_is_counted_under_its_source(
        self, invoke: Invoker, capfd: pytest.CaptureFixture[str]
    ) -> None:
        printed(capfd)
        assert invoke.stripe(purchase(), "whsec_forged").status == 401
        out = printed(capfd)
        assert emf.values(out, "Webhooks", source="stripe", outcome="invalid_signature") == [1.0]
        assert emf.values(out, "Webhooks") == [1.0]

    def test_an_unavailable_dependency_is_counted(
        self, invoke: Invoker, aws: Aws, capfd: pytest.CaptureFixture[str]
    ) -> None:
        aws.server.fault = lambda environ: environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB")
        printed(capfd)
        assert invoke.stripe(purchase(), TEST_STRIPE_SECRET).status == 503
        out = printed(capfd)
        assert emf.values(out, "Webhooks", source="stripe", outcome="temporarily_unavailable") == [1.0]

    def test_an_unknown_path_never_becomes_a_dimension_value(
        self, invoke: Invoker, capfd: pytest.CaptureFixture[str]
    ) -> None:
        printed(capfd)
        assert invoke(b"{}", path="/webhooks/attacker-chosen-123").status == 404
        out = printed(capfd)
        assert emf.values(out, "Webhooks", source="unknown", outcome="unknown_source") == [1.0]
        assert "attacker-chosen-123" not in json.dumps(emf.records(out))


class TestShape:
    def test_dimensions_stay_low_cardinality_and_hold_no_identifier(
        self, invoke: Invoker, sandbox: TrafficStarsSandbox, capfd: pytest.CaptureFixture[str]
    ) -> None:
        printed(capfd)
        invoke.stripe(purchase(), TEST_STRIPE_SECRET)
        invoke.stripe(purchase(payment_intent="pi_other", click_id=None), TEST_STRIPE_SECRET)
        invoke.stripe(purchase(), "whsec_forged")
        points = emf.datapoints(printed(capfd))
        assert points
        assert {name for p in points for name in p.dimensions} <= ALLOWED_DIMENSIONS
        identifiers = ("pi_", "evt_", "stripe#", "c86b8a88")
        assert not [v for p in points for v in p.dimensions.values() if any(i in v for i in identifiers)]

    def test_a_cold_start_is_counted_once(self, invoke: Invoker, capfd: pytest.CaptureFixture[str]) -> None:
        cold_start.is_cold_start = True
        printed(capfd)
        invoke(b"", path="/health", method="GET")
        invoke(b"", path="/health", method="GET")
        out = printed(capfd)
        assert emf.values(out, "ColdStart", function_name="postback-relay-local") == [1.0]

    def test_the_service_dimension_is_the_service_name(
        self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "my-stack")  # the template sets it to the stack name
        telemetry.publish(telemetry.refusal_metrics("stripe", "invalid_signature"))
        points = emf.datapoints(capsys.readouterr().out)
        assert {p.dimensions["service"] for p in points} == {"my-stack"}
        assert {tuple(sorted(p.dimensions)) for p in points} == {("outcome", "service", "source"), ("service",)}

    def test_a_metrics_problem_never_changes_the_answer(
        self,
        invoke: Invoker,
        monkeypatch: pytest.MonkeyPatch,
        sandbox: TrafficStarsSandbox,
        capfd: pytest.CaptureFixture[str],
    ) -> None:
        broken = telemetry.MetricRecord(({},), (telemetry.Measurement("", telemetry.MetricUnit.Count, 1),))
        monkeypatch.setattr(telemetry, "webhook_metrics", lambda source, outcome, tenant: [broken])
        printed(capfd)
        reply = invoke.stripe(purchase(), TEST_STRIPE_SECRET)
        assert (reply.status, reply.body["status"]) == (200, "sent")
        out = printed(capfd)
        assert "metrics not published" in out
        assert [r for r in emf.records(out) if "ColdStart" not in r] == []

    def test_the_retry_worker_counts_postbacks_not_webhooks(self) -> None:
        """attempt_metrics is what a postback made without a webhook (the retry worker) publishes."""
        from postback_relay.core.outcome import Answer, Outcome

        outcome = Outcome("sent", {}, "stripe#pi_1", (Answer("ok", 200, "ok", "ok", 12.5),), attempt=3)
        records = telemetry.attempt_metrics(telemetry.source_of("stripe#pi_1"), outcome)
        names = {m.name for r in records for m in r.measurements}
        assert names == {"Postbacks", "PostbackLatency", "Retries"}
        assert records[0].dimension_sets[0] == {"source": "stripe", "outcome": "sent"}
        assert telemetry.source_of("no-separator") == "unknown"
