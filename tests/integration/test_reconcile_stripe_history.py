"""Stripe reconciliation beyond the Events API's 30 days (README "Reconciliation"): the part of a window before
them is read from the objects themselves (refunded Charges, Checkout Sessions, Invoices, PaymentIntents, the local
Stripe API serving them as Stripe lists them), each wrapped as its webhook's event, so a purchase is recovered
under the identity and lead code its webhook would have had, and one refunded since is never sent."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from postback_relay.core.conversion import lead_code
from postback_relay.core.reconcile import Tally, settled_window
from postback_relay.reconcile.stripe import OBJECTS_API_VERSION
from postback_relay.relay.reconciling import reconciler_for
from postback_relay.runtime import get_runtime, reset_runtime
from postback_relay_dev.sandbox import TrafficStarsSandbox
from tests.integration.test_reconcile import (
    accepted_lead_codes,
    click,
    deliver,
    purchase_event,
    purchases,
    stripe_api,
    stripe_server,
)
from tests.support.aws import Aws
from tests.support.helpers import Invoker, checkout_session, invoice, payment_intent
from tests.support.stripe_api import CHARGES, INVOICES, PAYMENT_INTENTS, SESSIONS, StripeApi

DAY = 86_400.0
__all__ = ["stripe_api", "stripe_server"]  # the fixtures (tests/integration/test_reconcile.py)


def old(days: float = 40) -> float:
    """A creation time this many days ago: before the Events API's 30 days."""
    return time.time() - days * DAY


def session(number: int, created: float, **fields: Any) -> dict[str, Any]:
    """Purchase ``number``'s Checkout Session as Stripe lists it: the object purchase_event's webhook carries."""
    listed = checkout_session(payment_intent=f"pi_{number:05d}", click_id=click(number), session_id=f"cs_{number:05d}")
    return {**listed, "created": int(created), **fields}


def intent(number: int, created: float, **fields: Any) -> dict[str, Any]:
    """Its PaymentIntent, as the PaymentIntents list holds it too."""
    return {**payment_intent(pi=f"pi_{number:05d}"), "created": int(created), "livemode": True, **fields}


def charge(number: int, created: float, refunded: int = 0, invoice_id: str | None = None) -> dict[str, Any]:
    """Its charge, ``refunded`` of its 4900 cents refunded since; at the pinned version it names its invoice."""
    return {
        "id": f"ch_{number:05d}",
        "object": "charge",
        "amount": 4900,
        "amount_refunded": refunded,
        "currency": "usd",
        "created": int(created),
        "invoice": invoice_id,
        "livemode": True,
        "payment_intent": f"pi_{number:05d}",
        "refunded": refunded == 4900,
    }


def paid_invoice(number: int, created: float) -> dict[str, Any]:
    """A subscription's first invoice at the pinned (pre-basil) version: it names its PaymentIntent and charge."""
    listed = invoice(
        invoice_id=f"in_{number:05d}", click_id=click(number), basil=False, billing_reason="subscription_create"
    )
    return {
        **listed,
        "created": int(created),
        "livemode": True,
        "payment_intent": f"pi_{number:05d}",
        "charge": f"ch_{number:05d}",
        "status_transitions": {"paid_at": int(created) + 60},
    }


def reconcile(
    days: float = 45,
    cursor: str | None = None,
    stop: Callable[[], bool] | None = None,
    checkpoint: Callable[[Tally], None] | None = None,
) -> Tally:
    now = time.time()
    relay = get_runtime().relay
    window = settled_window(now - days * DAY, None, now, relay.settings.reconcile_settle_seconds)
    return reconciler_for(relay, "stripe", now).run(window, cursor=cursor, stop=stop, checkpoint=checkpoint)


def requests_to(api: StripeApi, path: str) -> list[dict[str, list[str]]]:
    return [params for params, at in zip(api.state.requests, api.state.paths, strict=True) if at == path]


class TestPurchasesOlderThanTheEvents:
    def test_are_recovered_from_their_sessions_and_sent_once_with_the_lead_code_of_their_webhook(
        self, invoke: Invoker, stripe_api: StripeApi, sandbox: TrafficStarsSandbox, aws: Aws
    ) -> None:
        recent = purchases(3, start=old(20))  # their events are still listed
        stripe_api.state.events.extend(recent)
        lost = [session(n, old(40) + n) for n in range(3, 7)]  # their events are gone
        stripe_api.state.objects[SESSIONS].extend(lost)
        stripe_api.state.objects[PAYMENT_INTENTS].extend(intent(n, old(40) + n + 5) for n in range(3, 7))
        tally = reconcile()
        assert (tally.listed, dict(tally.recovered), tally.errors, tally.cursor) == (11, {"sent": 7}, [], None)
        assert tally.already_recorded == 4  # each session's PaymentIntent: the same purchase, not a second one
        assert sorted(accepted_lead_codes(sandbox)) == sorted(lead_code(f"stripe#pi_{n:05d}") for n in range(7))
        record = aws.record("stripe#pi_00005")
        assert record is not None and (record["status"], record["origin"]) == ("sent", "reconcile")
        assert record["click_id"] == click(5) and record["first_event_id"] == "reconcile:cs_00005"
        late = deliver(invoke, purchase_event(5, old(40) + 5))  # Stripe's retry, or a resend from the dashboard
        assert (late.status, late.body["status"]) == (200, "duplicate") and len(sandbox.state.received) == 7

    def test_a_second_run_sends_nothing(self, stripe_api: StripeApi, sandbox: TrafficStarsSandbox) -> None:
        stripe_api.state.objects[SESSIONS].extend(session(n, old() + n) for n in range(3))
        assert reconcile().sent == 3
        again = reconcile()
        assert (again.already_recorded, sum(again.recovered.values()), len(sandbox.state.received)) == (3, 0, 3)

    def test_the_window_is_said_and_the_objects_are_read_before_the_events_edge_at_the_pinned_version(
        self, stripe_api: StripeApi
    ) -> None:
        tally = reconcile()
        assert tally.notes == [
            "Stripe keeps events for 30 days: the events before that were not available",
            "the part of the window before that was read from its Charges (refunds), Checkout Sessions, "
            "Invoices and PaymentIntents; a dispute opened there is not seen",
        ]
        assert stripe_api.state.paths == ["/v1/events", CHARGES, SESSIONS, INVOICES, PAYMENT_INTENTS]
        [events] = requests_to(stripe_api, "/v1/events")
        assert int(events["created[gte]"][0]) >= time.time() - 30 * DAY - 60
        [sessions] = requests_to(stripe_api, SESSIONS)
        assert sessions["status"] == ["complete"]
        assert int(sessions["created[gte]"][0]) <= time.time() - 46 * DAY + 60  # a session is paid within a day
        assert int(sessions["created[lte]"][0]) >= time.time() - 30 * DAY
        assert requests_to(stripe_api, INVOICES)[0]["status"] == ["paid"]
        assert set(stripe_api.state.versions) == {OBJECTS_API_VERSION}

    def test_a_window_within_the_events_reads_no_objects(self, stripe_api: StripeApi) -> None:
        stripe_api.state.objects[SESSIONS].append(session(1, old(40)))
        tally = reconcile(days=7)
        assert (tally.notes, stripe_api.state.paths) == ([], ["/v1/events"])

    def test_a_paid_invoice_is_recovered_under_the_invoice_and_its_payment_intent_is_no_second_purchase(
        self, stripe_api: StripeApi, sandbox: TrafficStarsSandbox, aws: Aws
    ) -> None:
        stripe_api.state.objects[INVOICES].append(paid_invoice(1, old()))
        stripe_api.state.objects[PAYMENT_INTENTS].append(intent(1, old() + 5, invoice="in_00001"))
        tally = reconcile()
        assert (dict(tally.recovered), dict(tally.ignored)) == ({"sent": 1}, {"a link, not a payment": 1})
        record = aws.record("stripe#in_00001")
        assert record is not None and (record["status"], record["click_id"]) == ("sent", click(1))
        assert aws.record("stripe#pi_00001") is None
        assert accepted_lead_codes(sandbox) == [lead_code("stripe#in_00001")]

    def test_a_payment_intent_paid_on_its_own_is_recovered_under_its_id(
        self, stripe_api: StripeApi, sandbox: TrafficStarsSandbox, aws: Aws
    ) -> None:
        stripe_api.state.objects[PAYMENT_INTENTS].append(
            {**intent(1, old()), "metadata": {"click_id": click(1)}, "latest_charge": "ch_00001"}
        )
        stripe_api.state.objects[PAYMENT_INTENTS].append({**intent(2, old()), "status": "requires_payment_method"})
        assert reconcile().listed == 1
        record = aws.record("stripe#pi_00001")
        assert record is not None and (record["status"], record["click_id"]) == ("sent", click(1))
        assert accepted_lead_codes(sandbox) == [lead_code("stripe#pi_00001")]

    def test_a_trials_session_is_read_so_the_subscription_keeps_its_click_id(
        self, stripe_api: StripeApi, aws: Aws
    ) -> None:
        trial = session(
            1,
            old(),
            mode="subscription",
            payment_intent=None,
            invoice="in_00001",
            subscription="sub_00001",
            payment_status="no_payment_required",
            amount_total=0,
            amount_subtotal=0,
        )
        stripe_api.state.objects[SESSIONS].append(trial)
        assert reconcile().listed == 1
        record = aws.record("stripe#sub_00001:trial")
        assert record is not None and record["click_id"] == click(1)


class TestWhatIsNotAPurchase:
    def test_unpaid_expired_and_open_sessions_are_never_sent(
        self, stripe_api: StripeApi, sandbox: TrafficStarsSandbox, aws: Aws
    ) -> None:
        stripe_api.state.objects[SESSIONS].extend(
            [
                session(1, old(), status="expired", payment_status="unpaid"),
                session(2, old(), status="complete", payment_status="unpaid"),  # an async payment that failed
                session(3, old(), status="open", payment_status="unpaid"),
            ]
        )
        tally = reconcile()
        assert (tally.listed, tally.errors, sandbox.state.received, aws.items()) == (0, [], [], [])

    def test_a_purchase_refunded_after_its_events_expired_is_recorded_refunded_and_never_sent(
        self, stripe_api: StripeApi, sandbox: TrafficStarsSandbox, aws: Aws
    ) -> None:
        state = stripe_api.state
        state.objects[SESSIONS].extend([session(1, old(44)), session(2, old(44))])
        state.objects[INVOICES].append(paid_invoice(3, old(43)))
        state.objects[CHARGES].extend(
            [
                charge(1, old(44) + 60, refunded=4900),  # refunded 42 days ago: no charge.refunded event is left
                charge(2, old(44) + 60),  # never refunded
                charge(3, old(43) + 60, refunded=4900, invoice_id="in_00003"),  # a subscription's first payment
            ]
        )
        tally = reconcile()
        assert (dict(tally.reversals), dict(tally.recovered)) == ({"refunded": 2}, {"sent": 1})
        for refunded in ("stripe#pi_00001", "stripe#in_00003"):
            record = aws.record(refunded)
            assert record is not None and record["status"] == "refunded", refunded
        assert accepted_lead_codes(sandbox) == [lead_code("stripe#pi_00002")]

    def test_a_partially_refunded_purchase_still_counts(
        self, stripe_api: StripeApi, sandbox: TrafficStarsSandbox
    ) -> None:
        stripe_api.state.objects[SESSIONS].append(session(1, old()))
        stripe_api.state.objects[CHARGES].append(charge(1, old() + 60, refunded=1000))
        tally = reconcile()
        # met before its purchase, a partial refund is not kept (as its webhook would not be): the sale stands
        assert (dict(tally.reversals), tally.sent) == ({"ignored": 1}, 1)
        assert accepted_lead_codes(sandbox) == [lead_code("stripe#pi_00001")]


class TestResumingAndPushback:
    def test_a_run_stopped_in_the_sessions_resumes_at_its_cursor_without_gaps_or_repeats(
        self, stripe_api: StripeApi, sandbox: TrafficStarsSandbox
    ) -> None:
        stripe_api.state.objects[SESSIONS].extend(session(n, old() + n) for n in range(150))
        cursors: list[str | None] = []
        first = reconcile(
            checkpoint=lambda tally: cursors.append(tally.cursor),
            stop=lambda: str(cursors[-1]).startswith("sessions:cs_"),  # within the sessions, not before them
        )
        assert (first.sent, first.cursor) == (100, "sessions:cs_00050")  # newest first: 149 down to 50
        assert cursors == ["charges:", "sessions:", "sessions:cs_00050"]
        rest = reconcile(cursor=first.cursor)
        assert (rest.listed, rest.sent, rest.cursor, rest.errors) == (50, 50, None, [])
        assert requests_to(stripe_api, SESSIONS)[-1]["starting_after"] == ["cs_00050"]
        codes = accepted_lead_codes(sandbox)
        assert len(codes) == len(set(codes)) == 150

    def test_a_cursor_an_earlier_version_saved_resumes_the_events(
        self, stripe_api: StripeApi, sandbox: TrafficStarsSandbox
    ) -> None:
        stripe_api.state.events.extend(purchases(3, start=old(2)))  # newest first: evt_00002, evt_00001, evt_00000
        tally = reconcile(days=7, cursor="evt_00001")  # a bare event id, as runs saved it before the objects
        assert (tally.listed, tally.sent) == (1, 1)
        assert accepted_lead_codes(sandbox) == [lead_code("stripe#pi_00000")]

    def test_rate_limiting_in_the_objects_slows_the_run_without_failing_it(
        self, stripe_api: StripeApi, sandbox: TrafficStarsSandbox
    ) -> None:
        stripe_api.state.objects[SESSIONS].extend(session(n, old() + n) for n in range(3))
        stripe_api.state.throttle, stripe_api.state.throttle_path = 2, SESSIONS
        tally = reconcile()
        assert (tally.sent, tally.errors, tally.cursor) == (3, [], None)
        assert len(requests_to(stripe_api, SESSIONS)) == 3  # two 429s, then the page

    def test_a_spent_budget_stops_at_the_list_it_reached_and_the_next_run_finishes_it(
        self, stripe_api: StripeApi, sandbox: TrafficStarsSandbox, relay_env: pytest.MonkeyPatch
    ) -> None:
        relay_env.setenv("RECONCILE_MAX_REQUESTS", "3")  # the events, the charges, the sessions
        reset_runtime()
        stripe_api.state.objects[SESSIONS].append(session(1, old()))
        stripe_api.state.objects[INVOICES].append(paid_invoice(2, old()))
        first = reconcile()
        assert (first.sent, first.cursor, first.errors) == (
            1,
            "invoices:",
            ["budget_spent: the run's request budget is spent"],
        )
        rest = reconcile(cursor=first.cursor)
        assert (rest.sent, rest.cursor, rest.errors) == (1, None, [])
        assert sorted(accepted_lead_codes(sandbox)) == sorted(
            [lead_code("stripe#pi_00001"), lead_code("stripe#in_00002")]
        )
