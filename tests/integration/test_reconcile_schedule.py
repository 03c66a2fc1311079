"""The scheduled reconciliation (README "Reconciliation", ReconcileFunction): each run covers
`[watermark − overlap, now − settle]` per tenant and platform, keeps its place in the table after every page, is
resumed where it stopped, and never runs twice at once; its metrics say what it recovered and when a key is
refused. Against the local Stripe API and TrafficStars sandbox on loopback, with moto server as the table."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from contextlib import redirect_stdout

import pytest

from postback_relay.aws.reconcile_state import ReconcileStates, state_key
from postback_relay.core.reconcile import scheduled_window
from postback_relay.handlers import reconcile as reconcile_handler_module
from postback_relay.relay.reconcile_schedule import STOP_SECONDS, ScheduledRun, reconcile_all
from postback_relay.runtime import get_runtime, reset_runtime
from postback_relay_dev.apigw import LocalContext
from postback_relay_dev.sandbox import TrafficStarsSandbox
from tests.integration.test_reconcile import (
    API_KEY,
    HOUR,
    accepted_lead_codes,
    deliver,
    purchases,
    stripe_api,
    stripe_server,
)
from tests.support.aws import Aws
from tests.support.constants import TEST_KEY
from tests.support.emf import datapoints
from tests.support.helpers import Invoker
from tests.support.stripe_api import StripeApi
from tests.support.tenants import TENANT_SECRET_PREFIX, add_tenant

__all__ = ["stripe_api", "stripe_server"]  # the fixtures

SETTLE, OVERLAP = 900.0, 3600.0
PLENTY: Callable[[], float] = lambda: 900.0  # noqa: E731 - a Lambda with all its time left


def run(owner: str = "run-1", now: float | None = None, time_left: Callable[[], float] = PLENTY) -> ScheduledRun:
    """One scheduled run of the default tenant's Stripe, as ReconcileFunction makes it."""
    runtime = get_runtime()
    runs = reconcile_all(
        runtime.tenants, runtime.reconcile_states, owner, time.time() if now is None else now, time_left
    )
    [only] = [r for r in runs if r.source == "stripe" and r.tenant == "default"]
    return only


def state(aws: Aws, tenant: str = "default") -> dict[str, object]:
    item = ReconcileStates(aws.dynamodb, aws.table_name).get(state_key(tenant, "stripe"))
    assert item is not None
    return item


class TestTheWindow:
    def test_a_first_run_covers_only_the_overlap_before_now_less_the_settle_time(self) -> None:
        window = scheduled_window(None, 10_000.0, SETTLE, OVERLAP)
        assert window == (10_000.0 - SETTLE - OVERLAP, 10_000.0 - SETTLE)

    def test_a_later_run_starts_the_overlap_before_the_watermark(self) -> None:
        assert scheduled_window(8_000.0, 10_000.0, SETTLE, OVERLAP) == (8_000.0 - OVERLAP, 10_000.0 - SETTLE)

    def test_a_run_within_the_settle_time_of_the_watermark_has_nothing_to_cover(self) -> None:
        assert scheduled_window(9_500.0, 9_600.0, SETTLE, 0.0) is None


class TestScheduledRuns:
    def test_the_first_run_recovers_what_its_window_holds_and_nothing_from_before_the_relay(
        self, stripe_api: StripeApi, sandbox: TrafficStarsSandbox, aws: Aws
    ) -> None:
        now = time.time()
        recent = purchases(3, start=now - SETTLE - 30 * 60)  # within the first window
        older = [dict(event, id=f"old_{event['id']}") for event in purchases(2, start=now - 6 * HOUR)]
        for event in older:  # other purchases of their own
            event["data"]["object"]["payment_intent"] = "pi_old_" + str(event["id"])
        stripe_api.state.events.extend(recent + older)
        first = run(now=now)
        assert first.result == "reconciled" and first.tally is not None
        assert (first.tally.listed, first.tally.sent) == (3, 3)
        assert float(str(state(aws)["watermark"])) == pytest.approx(now - SETTLE)

    def test_a_second_run_starts_from_the_watermark_and_sends_nothing_again(
        self, stripe_api: StripeApi, sandbox: TrafficStarsSandbox, aws: Aws
    ) -> None:
        now = time.time()
        stripe_api.state.events.extend(purchases(4, start=now - SETTLE - 20 * 60))
        assert run(now=now).tally.sent == 4  # type: ignore[union-attr]
        later = run(now=now + 60)
        assert later.result == "reconciled" and later.tally is not None
        assert (later.tally.listed, later.tally.already_recorded, later.tally.sent) == (4, 4, 0)
        assert later.window is not None and later.window.since == pytest.approx(now - SETTLE - OVERLAP)
        assert len(accepted_lead_codes(sandbox)) == 4

    def test_a_webhook_delivered_before_the_run_is_left_alone(
        self, invoke: Invoker, stripe_api: StripeApi, sandbox: TrafficStarsSandbox, aws: Aws
    ) -> None:
        events = purchases(2, start=time.time() - SETTLE - 10 * 60)
        stripe_api.state.events.extend(events)
        deliver(invoke, events[0])
        tally = run().tally
        assert tally is not None and (tally.already_recorded, tally.sent) == (1, 1)
        assert len(set(accepted_lead_codes(sandbox))) == len(accepted_lead_codes(sandbox)) == 2


class TestAnInterruptedRunIsResumed:
    def test_a_run_out_of_time_stops_after_a_page_and_the_next_resumes_at_its_cursor_without_gaps_or_repeats(
        self, stripe_api: StripeApi, sandbox: TrafficStarsSandbox, aws: Aws
    ) -> None:
        now = time.time()
        stripe_api.state.events.extend(purchases(250, start=now - SETTLE - 40 * 60))  # three pages
        pages_left = iter([900.0, 900.0, STOP_SECONDS - 1])  # time for one page, then not for another

        first = run(now=now, time_left=lambda: next(pages_left, 0.0))
        assert first.result == "resumable" and first.tally is not None
        assert (first.tally.listed, first.tally.sent, first.tally.pages) == (100, 100, 1)
        saved = state(aws)
        assert saved["cursor"] and "watermark" not in saved and "lease_owner" not in saved

        second = run(owner="run-2", now=now + 3600)
        assert second.result == "reconciled" and second.tally is not None
        assert (second.tally.listed, second.tally.already_recorded, second.tally.sent) == (150, 0, 150)
        assert second.window == pytest.approx(first.window)  # the same window, not one from the later clock
        lead_codes = accepted_lead_codes(sandbox)
        assert len(lead_codes) == len(set(lead_codes)) == 250
        assert "cursor" not in state(aws) and float(str(state(aws)["watermark"])) == pytest.approx(now - SETTLE)

    def test_a_listing_error_keeps_the_window_and_the_next_run_finishes_it(
        self, stripe_api: StripeApi, sandbox: TrafficStarsSandbox, aws: Aws
    ) -> None:
        now = time.time()
        stripe_api.state.events.extend(purchases(3, start=now - SETTLE - 5 * 60))
        stripe_api.state.expired = True
        failed = run(now=now)
        assert failed.result == "failed" and failed.tally is not None and failed.tally.credentials_refused
        assert "watermark" not in state(aws) and state(aws)["window_until"]
        stripe_api.state.expired = False
        again = run(owner="run-2", now=now + 7200)
        assert again.result == "reconciled" and again.window == pytest.approx(failed.window)
        assert again.tally is not None
        assert again.tally.sent == 3


class TestNeverTwoRunsAtOnce:
    def test_a_run_finds_the_platform_busy_while_another_holds_the_lease_and_takes_over_once_it_expired(
        self, stripe_api: StripeApi, sandbox: TrafficStarsSandbox, aws: Aws
    ) -> None:
        now = time.time()
        stripe_api.state.events.extend(purchases(2, start=now - SETTLE - 5 * 60))
        states = get_runtime().reconcile_states
        key = state_key("default", "stripe")
        assert states.lease(key, "a-run-that-crashed", now, 300.0) is not None  # and never gave it back
        assert run(owner="run-2", now=now).result == "busy"
        assert sandbox.state.received == []
        taken = run(owner="run-3", now=now + 301)
        assert taken.result == "reconciled" and taken.tally is not None and taken.tally.sent == 2

    def test_a_run_that_lost_its_lease_cannot_move_the_watermark(self, aws: Aws, relay_env: pytest.MonkeyPatch) -> None:
        states = ReconcileStates(aws.dynamodb, aws.table_name)
        key = state_key("default", "stripe")
        assert states.lease(key, "slow", 1_000.0, 10.0) is not None
        assert states.lease(key, "next", 1_011.0, 10.0) is not None
        with pytest.raises(Exception, match="lease"):
            states.advance(key, "slow", 5_000.0, {})
        assert "watermark" not in (states.get(key) or {})


class TestTenants:
    def test_each_tenant_with_a_read_only_key_is_reconciled_with_its_own_key_and_place(
        self, stripe_api: StripeApi, sandbox: TrafficStarsSandbox, aws: Aws, relay_env: pytest.MonkeyPatch
    ) -> None:
        relay_env.setenv("TENANT_SECRET_PREFIX", TENANT_SECRET_PREFIX)
        reset_runtime()
        secrets = {"trafficstars_key": TEST_KEY, "stripe_webhook_secret": "whsec_acme", "stripe_api_key": API_KEY}
        add_tenant(aws, "acme", ("stripe",), {}, secrets)
        add_tenant(aws, "nokey", ("stripe",), {}, {"trafficstars_key": TEST_KEY, "stripe_webhook_secret": "x"})
        stripe_api.state.events.extend(purchases(2, start=time.time() - SETTLE - 5 * 60))
        runtime = get_runtime()
        runs = reconcile_all(runtime.tenants, runtime.reconcile_states, "run-1", time.time(), PLENTY)
        assert sorted((r.tenant, r.result) for r in runs) == [("acme", "reconciled"), ("default", "reconciled")]
        acme = aws.raw_items()
        assert any(str(item["pk"]["S"]).startswith("acme/stripe#") for item in acme)
        assert state(aws, "acme")["watermark"]


class TestTheFunction:
    def test_the_handler_publishes_what_it_recovered_and_a_refused_key(
        self, stripe_api: StripeApi, sandbox: TrafficStarsSandbox, aws: Aws
    ) -> None:
        stripe_api.state.events.extend(purchases(2, start=time.time() - SETTLE - 5 * 60))
        printed = io.StringIO()
        with redirect_stdout(printed):
            result = reconcile_handler_module.reconcile_handler({}, LocalContext(timeout_s=900))
        [shown] = result["runs"]
        assert (shown["source"], shown["result"], shown["sent"]) == ("stripe", "reconciled", 2)
        points = {(p.name, tuple(sorted(p.dimensions))): p.values for p in datapoints(printed.getvalue())}
        assert points[("ReconcileRecovered", ("service", "source"))] == [2.0]
        assert points[("ReconcileRecovered", ("service",))] == [2.0]
        assert points[("ReconcileCredentialsRefused", ("service",))] == [0.0]

        stripe_api.state.expired = True
        printed = io.StringIO()
        with redirect_stdout(printed):
            reconcile_handler_module.reconcile_handler({}, LocalContext(timeout_s=900))
        points = {(p.name, tuple(sorted(p.dimensions))): p.values for p in datapoints(printed.getvalue())}
        assert points[("ReconcileCredentialsRefused", ("service",))] == [1.0]
        assert points[("ReconcileErrors", ("service", "source"))] == [1.0]
        assert TEST_KEY not in printed.getvalue() and API_KEY not in printed.getvalue()


class TestTheLocalRun:
    def test_make_runs_pipeline_reconciles_on_its_own_schedule(
        self, stripe_api: StripeApi, sandbox: TrafficStarsSandbox, aws: Aws
    ) -> None:
        from postback_relay_dev.worker import LocalPipeline

        stripe_api.state.events.extend(purchases(2, start=time.time() - SETTLE - 5 * 60))
        pipeline = LocalPipeline(aws.sqs, aws.retry_url, sweep_interval=3600, reconcile_interval=0.2).start()
        try:
            deadline = time.time() + 20
            while len(accepted_lead_codes(sandbox)) < 2 and time.time() < deadline:
                time.sleep(0.1)
        finally:
            pipeline.stop()
        assert len(accepted_lead_codes(sandbox)) == 2
        assert aws.record("stripe#pi_00001")["origin"] == "reconcile"  # type: ignore[index]
