"""Verotel FlexPay: postbacks signed as Verotel's official client signs them (its test vector), answered `OK` only
once the event is durable; which events count, the click id in custom1, reversals by transaction."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from urllib.parse import urlencode

import pytest

from postback_relay.core.conversion import Conversion, Ignored, ParseContext, Reversal
from postback_relay.core.inbound import InboundRequest
from postback_relay.core.money import Money
from postback_relay.networks.trafficstars import CLICK_ID_PATTERN
from postback_relay.platforms import verotel_signature
from postback_relay.platforms.base import MalformedEvent, SignatureError, SignatureMismatch
from postback_relay.platforms.verotel import VEROTEL, VerotelSignature
from postback_relay.runtime import reset_runtime
from postback_relay_dev.sandbox import TrafficStarsSandbox
from tests.support.aws import Aws
from tests.support.constants import TEST_SOURCE_SECRETS
from tests.support.helpers import CLICK_ID, Invoker, Reply, run_sample, samples

KEY = TEST_SOURCE_SECRETS["verotel_signature_key"]
CONTEXT = ParseContext(CLICK_ID_PATTERN)
SALE = "456789"
TRANSACTION = "99999991"
PURCHASE = f"verotel#{TRANSACTION}"

# The official client's test vector (verotel/flexpay-php-client, tests/VerotelFlexPayClientTest.php).
VECTOR_KEY = "zpXwe2D77g4P7ysGJcr3rY87TBYs6J"
VECTOR_SHOP_ID = "68849"
VECTOR = {
    "saleID": "433456",
    "priceAmount": "0.00",
    "referenceID": "reference1234",
    "priceCurrency": "USD",
    "custom1": "My",
    "description": "My Dščřčřřěřě&?=blah123",
    "subscriptionType": "RECURRING",
    "period": "P1M",
    "name": "My name",
    "trialAmount": "0.01",
    "trialPeriod": "P3D",
    "successURL": "http://backURL.test",
    "declineURL": "http://declineURL.test",
    "cancelDiscountPercentage": "30",
}
VECTOR_SHA256 = "ff5cf9bcc0497c8cb40087065e5016dcfbe2efd23327f6c67614fa23537c24b2"
VECTOR_SHA1 = "fc63f38e2722d2e5bc4f2044ad3ffb2051e89643"  # over VECTOR plus blah=something


def initial(click_id: str | None = CLICK_ID, price: str = "12.31", **extra: str) -> dict[str, str]:
    """A subscription's first payment (datinglibre's VerotelSubscriptionEventServiceTest fields)."""
    params = {
        "CCBrand": "VISA",
        "event": "initial",
        "nextChargeOn": "2022-01-18",
        "paymentMethod": "CC",
        "period": "P1M",
        "priceAmount": price,
        "priceCurrency": "EUR",
        "saleID": SALE,
        "shopID": "122965",
        "subscriptionType": "recurring",
        "transactionID": TRANSACTION,
        "truncatedPAN": "XXXXXXXXXXXX1234",
        "type": "subscription",
    }
    if click_id is not None:
        params["custom1"] = click_id
    return {**params, **extra}


def rebill(transaction: str = "99999992") -> dict[str, str]:
    return {
        "event": "rebill",
        "amount": "12.31",
        "priceCurrency": "EUR",
        "saleID": SALE,
        "shopID": "122965",
        "transactionID": transaction,
        "nextChargeOn": "2022-02-18",
        "paymentMethod": "CC",
    }


def reversal(event: str) -> dict[str, str]:
    """A credit or chargeback (datinglibre's chargeback sample: the initial payment's transaction, custom1)."""
    return {
        "event": event,
        "saleID": SALE,
        "transactionID": TRANSACTION,
        "parentID": "10000",
        "referenceID": "0592094950",
        "custom1": CLICK_ID,
        "subscriptionType": "recurring",
        "subscriptionPhase": "normal",
        "shopID": "122965",
    }


def signed(params: dict[str, str], key: str = KEY) -> str:
    return urlencode({**params, "signature": verotel_signature.sign(key, params)})


def deliver(invoke: Invoker, params: dict[str, str], key: str = KEY, query: str | None = None) -> Reply:
    return invoke(
        b"",
        {"User-Agent": "Verotel"},
        path="/webhooks/verotel",
        method="GET",
        query=query if query is not None else signed(params, key),
        source_ip="185.69.0.10",
    )


def parse(params: dict[str, str]) -> object:
    return VEROTEL.parse(VEROTEL.payload(InboundRequest("GET", signed(params), b"")), CONTEXT)


class TestTheSignature:
    CHECK = VerotelSignature("verotel_signature_key")
    SHOP = ParseContext(CLICK_ID_PATTERN, verotel_shop_id=VECTOR_SHOP_ID)

    def request(self, params: dict[str, str], signature: str) -> InboundRequest:
        return InboundRequest("GET", urlencode({**params, "signature": signature}), b"")

    def test_the_official_sha256_vector_passes_with_the_shop_id_added(self) -> None:
        self.CHECK.verify(self.request(VECTOR, VECTOR_SHA256), [VECTOR_KEY], self.SHOP)

    def test_the_official_sha1_vector_passes(self) -> None:
        self.CHECK.verify(self.request({**VECTOR, "blah": "something"}, VECTOR_SHA1), [VECTOR_KEY], self.SHOP)

    @pytest.mark.parametrize("name", ["priceAmount", "description", "custom1"])
    def test_a_one_character_change_fails(self, name: str) -> None:
        tampered = {**VECTOR, name: VECTOR[name][:-1] + ("X" if VECTOR[name][-1] != "X" else "Y")}
        with pytest.raises(SignatureMismatch):
            self.CHECK.verify(self.request(tampered, VECTOR_SHA256), [VECTOR_KEY], self.SHOP)

    def test_a_missing_signature_is_refused(self) -> None:
        with pytest.raises(SignatureError):
            self.CHECK.verify(InboundRequest("GET", urlencode(VECTOR), b""), [VECTOR_KEY], self.SHOP)


class TestWhatEachEventIs:
    def test_a_subscriptions_first_payment_is_its_purchase(self) -> None:
        event = parse(initial())
        assert isinstance(event, Conversion)
        assert (event.identity, event.click_id, event.amount) == (PURCHASE, CLICK_ID, Money(Decimal("12.31"), "EUR"))
        assert (event.payment, event.subscription, event.aliases) == ("first", SALE, (SALE,))

    def test_a_one_time_purchase_has_no_event(self) -> None:
        params = {k: v for k, v in initial().items() if k != "event"}
        event = parse(params)
        assert isinstance(event, Conversion) and (event.payment, event.subscription) == ("one_off", None)

    def test_a_rebill_is_a_cycle_of_the_sale(self) -> None:
        event = parse(rebill())
        assert isinstance(event, Conversion)
        assert (event.purchase_id, event.payment, event.subscription, event.click_id) == (
            "99999992",
            "cycle",
            SALE,
            None,
        )

    @pytest.mark.parametrize(("event", "kind"), [("credit", "refunded"), ("chargeback", "charged_back")])
    def test_a_credit_or_chargeback_reverses_the_transaction_it_names(self, event: str, kind: str) -> None:
        parsed = parse(reversal(event))
        assert isinstance(parsed, Reversal) and (parsed.identities, parsed.kind) == ((PURCHASE,), kind)

    @pytest.mark.parametrize("event", ["cancel", "uncancel", "expiry", "extend", "upgrade", "downgrade", "new"])
    def test_every_other_event_is_ignored(self, event: str) -> None:
        assert isinstance(parse({**rebill(), "event": event}), Ignored)

    def test_a_postback_without_its_sale_is_malformed(self) -> None:
        with pytest.raises(MalformedEvent):
            parse({**initial(), "saleID": ""})


class TestThroughTheHandler:
    def test_a_sale_is_sent_once_and_answered_ok_each_time(
        self, invoke: Invoker, aws: Aws, sandbox: TrafficStarsSandbox
    ) -> None:
        first, again = deliver(invoke, initial()), deliver(invoke, initial())
        assert [(r.status, r.text, r.headers["Content-Type"]) for r in (first, again)] == [
            (200, "OK", "text/plain; charset=utf-8")
        ] * 2
        [received] = sandbox.state.received
        assert (received.click_id, received.key_matched) == (CLICK_ID, True)
        record = aws.record(PURCHASE)
        assert record is not None and (record["status"], record["amount"], record["currency"]) == (
            "sent",
            "12.31",
            "EUR",
        )

    def test_a_rebill_is_a_renewal_with_the_click_id_of_the_first_payment(
        self, invoke: Invoker, aws: Aws, sandbox: TrafficStarsSandbox
    ) -> None:
        deliver(invoke, initial())
        assert deliver(invoke, rebill()).text == "OK"
        assert [r.click_id for r in sandbox.state.received] == [CLICK_ID, CLICK_ID]
        record = aws.record("verotel#99999992")
        assert record is not None and (record["status"], record["goal"]) == ("sent", "renewal")

    @pytest.mark.parametrize(("event", "status"), [("credit", "refunded"), ("chargeback", "charged_back")])
    def test_a_credit_or_chargeback_marks_the_sale_and_sends_nothing(
        self, invoke: Invoker, aws: Aws, sandbox: TrafficStarsSandbox, event: str, status: str
    ) -> None:
        deliver(invoke, initial())
        assert deliver(invoke, reversal(event)).text == "OK"
        record = aws.record(PURCHASE)
        assert record is not None and (record["status"], record["status_before_reversal"]) == (status, "sent")
        assert len(sandbox.state.received) == 1

    def test_a_tampered_or_wrongly_signed_postback_is_refused_never_ok(
        self, invoke: Invoker, aws: Aws, sandbox: TrafficStarsSandbox
    ) -> None:
        tampered = signed(initial()).replace("priceAmount=12.31", "priceAmount=99.99")
        replies = [
            deliver(invoke, initial(), key="not-the-key"),
            deliver(invoke, initial(), query=tampered),
            deliver(invoke, initial(), query=urlencode(initial())),
        ]
        assert [(r.status, r.body["error"]) for r in replies] == [(401, "invalid_signature")] * 3
        assert all(r.text != "OK" for r in replies)
        assert aws.items() == [] and sandbox.state.received == []

    def test_an_unknown_event_is_ok_and_changes_nothing(
        self, invoke: Invoker, aws: Aws, sandbox: TrafficStarsSandbox
    ) -> None:
        reply = deliver(invoke, {**rebill(), "event": "somethingnew"})
        assert (reply.status, reply.text) == (200, "OK")
        assert aws.items() == [] and sandbox.state.received == []

    def test_an_allowlist_may_be_added_to_the_signature(
        self, invoke: Invoker, relay_env: pytest.MonkeyPatch, aws: Aws
    ) -> None:
        relay_env.setenv("VEROTEL_ALLOWED_IPS", "198.51.100.0/24")
        reset_runtime()
        reply = deliver(invoke, initial())
        assert reply.status == 403 and reply.text != "OK" and aws.items() == []

    def test_a_store_outage_is_503_never_ok(self, invoke: Invoker, aws: Aws, sandbox: TrafficStarsSandbox) -> None:
        aws.server.fault = lambda environ: environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB")
        try:
            reply = deliver(invoke, initial())
        finally:
            aws.server.fault = None
        assert reply.status == 503 and reply.text != "OK"


EXPECTED = {"initial": "OK", "rebill": "OK", "chargeback": "OK"}


def test_the_sample_events_are_verotels() -> None:
    assert {path.stem for path in samples("verotel")} == set(EXPECTED)


def test_the_sample_events_run_in_order(relay_env: pytest.MonkeyPatch, aws: Aws, sandbox: TrafficStarsSandbox) -> None:
    relay_env.setenv("VEROTEL_SIGNATURE_KEY", KEY)
    for stem in EXPECTED:
        path = Path(__file__).resolve().parents[3] / "events" / "verotel" / f"{stem}.json"
        status, _, event = run_sample(path)
        assert status == 200 and "signature=" in event["rawQueryString"], stem
    assert len(sandbox.state.received) == 2
