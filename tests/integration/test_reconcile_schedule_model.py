"""The model-based test of the scheduled reconciliation: hypothesis interleaves purchases (their webhooks delivered,
or lost), late webhooks, the clock moving, scheduled runs cut short after any page, runs that crash mid-window
(leaving their lease and their place), the read-only key expiring and renewed, and a second run beside one that
holds the lease; after every step:

1. TrafficStars accepted each purchase at most once (no lead code twice), and only purchases that exist;
2. the watermark never moves back, and never past the end of a window some run finished;
3. nothing is stranded: once a run has finished a window, every purchase that existed then, created from the
   first window's start to that window's end, has been sent, its webhook delivered or not (a purchase whose
   timestamp lags behind a finished window is the next window's, by the overlap);
4. a run never reconciles beside another that holds an unexpired lease (it finds the platform busy), and a run
   with all its time, a key the API accepts and no lease held finishes its window.

Pages are two events long here, so windows span several pages and every cut and crash lands between two of
them. Real parts: the relay in-process, moto server, the local Stripe API and the HTTPS TrafficStars sandbox."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from postback_relay.aws.reconcile_state import ReconcileStates, state_key
from postback_relay.core.conversion import lead_code
from postback_relay.reconcile import stripe as stripe_listing
from postback_relay.relay.reconcile_schedule import STOP_SECONDS, ScheduledRun, reconcile_all
from postback_relay.runtime import get_runtime, reset_runtime
from postback_relay_dev.resources import create_queues, create_table, put_secret
from postback_relay_dev.sandbox import TrafficStarsSandbox
from tests.integration.test_reconcile import API_KEY, purchase_event, stripe_server
from tests.support.aws import Aws
from tests.support.constants import FAULT_FIGURES, TEST_KEY, TEST_SOURCE_SECRETS, TEST_STRIPE_SECRET
from tests.support.helpers import Invoker
from tests.support.model import model_settings
from tests.support.stripe_api import StripeApi

__all__ = ["stripe_server"]  # the fixture

SETTLE, OVERLAP = 900.0, 3600.0
# How far behind the clock a purchase's timestamp may be when the API first shows it: under the settle time, as
# on the platforms (a listing never meets, later, a purchase older than what it already passed).
LAG = 850.0
INTERVALS = st.sampled_from([300.0, 900.0, 3600.0])  # how long after the last step a scheduled run fires
KEY = state_key("default", "stripe")


class Crash(BaseException):
    """The Lambda stopped mid-run (killed at its timeout): nothing after it runs, not even the lease's release."""


def test_no_interleaving_of_runs_cuts_and_crashes_loses_or_repeats_a_purchase(
    relay_env: pytest.MonkeyPatch, aws: Aws, sandbox: TrafficStarsSandbox, stripe_server: StripeApi
) -> None:
    relay_env.setenv("STRIPE_API_BASE", stripe_server.base_url)
    relay_env.setattr(stripe_listing, "PAGE_SIZE", 2)
    totals: Counter[str] = Counter()

    class Schedule(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            aws.server.reset()
            create_table(aws.dynamodb, aws.table_name)
            create_queues(aws.sqs, "conversions-test")
            secret = {"trafficstars_key": TEST_KEY, "stripe_webhook_secret": TEST_STRIPE_SECRET}
            put_secret(aws.secretsmanager, aws.secret_id, {**secret, **TEST_SOURCE_SECRETS, "stripe_api_key": API_KEY})
            sandbox.state.reset()
            stripe_server.state.reset()
            reset_runtime()
            self.invoke = Invoker()
            self.states = ReconcileStates(aws.dynamodb, aws.table_name)
            self.now = 0.0
            self.first_start: float | None = None  # where the first window began
            self.purchases: dict[str, tuple[float, dict[str, Any]]] = {}  # lead code → (created, event)
            self.lost: list[str] = []  # lead codes of purchases whose webhook never came (yet)
            self.watermark: float | None = None
            self.must_be_sent: set[str] = set()  # what finished runs covered: every purchase of their windows
            self.lease_until = 0.0  # a crashed run's lease
            self.runs = 0
            self.problems: list[str] = []

        @initialize()
        def start(self) -> None:
            import time

            self.now = time.time()

        @rule(delivered=st.booleans(), age=st.floats(min_value=0, max_value=LAG))
        def purchase(self, delivered: bool, age: float) -> None:
            self._purchase(delivered, age)

        @rule(lost=st.lists(st.booleans(), min_size=3, max_size=8), age=st.floats(min_value=LAG - 100, max_value=LAG))
        def a_burst_of_purchases(self, lost: list[bool], age: float) -> None:
            """Several at once: a window of several pages once they settle."""
            for offset, never_delivered in enumerate(lost):
                self._purchase(not never_delivered, age - offset)

        def _purchase(self, delivered: bool, age: float) -> None:
            number = len(self.purchases)
            event = purchase_event(number, self.now - age)
            code = lead_code(f"stripe#pi_{number:05d}")
            self.purchases[code] = (float(event["created"]), event)
            stripe_server.state.events.append(event)
            if delivered:
                self._deliver(event)
            else:
                self.lost.append(code)
            totals["delivered" if delivered else "lost"] += 1

        @rule()
        def a_lost_webhook_arrives_late(self) -> None:
            if self.lost:
                code = self.lost.pop(0)
                self._deliver(self.purchases[code][1])
                totals["late webhook"] += 1

        @rule(expired=st.booleans())
        def the_read_only_key_expires_or_is_renewed(self, expired: bool) -> None:
            stripe_server.state.expired = expired

        @rule(seconds=st.sampled_from([300.0, 600.0, 1800.0, 3600.0]))
        def time_passes(self, seconds: float) -> None:
            self.now += seconds

        @rule(pages=st.one_of(st.none(), st.integers(min_value=1, max_value=2)), interval=INTERVALS)
        def a_scheduled_run(self, pages: int | None, interval: float) -> None:
            """The schedule fires ``interval`` after the last step: a run with time for ``pages`` pages (None:
            all of them)."""
            self.now += interval
            self._run_for(pages)

        @rule(pages=st.one_of(st.none(), st.integers(min_value=1, max_value=2)))
        def another_run_at_once(self, pages: int | None) -> None:
            """An operator's run (or the schedule's, while a long one goes on) at the same moment."""
            self._run_for(pages)

        def _run_for(self, pages: int | None) -> None:
            budget = iter([900.0, 900.0, *([900.0] * ((pages or 10_000) - 1))])
            run = self._run(lambda: next(budget, STOP_SECONDS - 1), f"run-{self.runs}")
            free = self.now >= self.lease_until and not stripe_server.state.expired
            if pages is None and free and run.result not in ("reconciled", "idle"):
                self.problems.append(f"a run with all its time, a good key and no lease held ended {run.result}")

        @rule(after=st.integers(min_value=0, max_value=3), interval=INTERVALS)
        def a_run_crashes(self, after: int, interval: float) -> None:
            """A run killed after ``after`` saved pages: its lease stays until it would have timed out."""
            self.now += interval
            saves = {"left": after + 1}  # the first save is the window's own, before any page
            real_save = self.states.save

            def save(key: str, owner: str, window: tuple[float, float], cursor: str | None) -> None:
                if saves["left"] == 0:
                    raise Crash
                saves["left"] -= 1
                real_save(key, owner, window, cursor)

            runtime = get_runtime()
            runtime.reconcile_states.save = save  # type: ignore[method-assign]
            try:
                self._run(lambda: 900.0, f"crashed-{self.runs}")
            except Crash:
                self.lease_until = self.now + 900.0 + 60.0
                totals["crashes"] += 1
            finally:
                del runtime.reconcile_states.save

        def _run(self, time_left: Any, owner: str) -> ScheduledRun:
            self.runs += 1
            runtime = get_runtime()
            runs = reconcile_all(runtime.tenants, runtime.reconcile_states, owner, self.now, time_left)
            [run] = [r for r in runs if r.source == "stripe"]
            totals[run.result] += 1
            if run.tally is not None and run.tally.cursor is not None:
                totals["stopped before the window's end"] += 1
            if self.now < self.lease_until and run.result != "busy":
                self.problems.append(f"{owner} ran ({run.result}) beside a lease held until {self.lease_until}")
            if self.first_start is None and run.window is not None:
                self.first_start = run.window.since
            if run.result == "reconciled" and run.window is not None and self.first_start is not None:
                start, end = self.first_start, run.window.until
                self.must_be_sent |= {code for code, (created, _) in self.purchases.items() if start <= created <= end}
            return run

        def _deliver(self, event: dict[str, Any]) -> None:
            self.invoke.stripe(json.dumps(event).encode(), TEST_STRIPE_SECRET)

        @invariant()
        def each_purchase_is_accepted_at_most_once_and_only_purchases_are(self) -> None:
            accepted = Counter(r.params["lead_code"] for r in sandbox.state.received if r.answer.get("ok"))
            twice = [code for code, n in accepted.items() if n > 1]
            unknown = [code for code in accepted if code not in self.purchases]
            assert not twice and not unknown, f"accepted twice: {twice}; not a purchase: {unknown}"

        @invariant()
        def the_watermark_only_moves_forward(self) -> None:
            item = self.states.get(KEY) or {}
            watermark = float(str(item["watermark"])) if "watermark" in item else None
            if watermark is not None:
                assert self.watermark is None or watermark >= self.watermark - 1e-3, (self.watermark, watermark)
                assert watermark <= self.now - SETTLE + 1e-3
            self.watermark = watermark

        @invariant()
        def nothing_a_finished_run_covered_is_stranded(self) -> None:
            accepted = {r.params["lead_code"] for r in sandbox.state.received if r.answer.get("ok")}
            stranded = sorted(self.must_be_sent - accepted)
            assert not stranded, f"purchases of a finished window never sent: {stranded}"

        @invariant()
        def no_run_beside_a_held_lease(self) -> None:
            assert not self.problems, self.problems

    run_state_machine_as_test(Schedule, settings=model_settings())
    FAULT_FIGURES.append(f"reconcile schedule model: {dict(sorted(totals.items()))}")
