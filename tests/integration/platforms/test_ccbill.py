"""CCBill Webhooks: shaped as CCBill sends them (the event type in the query, the data as JSON or URL-encoded
fields, from DmytroVasin/ccbill_ruby's samples), accepted only with the URL token and from CCBill's published
ranges; which events count, the click id remembered across the subscription, reversals by transaction."""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from postback_relay.core.conversion import Conversion, Ignored, ParseContext, Reversal
from postback_relay.core.inbound import InboundRequest
from postback_relay.core.money import Money
from postback_relay.networks.trafficstars import CLICK_ID_PATTERN
from postback_relay.platforms.base import MalformedEvent
from postback_relay.platforms.ccbill import CCBILL
from postback_relay.runtime import reset_runtime
from postback_relay_dev.sandbox import TrafficStarsSandbox
from tests.support.aws import Aws
from tests.support.constants import TEST_KEY, TEST_SOURCE_SECRETS, TEST_STRIPE_SECRET
from tests.support.helpers import CLICK_ID, Invoker, Reply, run_sample, samples

TOKEN = TEST_SOURCE_SECRETS["ccbill_webhook_token"]
CONTEXT = ParseContext(CLICK_ID_PATTERN)
CCBILL_IP = "64.38.240.17"  # in 64.38.240.0/24, one of CCBill's published ranges
SUBSCRIPTION = "0117240102000000049"
RENEWAL_TRANSACTION = "0117240102000000077"
PURCHASE = f"ccbill#{SUBSCRIPTION}"
SALT = "ccbill-salt-99999"


def new_sale(click_id: str | None = CLICK_ID, price: str = "18.00", **extra: str) -> dict[str, str]:
    """A NewSaleSuccess body as CCBill's JSON format sends it (ccbill_ruby's reccuring_new_sale_success.json)."""
    fields = {
        "accountingCurrency": "USD",
        "accountingCurrencyCode": "840",
        "accountingInitialPrice": "18.0",
        "accountingRecurringPrice": "18.0",
        "billedCurrency": "USD",
        "billedCurrencyCode": "840",
        "billedInitialPrice": price,
        "billedRecurringPrice": "18.00",
        "clientAccnum": "007687",
        "clientSubacc": "0001",
        "country": "UA",
        "email": "test@example.com",
        "flexId": "08db4ae9-0000-0000-0000-e0275cf91c00",
        "formName": "003ff",
        "initialPeriod": "30",
        "nextRenewalDate": "2017-09-27",
        "paymentType": "CREDIT",
        "rebills": "99",
        "recurringPeriod": "30",
        "subscriptionCurrency": "USD",
        "subscriptionId": SUBSCRIPTION,
        "subscriptionInitialPrice": price,
        "subscriptionTypeId": "0000000464",
        "timestamp": "2017-08-28 07:08:52",
        "transactionId": SUBSCRIPTION,
    }
    if click_id is not None:
        fields["X-click_id"] = click_id
    return {**fields, **extra}


def renewal(transaction: str = RENEWAL_TRANSACTION) -> dict[str, str]:
    """A RenewalSuccess body (datinglibre/ccbill's mapper fields): no pass-through fields."""
    return {
        "accountingAmount": "18.0",
        "accountingCurrency": "USD",
        "billedAmount": "18.00",
        "billedCurrency": "USD",
        "billedCurrencyCode": "840",
        "clientAccnum": "007687",
        "clientSubacc": "0001",
        "nextRenewalDate": "2017-10-27",
        "renewalDate": "2017-09-27",
        "subscriptionId": SUBSCRIPTION,
        "timestamp": "2017-09-27 07:08:52",
        "transactionId": transaction,
    }


def reversal(transaction: str = SUBSCRIPTION, reason: str = "Charged Back on 05/05/2016") -> dict[str, str]:
    """A Refund/Chargeback/Void body (ccbill_ruby's chargeback.json)."""
    return {
        "accountingAmount": "18.00",
        "accountingCurrency": "USD",
        "accountingCurrencyCode": "840",
        "amount": "18.00",
        "clientAccnum": "007687",
        "clientSubacc": "0001",
        "currency": "USD",
        "currencyCode": "840",
        "reason": reason,
        "subscriptionId": SUBSCRIPTION,
        "timestamp": "2016-05-05 04:37:59",
        "transactionId": transaction,
    }


def query(event_type: str, token: str | None = TOKEN) -> str:
    """The query CCBill appends to the webhook URL (which carries the relay's token)."""
    params = {
        "clientAccnum": "007687",
        "clientSubacc": "0001",
        "eventType": event_type,
        "eventGroupType": "Subscription",
    }
    head = f"token={token}&" if token is not None else ""
    return head + urlencode(params)


def deliver(
    invoke: Invoker,
    event_type: str,
    fields: dict[str, str],
    *,
    form: bool = False,
    token: str | None = TOKEN,
    source_ip: str = CCBILL_IP,
    raw: bytes | None = None,
) -> Reply:
    """POST ``fields`` to /webhooks/ccbill as CCBill does, in its JSON or URL Encoded format."""
    body = raw if raw is not None else (urlencode(fields) if form else json.dumps(fields)).encode()
    content_type = "application/x-www-form-urlencoded" if form else "application/json"
    return invoke(
        body,
        {"User-Agent": "CCBill Webhooks"},
        path="/webhooks/ccbill",
        content_type=content_type,
        query=query(event_type, token),
        source_ip=source_ip,
    )


def request(event_type: str, fields: dict[str, str]) -> InboundRequest:
    return InboundRequest("POST", query(event_type), json.dumps(fields).encode(), {"content-type": "application/json"})


def parse(event_type: str, fields: dict[str, str]) -> Any:
    return CCBILL.parse(CCBILL.payload(request(event_type, fields)), CONTEXT)


class TestWhatEachEventIs:
    def test_a_new_sale_is_the_subscriptions_purchase_at_the_billed_amount(self) -> None:
        event = parse("NewSaleSuccess", new_sale())
        assert isinstance(event, Conversion)
        assert (event.identity, event.click_id, event.amount) == (PURCHASE, CLICK_ID, Money(Decimal("18.00"), "USD"))
        assert (event.payment, event.subscription, event.platform_converted) == (
            "first",
            SUBSCRIPTION,
            Money(Decimal("18.0"), "USD"),
        )
        assert event.event_id == f"NewSaleSuccess:{SUBSCRIPTION}"

    def test_the_url_encoded_format_is_the_same_sale(self) -> None:
        form = InboundRequest(
            "POST",
            query("NewSaleSuccess"),
            urlencode(new_sale()).encode(),
            {"content-type": "application/x-www-form-urlencoded"},
        )
        assert CCBILL.parse(CCBILL.payload(form), CONTEXT) == parse("NewSaleSuccess", new_sale())

    def test_a_renewal_is_a_cycle_of_the_subscription_under_its_own_transaction(self) -> None:
        event = parse("RenewalSuccess", renewal())
        assert isinstance(event, Conversion)
        assert (event.purchase_id, event.payment, event.subscription, event.click_id) == (
            RENEWAL_TRANSACTION,
            "cycle",
            SUBSCRIPTION,
            None,
        )

    @pytest.mark.parametrize(
        ("event_type", "kind"),
        [("Refund", "refunded"), ("Chargeback", "charged_back"), ("Void", "cancelled"), ("Return", "charged_back")],
    )
    def test_refunds_chargebacks_voids_and_returns_reverse_the_transaction_they_name(
        self, event_type: str, kind: str
    ) -> None:
        event = parse(event_type, reversal())
        assert isinstance(event, Reversal)
        assert (event.identities, event.kind, event.amount) == ((PURCHASE,), kind, Money(Decimal("18.00"), "USD"))

    @pytest.mark.parametrize(
        "event_type",
        ["NewSaleFailure", "RenewalFailure", "Cancellation", "Expiration", "BillingDateChange", "SomethingNew"],
    )
    def test_declines_and_every_other_event_are_ignored(self, event_type: str) -> None:
        assert isinstance(parse(event_type, reversal()), Ignored)

    def test_the_click_id_may_also_come_without_the_prefix(self) -> None:
        fields = new_sale(click_id=None, click_id_plain=CLICK_ID)
        fields["click_id"] = fields.pop("click_id_plain")
        event = parse("NewSaleSuccess", fields)
        assert isinstance(event, Conversion) and event.click_id == CLICK_ID

    @pytest.mark.parametrize(
        "fields",
        [
            {**new_sale(), "subscriptionId": ""},
            {**new_sale(), "billedInitialPrice": "eighteen"},
            {**new_sale(), "billedCurrency": "US"},
        ],
    )
    def test_a_sale_without_its_ids_or_amount_is_malformed(self, fields: dict[str, str]) -> None:
        with pytest.raises(MalformedEvent):
            parse("NewSaleSuccess", fields)

    def test_a_body_that_is_neither_json_nor_a_form_is_malformed(self) -> None:
        with pytest.raises(MalformedEvent):
            CCBILL.payload(InboundRequest("POST", query("NewSaleSuccess"), b"[1, 2]", {"content-type": "text/plain"}))


class TestThroughTheHandler:
    def test_a_sale_becomes_one_postback_and_its_redelivery_none(
        self, invoke: Invoker, aws: Aws, sandbox: TrafficStarsSandbox
    ) -> None:
        first = deliver(invoke, "NewSaleSuccess", new_sale())
        again = deliver(invoke, "NewSaleSuccess", new_sale(), form=True)
        assert (first.status, first.body) == (200, {"status": "sent", "conversion_id": PURCHASE})
        assert (again.status, again.body["status"]) == (200, "duplicate")
        [received] = sandbox.state.received
        assert (received.click_id, received.params["value"], received.key_matched) == (CLICK_ID, "18.00", True)
        record = aws.record(PURCHASE)
        assert record is not None and (record["status"], record["detail_account"]) == ("sent", "007687/0001")

    def test_a_renewal_is_sent_as_a_renewal_with_the_click_id_the_sale_brought(
        self, invoke: Invoker, aws: Aws, sandbox: TrafficStarsSandbox
    ) -> None:
        deliver(invoke, "NewSaleSuccess", new_sale())
        reply = deliver(invoke, "RenewalSuccess", renewal())
        assert (reply.status, reply.body["status"]) == (200, "sent")
        assert [r.click_id for r in sandbox.state.received] == [CLICK_ID, CLICK_ID]
        record = aws.record(f"ccbill#{RENEWAL_TRANSACTION}")
        assert record is not None and (record["goal"], record["detail_click_id_from"]) == ("renewal", "subscription")

    @pytest.mark.parametrize(("event_type", "status"), [("Refund", "refunded"), ("Chargeback", "charged_back")])
    def test_a_refund_or_chargeback_marks_the_sale_and_sends_nothing(
        self, invoke: Invoker, aws: Aws, sandbox: TrafficStarsSandbox, event_type: str, status: str
    ) -> None:
        deliver(invoke, "NewSaleSuccess", new_sale())
        reply = deliver(invoke, event_type, reversal())
        assert (reply.status, reply.body["status"]) == (200, status)
        record = aws.record(PURCHASE)
        assert record is not None and (record["status"], record["status_before_reversal"]) == (status, "sent")
        assert len(sandbox.state.received) == 1

    def test_a_chargeback_before_its_sale_keeps_the_late_sale_from_being_sent(
        self, invoke: Invoker, sandbox: TrafficStarsSandbox
    ) -> None:
        deliver(invoke, "Chargeback", reversal())
        assert deliver(invoke, "NewSaleSuccess", new_sale()).body["status"] == "duplicate"
        assert sandbox.state.received == []

    def test_a_zero_price_trial_and_a_decline_send_and_store_nothing(
        self, invoke: Invoker, aws: Aws, sandbox: TrafficStarsSandbox
    ) -> None:
        trial = deliver(invoke, "NewSaleSuccess", new_sale(price="0.00"))
        decline = deliver(invoke, "NewSaleFailure", new_sale())
        unknown = deliver(invoke, "SomethingCCBillAddsLater", new_sale())
        assert [r.status for r in (trial, decline, unknown)] == [200, 200, 200]
        assert [r.body["status"] for r in (trial, decline, unknown)] == ["ignored", "ignored", "ignored"]
        assert sandbox.state.received == []
        assert [item for item in aws.items() if not item["pk"].startswith("subscription#")] == []

    @pytest.mark.parametrize(
        ("token", "source_ip", "status"),
        [
            ("forged-token", CCBILL_IP, 401),
            (None, CCBILL_IP, 401),
            (TOKEN, "203.0.113.9", 403),
            (TOKEN, "10.0.0.1", 403),
        ],
    )
    def test_a_wrong_or_missing_token_or_an_address_outside_ccbills_ranges_is_refused(
        self,
        invoke: Invoker,
        aws: Aws,
        sandbox: TrafficStarsSandbox,
        token: str | None,
        source_ip: str,
        status: int,
    ) -> None:
        reply = deliver(invoke, "NewSaleSuccess", new_sale(), token=token, source_ip=source_ip)
        assert reply.status == status and "error" in reply.body
        assert aws.items() == [] and sandbox.state.received == []

    def test_x_forwarded_for_is_never_the_source_address(self, invoke: Invoker, aws: Aws) -> None:
        body = json.dumps(new_sale()).encode()
        reply = invoke(
            body,
            {"X-Forwarded-For": CCBILL_IP},
            path="/webhooks/ccbill",
            query=query("NewSaleSuccess"),
            source_ip="203.0.113.9",
        )
        assert reply.status == 403 and aws.items() == []

    def test_the_allowlist_is_a_setting_and_any_turns_it_off(
        self, invoke: Invoker, relay_env: pytest.MonkeyPatch, sandbox: TrafficStarsSandbox
    ) -> None:
        relay_env.setenv("CCBILL_ALLOWED_IPS", "198.51.100.0/24")
        reset_runtime()
        assert deliver(invoke, "NewSaleSuccess", new_sale()).status == 403
        assert deliver(invoke, "NewSaleSuccess", new_sale(), source_ip="198.51.100.7").status == 200
        relay_env.setenv("CCBILL_ALLOWED_IPS", "any")
        reset_runtime()
        other = new_sale(subscriptionId="0117240102000000050", transactionId="0117240102000000050")
        assert deliver(invoke, "NewSaleSuccess", other, source_ip="203.0.113.9").status == 200
        assert len(sandbox.state.received) == 2

    def test_with_the_salt_configured_a_sale_needs_its_digest(
        self, invoke: Invoker, aws: Aws, sandbox: TrafficStarsSandbox
    ) -> None:
        aws.put_secret(
            {
                "trafficstars_key": TEST_KEY,
                "stripe_webhook_secret": TEST_STRIPE_SECRET,
                **TEST_SOURCE_SECRETS,
                "ccbill_digest_salt": SALT,
            }
        )
        digest = hashlib.md5(f"{SUBSCRIPTION}1{SALT}".encode()).hexdigest()  # noqa: S324 - CCBill's algorithm
        forged = deliver(invoke, "NewSaleSuccess", new_sale(dynamicPricingValidationDigest="0" * 32))
        assert forged.status == 401 and aws.items() == []
        genuine = deliver(invoke, "NewSaleSuccess", new_sale(dynamicPricingValidationDigest=digest))
        assert (genuine.status, genuine.body["status"]) == (200, "sent")

    def test_malformed_bodies_are_400_and_store_nothing(self, invoke: Invoker, aws: Aws) -> None:
        for raw in (b'{"subscriptionId":', json.dumps({**new_sale(), "subscriptionId": "x" * 80}).encode()):
            reply = deliver(invoke, "NewSaleSuccess", {}, raw=raw)
            assert (reply.status, reply.body["error"]) == (400, "malformed_body")
        assert aws.items() == []

    def test_an_unconfigured_ccbill_is_404(self, invoke: Invoker, aws: Aws) -> None:
        aws.put_secret({"trafficstars_key": TEST_KEY})
        assert deliver(invoke, "NewSaleSuccess", new_sale()).status == 404


EXPECTED = {"NewSaleSuccess": "sent", "RenewalSuccess": "sent", "Chargeback": "charged_back"}


def test_the_sample_events_are_ccbills() -> None:
    assert {path.stem for path in samples("ccbill")} == set(EXPECTED)


def test_the_sample_events_run_in_order(relay_env: pytest.MonkeyPatch, sandbox: TrafficStarsSandbox) -> None:
    relay_env.setenv("CCBILL_ALLOWED_IPS", "127.0.0.1")  # the samples come from loopback, as in the local run
    relay_env.setenv("CCBILL_WEBHOOK_TOKEN", TOKEN)
    statuses = {}
    for stem in EXPECTED:
        status, body, event = run_sample(Path(__file__).resolve().parents[3] / "events" / "ccbill" / f"{stem}.json")
        assert event["rawQueryString"].startswith("token=")  # added when sent, never written into the file
        statuses[stem] = (status, body["status"])
    assert statuses == {stem: (200, status) for stem, status in EXPECTED.items()}
