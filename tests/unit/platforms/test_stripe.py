"""Stripe: signatures exactly as Stripe signs, which events count, identity, click id and amount."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import stripe

from postback_relay.core.conversion import Conversion, Ignored, ParseContext, Reversal
from postback_relay.networks.trafficstars import CLICK_ID_PATTERN
from postback_relay.platforms.base import MalformedEvent, SignatureError, SignatureMismatch
from postback_relay.platforms.stripe import STRIPE
from tests.support.helpers import (
    CLICK_ID,
    charge_refunded,
    checkout_session,
    invoice,
    payment_intent,
    stripe_event,
    stripe_signature,
)

SECRET = "whsec_unit_test_secret"
CONTEXT = ParseContext(CLICK_ID_PATTERN)


def verify(body: bytes, header: str | None, secrets: list[str] | None = None, now: float | None = None) -> None:
    headers = {"stripe-signature": header} if header is not None else {}
    STRIPE.verify(body, headers, secrets or [SECRET], time.time() if now is None else now, 300)


def parse(event_type: str, obj: dict[str, Any], **kwargs: Any) -> Any:
    return STRIPE.parse(json.loads(stripe_event(event_type, obj, **kwargs)), CONTEXT)


class TestSignature:
    body = stripe_event("checkout.session.completed", checkout_session())

    def test_a_correct_signature_verifies(self) -> None:
        verify(self.body, stripe_signature(self.body, SECRET))

    def test_a_header_from_the_official_stripe_library_verifies(self) -> None:
        header = stripe.WebhookSignature.generate_signature_header(self.body.decode(), SECRET)
        verify(self.body, header)

    def test_our_test_signatures_satisfy_the_official_stripe_library(self) -> None:
        header = stripe_signature(self.body, SECRET)
        event = stripe.Webhook.construct_event(self.body.decode(), header, SECRET)
        assert event["type"] == "checkout.session.completed"

    def test_the_published_stripe_test_vector(self) -> None:
        payload = b'{\n  "id": "evt_test_webhook",\n  "object": "event"\n}'
        header = "t=1700000000,v1=" + stripe.WebhookSignature._compute_signature(
            "1700000000." + payload.decode(), "whsec_test_secret"
        )
        verify(payload, header, ["whsec_test_secret"], now=1700000000)

    @pytest.mark.parametrize("skew", [-299, 299, 0])
    def test_timestamps_within_300_seconds_either_way_are_accepted(self, skew: int) -> None:
        now = time.time()
        verify(self.body, stripe_signature(self.body, SECRET, int(now) + skew), now=now)

    @pytest.mark.parametrize("skew", [-301, 301, -86400])
    def test_timestamps_beyond_300_seconds_either_way_are_refused(self, skew: int) -> None:
        now = time.time()
        with pytest.raises(SignatureError, match="tolerance"):
            verify(self.body, stripe_signature(self.body, SECRET, int(now) + skew), now=now)

    def test_any_matching_v1_is_accepted_during_a_secret_roll(self) -> None:
        verify(self.body, stripe_signature(self.body, SECRET, extra_v1=["0" * 64]))
        verify(self.body, stripe_signature(self.body, "whsec_new"), secrets=["whsec_old", "whsec_new"])

    def test_test_mode_v0_signatures_are_ignored(self) -> None:
        header = stripe_signature(self.body, SECRET) + ",v0=" + "f" * 64
        verify(self.body, header)

    def test_a_wrong_secret_is_a_mismatch(self) -> None:
        with pytest.raises(SignatureMismatch):
            verify(self.body, stripe_signature(self.body, "whsec_other"))

    def test_a_tampered_body_is_a_mismatch(self) -> None:
        header = stripe_signature(self.body, SECRET)
        with pytest.raises(SignatureMismatch):
            verify(self.body.replace(b"4900", b"9900"), header)

    @pytest.mark.parametrize("header", [None, "", "v1=abc", "t=abc,v1=abc", "t=1700000000", "garbage", "t=1,v1=é"])
    def test_missing_or_malformed_headers_are_refused(self, header: str | None) -> None:
        with pytest.raises(SignatureError):
            verify(self.body, header)

    def test_a_current_timestamp_in_non_ascii_digits_is_refused_not_a_crash(self) -> None:
        now = int(time.time())
        arabic_indic = str(now).translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))  # int() reads these
        with pytest.raises(SignatureError, match="no timestamp"):
            verify(self.body, f"t={arabic_indic},v1={'0' * 64}", now=now)

    def test_non_ascii_signature_values_do_not_crash_the_comparison(self) -> None:
        now = int(time.time())
        with pytest.raises(SignatureMismatch):
            verify(self.body, f"t={now},v1=ü{'0' * 63}", now=now)


class TestEvents:
    def test_a_paid_checkout_session_is_a_conversion_of_its_payment_intent(self) -> None:
        event = parse("checkout.session.completed", checkout_session(amount=4900, currency="usd"))
        assert isinstance(event, Conversion)
        assert event.identity == "stripe#pi_test_0001"
        assert event.click_id == CLICK_ID
        assert str(event.amount.amount) == "49.00" and event.amount.currency == "USD"  # type: ignore[union-attr]

    def test_an_unpaid_checkout_session_is_ignored_until_its_async_payment_succeeds(self) -> None:
        assert isinstance(parse("checkout.session.completed", checkout_session(payment_status="unpaid")), Ignored)
        later = parse("checkout.session.async_payment_succeeded", checkout_session())
        assert isinstance(later, Conversion) and later.identity == "stripe#pi_test_0001"

    def test_a_subscription_checkout_is_the_invoice(self) -> None:
        event = parse("checkout.session.completed", checkout_session(payment_intent=None, invoice="in_test_0001"))
        assert event.identity == "stripe#in_test_0001"
        assert parse("invoice.paid", invoice()).identity == "stripe#in_test_0001"

    def test_an_expanded_payment_intent_object_is_read_by_id(self) -> None:
        session = checkout_session()
        session["payment_intent"] = {"id": "pi_expanded", "object": "payment_intent"}
        assert parse("checkout.session.completed", session).identity == "stripe#pi_expanded"

    def test_a_payment_intent_that_pays_an_invoice_is_that_invoice(self) -> None:
        assert parse("payment_intent.succeeded", payment_intent(invoice="in_9")).identity == "stripe#in_9"
        assert parse("payment_intent.succeeded", payment_intent(pi="pi_7")).identity == "stripe#pi_7"

    def test_the_click_id_comes_from_metadata_before_client_reference_id(self) -> None:
        session = checkout_session(click_id=CLICK_ID, in_metadata=True)
        session["client_reference_id"] = "f" * 40
        assert parse("checkout.session.completed", session).click_id == CLICK_ID

    def test_the_metadata_key_is_configurable(self) -> None:
        session = checkout_session(click_id=None)
        session["metadata"] = {"ts_click": CLICK_ID}
        custom = ParseContext(CLICK_ID_PATTERN, click_id_metadata_key="ts_click")
        event = STRIPE.parse(json.loads(stripe_event("checkout.session.completed", session)), custom)
        assert event.click_id == CLICK_ID
        assert parse("checkout.session.completed", session).click_id is None

    @pytest.mark.parametrize("basil", [True, False])
    def test_invoices_read_subscription_metadata_in_both_api_shapes(self, basil: bool) -> None:
        event = parse("invoice.paid", invoice(basil=basil))
        assert isinstance(event, Conversion) and event.click_id == CLICK_ID
        assert event.details == {"billing_reason": "subscription_cycle"}

    def test_the_billing_reason_says_which_moment_of_its_subscription_an_invoice_is(self) -> None:
        assert parse("invoice.paid", invoice(billing_reason="subscription_cycle")).payment == "cycle"
        assert parse("invoice.paid", invoice(billing_reason="subscription_create")).payment == "first"
        assert parse("invoice.paid", invoice(billing_reason="subscription_update")).payment == "change"
        assert parse("invoice.paid", invoice(billing_reason="subscription_cycle")).subscription == "sub_test_0001"
        assert parse("checkout.session.completed", checkout_session()).payment == "one_off"

    def test_a_first_invoice_with_nothing_to_pay_is_the_trial_starting(self) -> None:
        trial = parse("invoice.paid", invoice(billing_reason="subscription_create", amount=0))
        assert isinstance(trial, Conversion) and trial.payment == "trial_start"
        assert trial.identity == "stripe#sub_test_0001:trial" and trial.amount is None
        coupon = invoice(billing_reason="subscription_create", amount=0)
        coupon["subtotal"] = 1900  # a 100 %-off coupon: something to pay before the discount
        assert parse("invoice.paid", coupon).payment == "first"

    def test_an_upper_case_click_id_is_folded_and_a_bad_one_is_kept_raw(self) -> None:
        assert parse("checkout.session.completed", checkout_session(click_id=CLICK_ID.upper())).click_id == CLICK_ID
        bad = parse("checkout.session.completed", checkout_session(click_id="{click_id}"))
        assert bad.click_id is None and bad.raw_click_id == "{click_id}"

    def test_zero_decimal_and_three_decimal_currencies(self) -> None:
        assert str(parse("payment_intent.succeeded", payment_intent(amount=500, currency="jpy")).amount.amount) == "500"
        assert str(parse("payment_intent.succeeded", payment_intent(amount=1230, currency="kwd")).amount.amount) == (
            "1.230"
        )

    def test_test_mode_events_are_marked(self) -> None:
        assert parse("checkout.session.completed", checkout_session(), livemode=False).livemode is False

    def test_refunds_and_disputes_are_reversals_of_the_payment(self) -> None:
        full = parse("charge.refunded", charge_refunded())
        assert isinstance(full, Reversal) and full.kind == "refunded"
        assert full.identities == ("stripe#pi_test_0001", "stripe#ch_test_0001")
        assert parse("charge.refunded", charge_refunded(full=False)).kind == "partially_refunded"
        dispute = parse(
            "charge.dispute.created",
            {"id": "dp_1", "amount": 4900, "currency": "usd", "payment_intent": "pi_test_0001", "charge": "ch_1"},
        )
        assert isinstance(dispute, Reversal) and dispute.kind == "charged_back"

    @pytest.mark.parametrize("event_type", ["customer.created", "invoice.created", "charge.succeeded", "ping"])
    def test_other_events_are_ignored(self, event_type: str) -> None:
        assert isinstance(parse(event_type, {"id": "x_1"}), Ignored)

    @pytest.mark.parametrize(
        "payload",
        [
            [],
            "event",
            {"type": "checkout.session.completed"},
            {"id": "evt_1", "type": "checkout.session.completed", "data": {}},
            {"id": "evt_1", "type": "checkout.session.completed", "data": {"object": "x"}},
        ],
    )
    def test_malformed_events_are_refused(self, payload: Any) -> None:
        with pytest.raises(MalformedEvent):
            STRIPE.parse(payload, CONTEXT)

    @pytest.mark.parametrize(
        "change", [{"amount_total": "49"}, {"amount_total": -1}, {"currency": "dollars"}, {"amount_total": True}]
    )
    def test_malformed_amounts_are_refused(self, change: dict[str, Any]) -> None:
        with pytest.raises(MalformedEvent):
            parse("checkout.session.completed", {**checkout_session(), **change})
