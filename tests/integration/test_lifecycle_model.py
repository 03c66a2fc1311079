"""The model-based test of a conversion's lifecycle: hypothesis generates interleavings of deliveries,
duplicates, reversals, upstream faults, lost and early queue messages, crashed workers, sweeps, replays,
outages and clock jumps, and after every step checks the invariants of the design (DESIGN.md):

1. a 2xx only after the record is durable;
2. at most one GET per identity whose ok answer reached the relay, and every GET of it with one lead_code;
3. every accepted conversion ends sent, rejected or failed, and a failed one has its dead-letter message;
4. no GET after a reversal of the purchase is recorded;
5. a duplicate delivery changes no status, lease or due field;
6. the due index holds only conversions that are waiting or in flight (and every item is sound by the
   field-per-state declarations of record.py).

Real parts: the Lambda handlers in-process, the store on moto server, the HTTPS TrafficStars sandbox on
loopback with faults injected at each GET. The clock is the test's, so backoffs, leases, windows and
signature timestamps move when the test says; so SQS is modelled too (delays, visibility, receive counts
and the redrive to the dead-letter queue, on that clock): RetryQueue itself is the real one, and so are the
retry worker and the sweep it feeds. `MODEL_EXAMPLES` sets how many scenarios run (the README's longer
command runs many more); the counts are printed with the fault suite's figures."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from postback_relay.aws.store import Claim, ConversionStore
from postback_relay.core.conversion import lead_code
from postback_relay.core.record import FINAL, IN_FLIGHT, REVERSED, Status, violations
from postback_relay.handlers.http import outcome_status
from postback_relay.networks.trafficstars import TrafficStarsClient
from postback_relay.ops.replay import redrive_dead_letters, replay_records
from postback_relay.platforms.stripe import STRIPE
from postback_relay.runtime import Runtime, build_runtime, install_runtime, reset_runtime
from postback_relay.settings import Settings
from postback_relay_dev.apigw import LocalContext
from postback_relay_dev.moto_server import SerializedMotoServer
from postback_relay_dev.resources import create_table, put_secret
from postback_relay_dev.sandbox import Received, TrafficStarsSandbox
from postback_relay_dev.worker import sqs_event
from tests.support.constants import FAULT_FIGURES, TEST_KEY, TEST_SOURCE_SECRETS, TEST_STRIPE_SECRET
from tests.support.helpers import Invoker, checkout_session, invoice, payment_intent, stripe_event, stripe_signature
from tests.support.model import (
    READ_TIMEOUT,
    RETRY_URL,
    Clock,
    ModelSqs,
    aws_client,
    model_env,
    model_settings,
)

__all__ = ["model_env"]  # the fixture (tests/support/model.py)

# Two one-off purchases (their PaymentIntent is the identity) and a subscription's first invoice, whose refunds and
# disputes name only its PaymentIntent (API 2025-03-31 and later): found through the alias invoice_payment.paid
# leaves, in whichever order the two arrive.
PURCHASES = ("pi_model_a", "pi_model_b", "in_model_s")
INVOICE = "in_model_s"
INVOICE_PAYMENT = "pi_of_in_model_s"
UPSTREAM_MODES = ("ok", "unavailable", "throttled", "timeout", "answer_lost", "rejected")
TOTALS: Counter[str] = Counter()


def click_of(purchase: str) -> str:
    return hashlib.sha1(purchase.encode()).hexdigest()  # noqa: S324 - a 40-hex click id per purchase


@dataclass
class Get:
    """One GET as TrafficStars saw it, and what became of its answer."""

    purchase: str
    lead_code: str
    arrived: float  # real time
    accepted: bool
    answer_reached_relay: bool


def test_no_interleaving_loses_doubles_or_sends_a_reversed_conversion(
    model_env: tuple[SerializedMotoServer, TrafficStarsSandbox],
) -> None:
    moto_server, sandbox = model_env

    class Lifecycle(RuleBasedStateMachine):
        """One scenario: a fresh table, three purchases, one upstream, one queue, one clock."""

        def __init__(self) -> None:
            super().__init__()
            moto_server.reset()
            sandbox.state.reset()
            self.clock = Clock()
            self.sqs = ModelSqs(self.clock)
            settings_ = Settings.from_env()
            self.runtime: Runtime = build_runtime(settings_, self.clock, self.sqs)
            install_runtime(self.runtime)
            self.others = [build_runtime(settings_, self.clock, self.sqs).relay for _ in range(2)]
            dynamodb = aws_client("dynamodb", moto_server.endpoint)
            create_table(dynamodb, settings_.table_name)
            put_secret(
                aws_client("secretsmanager", moto_server.endpoint),
                settings_.secret_id,
                {"trafficstars_key": TEST_KEY, "stripe_webhook_secret": TEST_STRIPE_SECRET, **TEST_SOURCE_SECRETS},
            )
            self.store = ConversionStore(dynamodb, settings_.table_name, 90, self.clock)
            self.client = TrafficStarsClient(settings_.trafficstars.url, 1.0, READ_TIMEOUT)
            self.settings = settings_
            self.invoke = Invoker()
            self.mode = "ok"
            self.gets: list[Get] = []
            self.in_progress = 0
            self.refund_during_send: set[str] = set()
            self.linked = False  # invoice_payment.paid delivered: the invoice's PaymentIntent leads to it
            self.payment_reversed = False  # a full refund or a dispute of the invoice's PaymentIntent recorded
            self.reversed_at: dict[str, float] = {}  # purchase → real time its reversal was recorded
            self.accepted: set[str] = set()  # purchases whose delivery was answered 2xx as a conversion
            self.problems: list[str] = []
            self.events: dict[str, list[bytes]] = {p: [] for p in PURCHASES}
            self.lock = threading.Lock()
            sandbox.state.fault = self._upstream
            TOTALS["scenarios"] += 1

        # --- the upstream, as each GET arrives -------------------------------------------------------------
        def _upstream(self, received: Received) -> tuple[int, str] | None:
            arrived = time.time()
            with self.lock:
                self.in_progress += 1
            try:
                purchase = next((p for p in PURCHASES if click_of(p) == received.click_id), "?")
                mode = self.mode
                if purchase in self.refund_during_send:
                    self.refund_during_send.discard(purchase)
                    self._reverse(purchase, "charge.refunded", via=self.others[0])
                spec_ok = received.http_status == 200
                accepted = spec_ok and mode in ("ok", "answer_lost")
                get = Get(purchase, received.params.get("lead_code", ""), arrived, accepted, mode == "ok")
                with self.lock:
                    self.gets.append(get)
                if mode in ("timeout", "answer_lost"):
                    time.sleep(READ_TIMEOUT + 0.1)
                return {
                    "ok": None,
                    "answer_lost": None,
                    "unavailable": (503, ""),
                    "timeout": (503, ""),
                    "throttled": (429, ""),
                    "rejected": (400, json.dumps({"error": {"msg": "invalid code"}})),
                }[mode]
            finally:
                with self.lock:
                    self.in_progress -= 1

        def _settle(self) -> None:
            """Wait for a GET whose answer the relay gave up on to finish at the sandbox (bounded)."""
            deadline = time.monotonic() + 2
            while self.in_progress and time.monotonic() < deadline:
                time.sleep(0.01)

        # --- deliveries ------------------------------------------------------------------------------------
        def _deliver(self, body: bytes, relay_index: int | None = None) -> tuple[int, dict[str, Any]]:
            signature = stripe_signature(body, TEST_STRIPE_SECRET, int(self.clock.now))
            if relay_index is None:
                reply = self.invoke(body, {"Stripe-Signature": signature})
                return reply.status, reply.body
            outcome = self.others[relay_index].handle(STRIPE, body, {"stripe-signature": signature})
            return outcome_status(outcome), outcome.body

        def _after_conversion(self, purchase: str, status: int, answer: dict[str, Any], before: Any) -> None:
            record = self.store.get(f"stripe#{purchase}")
            if 200 <= status < 300:
                if record is None:
                    self.problems.append(f"{purchase}: answered {status} {answer} with no record")
                if answer.get("status") not in ("no_click_id", "duplicate"):
                    self.accepted.add(purchase)
            if answer.get("status") == "duplicate" and before is not None and record is not None:
                for name in ("status", "lease_token", "lease_until", "due_at", "due_shard", "attempts"):
                    if before.get(name) != record.get(name):
                        self.problems.append(f"{purchase}: a duplicate changed {name}")
            TOTALS["deliveries"] += 1

        @rule(purchase=st.sampled_from(PURCHASES), redelivery=st.booleans())
        def checkout_completed(self, purchase: str, redelivery: bool) -> None:
            """The purchase with its click id (client_reference_id); a redelivery resends an earlier event."""
            pool = self.events[purchase]
            if redelivery and pool:
                body = pool[0]
            else:
                body = purchase_event(purchase)
                pool.append(body)
            before = self.store.get(f"stripe#{purchase}")
            status, answer = self._deliver(body)
            self._after_conversion(purchase, status, answer, before)

        @rule(purchase=st.sampled_from(PURCHASES))
        def payment_intent_succeeded(self, purchase: str) -> None:
            """The same purchase without the click id (Stripe may send it first); a subscription invoice's
            PaymentIntent names no invoice any more, so it is a record of its own, with no click id."""
            pi = INVOICE_PAYMENT if purchase == INVOICE else purchase
            before = self.store.get(f"stripe#{purchase}")
            status, answer = self._deliver(stripe_event("payment_intent.succeeded", payment_intent(pi=pi)))
            if purchase != INVOICE:
                self._after_conversion(purchase, status, answer, before)

        @rule()
        def invoice_payment_paid(self) -> None:
            """The link between the invoice and its PaymentIntent, before or after the invoice and its refund."""
            obj = {
                "id": "inpay_model",
                "object": "invoice_payment",
                "invoice": INVOICE,
                "payment": {"type": "payment_intent", "payment_intent": INVOICE_PAYMENT},
                "status": "paid",
            }
            status, answer = self._deliver(stripe_event("invoice_payment.paid", obj))
            if status >= 500:
                self.problems.append(f"a link was answered {status} {answer}")
            self.linked = True
            invoice_record = self.store.get(f"stripe#{INVOICE}")
            if self.payment_reversed and (
                invoice_record is None or Status(str(invoice_record["status"])) not in REVERSED
            ):
                # the refund came first, naming only the PaymentIntent: the link must hand it on to the invoice
                self.problems.append(f"a link after its payment's reversal left the invoice {invoice_record}")
            TOTALS["links"] += 1

        @rule(purchase=st.sampled_from(PURCHASES))
        def concurrent_duplicates(self, purchase: str) -> None:
            """One delivery reaching two containers at once."""
            body = purchase_event(purchase)
            results: list[tuple[int, dict[str, Any]]] = []
            barrier = threading.Barrier(2)

            def one(index: int) -> None:
                barrier.wait()
                results.append(self._deliver(body, index))

            threads = [threading.Thread(target=one, args=(i,)) for i in range(2)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(10)
            for status, answer in results:
                self._after_conversion(purchase, status, answer, None)

        def _reverse(self, purchase: str, event_type: str, via: Any = None, full: bool = True) -> None:
            pi = INVOICE_PAYMENT if purchase == INVOICE else purchase
            obj = {**payment_intent_charge(pi, full)}
            if event_type == "charge.dispute.created":
                obj = {"id": f"dp_{pi}", "object": "dispute", "amount": 4900, "currency": "usd", "payment_intent": pi}
            body = stripe_event(event_type, obj)
            signature = stripe_signature(body, TEST_STRIPE_SECRET, int(self.clock.now))
            if via is None:
                reply = self.invoke(body, {"Stripe-Signature": signature})
                status, answer = reply.status, reply.body
            else:
                outcome = via.handle(STRIPE, body, {"stripe-signature": signature})
                status, answer = outcome_status(outcome), outcome.body
            if status == 200 and answer.get("status") in [str(s) for s in REVERSED]:
                for marked in answer.get("conversion_ids") or [answer["conversion_id"]]:
                    self.reversed_at.setdefault(marked.partition("#")[2], time.time())
            final = status == 200 and (full or "dispute" in event_type)
            if purchase == INVOICE and final and answer.get("status") in [str(s) for s in REVERSED]:
                self.payment_reversed = True
            if purchase == INVOICE and self.linked and final:
                # it named only the PaymentIntent: the alias must have led it to the invoice, recorded or not
                invoice_record = self.store.get(f"stripe#{INVOICE}")
                if invoice_record is None or Status(str(invoice_record["status"])) not in REVERSED:
                    self.problems.append(f"a {event_type} of the invoice's payment left the invoice {invoice_record}")
            TOTALS["reversals"] += 1

        @rule(purchase=st.sampled_from(PURCHASES), kind=st.sampled_from(["refund", "partial", "dispute"]))
        def reversal(self, purchase: str, kind: str) -> None:
            if kind == "dispute":
                self._reverse(purchase, "charge.dispute.created")
            else:
                self._reverse(purchase, "charge.refunded", full=kind == "refund")

        @rule(purchase=st.sampled_from(PURCHASES))
        def refund_lands_during_the_next_send(self, purchase: str) -> None:
            self.refund_during_send.add(purchase)

        # --- the upstream and the dependencies -------------------------------------------------------------
        @initialize(mode=st.sampled_from(UPSTREAM_MODES))
        def upstream_at_the_start(self, mode: str) -> None:
            """Most scenarios start with TrafficStars not answering ok, so the retry path is walked too."""
            self.mode = mode

        @rule(mode=st.sampled_from(UPSTREAM_MODES))
        def upstream(self, mode: str) -> None:
            self.mode = mode

        @rule()
        def dynamodb_outage_for_one_delivery(self) -> None:
            purchase = PURCHASES[0]
            moto_server.fault = lambda environ: environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB")
            try:
                status, answer = self._deliver(
                    stripe_event(
                        "checkout.session.completed",
                        checkout_session(payment_intent=purchase, click_id=click_of(purchase)),
                    )
                )
            finally:
                moto_server.fault = None
            if status < 500:
                self.problems.append(f"a DynamoDB outage was answered {status} {answer}")
            self._after_conversion(purchase, status, answer, None)

        @rule()
        def dynamodb_loses_its_next_answer(self) -> None:
            """The next UpdateItem is applied and answered 500: botocore retries it into its own condition."""
            spent: list[bool] = []

            def once(environ: dict[str, Any]) -> bool:
                if spent or "UpdateItem" not in environ.get("HTTP_X_AMZ_TARGET", ""):
                    return False
                spent.append(True)
                return True

            moto_server.lose_answer = once

        @rule(down=st.booleans())
        def sqs_outage(self, down: bool) -> None:
            self.sqs.down = down

        @rule(seconds=st.sampled_from([-2.0, 0.5, 5.0, 31.0, 61.0, 120.0, 900.0, 3600.0, 86_400.0]))
        def clock_jumps(self, seconds: float) -> None:
            self.clock.now += seconds

        # --- the pipeline ----------------------------------------------------------------------------------
        @rule()
        def retry_worker_takes_what_is_visible(self) -> None:
            self._work(self.sqs.receive_message(RETRY_URL)["Messages"])

        # No preconditions on the queue: what is queued depends on timeouts measured in real time, and which
        # rules are enabled must not, for hypothesis to replay and shrink; with nothing queued these do nothing.
        @rule()
        def time_passes_until_the_next_message_is_visible(self) -> None:
            """The common case: nothing happens until SQS hands the worker its next message."""
            if not self.sqs.queues[RETRY_URL]:
                return
            self.clock.now = max(self.clock.now, min(m.visible_at for m in self.sqs.queues[RETRY_URL]))
            self.retry_worker_takes_what_is_visible()

        # Which message is drawn as a number, not from the queue itself: what is queued depends on timeouts
        # measured in real time, and a draw must not depend on it for hypothesis to replay and shrink.
        @rule(which=st.integers(0, 9))
        def a_message_arrives_early(self, which: int) -> None:
            queue = self.sqs.queues[RETRY_URL]
            if not queue:
                return
            queue[which % len(queue)].visible_at = self.clock.now
            self.retry_worker_takes_what_is_visible()

        @rule(which=st.integers(0, 9))
        def a_message_is_lost(self, which: int) -> None:
            queue = self.sqs.queues[RETRY_URL]
            if not queue:
                return
            queue.remove(queue[which % len(queue)])

        def _work(self, messages: list[dict[str, Any]]) -> None:
            if not messages:
                return
            from postback_relay.handlers.retry import retry_handler

            try:
                result = retry_handler(sqs_event(messages, "arn:aws:sqs:us-east-1:123456789012:retry"), LocalContext())
                failed = {item["itemIdentifier"] for item in result.get("batchItemFailures", [])}
            except BatchProcessingError:  # every message failed (SQS down for a put-back): the invocation errs,
                failed = {message["MessageId"] for message in messages}  # and SQS hands them out again later
            for message in messages:
                if message["MessageId"] not in failed:
                    self.sqs.delete_message(RETRY_URL, message["ReceiptHandle"])
            self.sqs.redrive()
            TOTALS["worker batches"] += 1

        @rule(purchase=st.sampled_from(PURCHASES))
        def a_worker_dies_after_its_claim(self, purchase: str) -> None:
            self.store.claim(f"stripe#{purchase}", self.settings.send_lease_seconds)

        @rule(purchase=st.sampled_from(PURCHASES))
        def a_worker_dies_after_its_get(self, purchase: str) -> None:
            """Claimed and sent, then gone before recording: TrafficStars may have it, the relay does not know."""
            claim = self.store.claim(f"stripe#{purchase}", self.settings.send_lease_seconds)
            if not isinstance(claim, Claim):
                return
            record = claim.record
            postback = self.client.postback(str(record.click_id), str(record.lead_code), None, "purchase")
            before = len(self.gets)
            self.client.send(postback, TEST_KEY)
            self._settle()
            for get in self.gets[before:]:
                get.answer_reached_relay = False

        @rule()
        def sweep(self) -> None:
            from postback_relay.handlers.retry import sweep_handler

            sweep_handler({}, LocalContext(function_name="SweepFunction", timeout_s=60))

        @rule()
        def replay_the_dead_letter_queue(self) -> None:
            queue = self.runtime.relay._queue
            assert queue is not None
            redrive_dead_letters(self.sqs, self.store, queue)

        @rule()
        def replay_failed_and_rejected_records(self) -> None:
            queue = self.runtime.relay._queue
            assert queue is not None
            replay_records(self.store, queue, ("failed", "rejected"))

        # --- the invariants, after every step --------------------------------------------------------------
        @invariant()
        def every_record_is_sound_and_the_due_index_holds_no_final_record(self) -> None:
            self._settle()
            TOTALS["steps"] += 1
            items = list(self.store.select())
            for item in items:
                assert violations(item) == [], violations(item)
                if Status(str(item["status"])) in REVERSED:  # e.g. inherited by the invoice through its alias
                    self.reversed_at.setdefault(str(item["pk"]).partition("#")[2], time.time())
            statuses = {str(item["pk"]): str(item["status"]) for item in items}
            for due in self.store.due(1e12):
                assert statuses.get(due.pk) in {str(s) for s in IN_FLIGHT}, (due.pk, statuses.get(due.pk))

        @invariant()
        def at_most_one_known_accepted_get_per_purchase_and_one_lead_code(self) -> None:
            for purchase in PURCHASES:
                gets = [g for g in self.gets if g.purchase == purchase]
                known = [g for g in gets if g.accepted and g.answer_reached_relay]
                assert len(known) <= 1, f"{purchase}: {len(known)} accepted GETs"
                assert {g.lead_code for g in gets} <= {lead_code(f"stripe#{purchase}")}

        @invariant()
        def no_get_after_a_recorded_reversal(self) -> None:
            for get in self.gets:
                reversed_at = self.reversed_at.get(get.purchase)
                assert reversed_at is None or get.arrived < reversed_at, f"{get.purchase}: a GET after its reversal"

        @invariant()
        def no_answer_before_durability_and_no_early_message(self) -> None:
            assert self.problems == []
            assert self.sqs.early == []

        def teardown(self) -> None:
            """Let the pipeline run to its end (the upstream as the scenario left it, SQS back), then every
            accepted conversion must have ended sent, rejected or failed, a failed one in the DLQ."""
            try:
                self.sqs.down = False
                self.refund_during_send.clear()
                for _ in range(8):
                    self.clock.now += 3600
                    self.sweep()
                    for _ in range(20):
                        messages = self.sqs.receive_message(RETRY_URL)["Messages"]
                        if not messages:
                            break
                        self._work(messages)
                    if not any(str(item["status"]) in {str(s) for s in IN_FLIGHT} for item in self.store.select()):
                        break
                self._settle()
                parked = self.sqs.parked()
                for item in self.store.select():
                    pk, status = str(item["pk"]), Status(str(item["status"]))
                    purchase = pk.partition("#")[2]
                    if purchase in self.accepted:
                        assert status in FINAL, f"{pk} stranded as {status}"
                    if status is Status.FAILED:
                        assert pk in parked, f"{pk} failed without a dead-letter message"
                    TOTALS[f"ended {status}"] += 1
                self.every_record_is_sound_and_the_due_index_holds_no_final_record()
                self.at_most_one_known_accepted_get_per_purchase_and_one_lead_code()
                self.no_get_after_a_recorded_reversal()
            finally:
                sandbox.state.fault = None
                moto_server.lose_answer = None
                reset_runtime()

    run_state_machine_as_test(Lifecycle, settings=model_settings())
    FAULT_FIGURES.append(
        f"model-based lifecycle test: {TOTALS['scenarios']} scenarios, {TOTALS['steps']} steps checked "
        f"({TOTALS['deliveries']} deliveries, {TOTALS['reversals']} reversals, {TOTALS['links']} links, "
        f"{TOTALS['worker batches']} worker "
        "batches); ended: "
        + ", ".join(f"{name[6:]} {count}" for name, count in sorted(TOTALS.items()) if name.startswith("ended "))
    )


def purchase_event(purchase: str) -> bytes:
    """The event that carries the purchase's click id: a Checkout Session, or the subscription's first invoice
    (API 2025-03-31 shape: it names neither its PaymentIntent nor its charge)."""
    if purchase == INVOICE:
        obj = invoice(invoice_id=purchase, click_id=click_of(purchase), billing_reason="subscription_create")
        return stripe_event("invoice.paid", obj)
    session = checkout_session(payment_intent=purchase, click_id=click_of(purchase), session_id=f"cs_{purchase}")
    return stripe_event("checkout.session.completed", session)


def payment_intent_charge(purchase: str, full: bool) -> dict[str, Any]:
    return {
        "id": f"ch_{purchase}",
        "object": "charge",
        "amount": 4900,
        "amount_refunded": 4900 if full else 1000,
        "currency": "usd",
        "payment_intent": purchase,
        "refunded": full,
    }
