"""Epoch: the approval postback and DataPlus, shaped as the second-hand sources show them (aMember's Epoch plugin,
"Epoch.com Data Plus.pdf"; ../shared/reference/billers.md section 4), form-POSTed and accepted only with the URL
token and from Epoch's (aMember's) ranges; which events count, the click id remembered across the membership,
reversals by the transaction DataPlus names."""

from __future__ import annotations

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
from postback_relay.platforms.epoch import EPOCH
from postback_relay_dev.sandbox import TrafficStarsSandbox
from tests.support.aws import Aws
from tests.support.constants import TEST_SOURCE_SECRETS
from tests.support.helpers import CLICK_ID, Invoker, Reply, run_sample, samples

TOKEN = TEST_SOURCE_SECRETS["epoch_webhook_token"]
CONTEXT = ParseContext(CLICK_ID_PATTERN)
EPOCH_IP = "208.236.105.10"  # in 208.236.105.0/24, one of aMember's Epoch ranges
FORM = "application/x-www-form-urlencoded"
TRANSACTION = "1122334455"
MEMBER = "987654"
REBILL_TRANSACTION = "1122334499"
PURCHASE = f"epoch#{TRANSACTION}"


def approval(answer: str = "Y", click_id: str | None = CLICK_ID, **extra: str) -> dict[str, str]:
    """An approval postback (billers.md 4.6's sample)."""
    fields = {
        "ans": answer,
        "order_id": "123456789",
        "member_id": MEMBER,
        "transaction_id": TRANSACTION,
        "pi_code": "abc123pi",
        "amount": "29.95",
        "localamount": "27.50",
        "currency": "EUR",
        "email": "a@b.c",
        "epoch_digest": "0123456789abcdef0123456789abcdef",
    }
    if click_id is not None:
        fields["x_click_id"] = click_id
    return {**fields, **extra}


def dataplus(kind: str, transaction: str = REBILL_TRANSACTION, refs: str | None = TRANSACTION) -> dict[str, str]:
    """A DataPlus row (the Data Plus PDF's fields): no pass-through fields."""
    fields = {
        "ets_transaction_id": transaction,
        "ets_member_idx": MEMBER,
        "ets_transaction_date": "2024-01-01 00:00:00",
        "ets_transaction_type": kind,
        "ets_co_code": "abc",
        "ets_pi_code": "abc123pi",
        "ets_reseller_code": "a",
        "ets_transaction_amount": "29.95",
        "ets_payment_type": "V",
        "ets_username": "member",
        "ets_email": "a@b.c",
    }
    if refs is not None:
        fields["ets_ref_trans_ids"] = refs
    return fields


def request(fields: dict[str, str], raw_query: str = f"token={TOKEN}") -> InboundRequest:
    return InboundRequest("POST", raw_query, urlencode(fields).encode(), {"content-type": FORM})


def parse(fields: dict[str, str]) -> Any:
    return EPOCH.parse(EPOCH.payload(request(fields)), CONTEXT)


def deliver(invoke: Invoker, fields: dict[str, str], *, token: str | None = TOKEN, source_ip: str = EPOCH_IP) -> Reply:
    """POST ``fields`` to /webhooks/epoch as a form, the relay's token in the URL's query."""
    return invoke(
        urlencode(fields).encode(),
        {"User-Agent": "Epoch"},
        path="/webhooks/epoch",
        content_type=FORM,
        query=f"token={token}" if token is not None else "",
        source_ip=source_ip,
    )


class TestWhatEachEventIs:
    def test_an_approval_is_the_transactions_purchase_at_the_local_amount(self) -> None:
        event = parse(approval())
        assert isinstance(event, Conversion)
        assert (event.identity, event.click_id, event.amount) == (PURCHASE, CLICK_ID, Money(Decimal("27.50"), "EUR"))
        assert (event.payment, event.subscription, event.aliases, event.livemode) == ("first", MEMBER, (MEMBER,), True)
        assert (event.event_id, event.event_type) == (f"approval:{TRANSACTION}", "epoch.approval")

    def test_without_a_local_amount_the_amount_is_in_usd(self) -> None:
        fields = approval()
        del fields["localamount"]
        event = parse(fields)
        assert isinstance(event, Conversion) and event.amount == Money(Decimal("29.95"), "USD")

    def test_ygoodtest_is_a_test_transaction(self) -> None:
        event = parse(approval("YGOODTEST"))
        assert isinstance(event, Conversion) and event.livemode is False

    def test_a_declined_join_is_ignored(self) -> None:
        assert isinstance(parse(approval("NDECLINED")), Ignored)

    def test_a_dataplus_rebill_is_a_cycle_of_the_member_under_its_own_transaction(self) -> None:
        event = parse(dataplus("N"))
        assert isinstance(event, Conversion)
        assert (event.purchase_id, event.payment, event.subscription, event.click_id, event.amount) == (
            REBILL_TRANSACTION,
            "cycle",
            MEMBER,
            None,
            Money(Decimal("29.95"), "USD"),
        )
        assert (event.event_id, event.event_type) == (f"dataplus:N:{REBILL_TRANSACTION}", "epoch.dataplus.N")

    @pytest.mark.parametrize("kind", ["I", "O", "T", "U"])
    def test_a_dataplus_initial_sale_is_the_approvals_purchase(self, kind: str) -> None:
        event = parse(dataplus(kind, transaction=TRANSACTION, refs=None))
        assert isinstance(event, Conversion)
        assert (event.identity, event.payment, event.subscription) == (PURCHASE, "first", MEMBER)

    @pytest.mark.parametrize(("kind", "reversal"), [("C", "refunded"), ("D", "charged_back"), ("X", "charged_back")])
    def test_credits_chargebacks_and_returned_checks_reverse_the_first_referenced_transaction(
        self, kind: str, reversal: str
    ) -> None:
        event = parse(dataplus(kind, refs=f"{TRANSACTION},1122334400"))
        assert isinstance(event, Reversal)
        assert (event.identities, event.kind) == ((PURCHASE,), reversal)

    def test_a_reversal_without_references_names_the_member(self) -> None:
        event = parse(dataplus("D", refs=None))
        assert isinstance(event, Reversal) and event.identities == (f"epoch#{MEMBER}",)

    @pytest.mark.parametrize("kind", ["F", "J", "K", "Z"])
    def test_free_trials_denied_or_cancelled_trials_and_unknown_types_are_ignored(self, kind: str) -> None:
        assert isinstance(parse(dataplus(kind)), Ignored)

    @pytest.mark.parametrize(
        "fields",
        [
            {**approval(), "transaction_id": ""},
            {**approval(), "member_id": "x" * 80},
            {**approval(), "member_id": "98-76"},
            {**approval(), "localamount": "lots"},
            {**dataplus("N"), "ets_member_idx": ""},
            {**dataplus("N"), "ets_transaction_amount": "-1"},
            {"order_id": "123456789", "member_id": MEMBER},
        ],
    )
    def test_an_event_without_its_ids_amount_or_kind_is_malformed(self, fields: dict[str, str]) -> None:
        with pytest.raises(MalformedEvent):
            parse(fields)

    def test_a_field_sent_twice_with_different_values_or_no_fields_is_malformed(self) -> None:
        with pytest.raises(MalformedEvent):
            EPOCH.payload(request(approval(), raw_query=f"token={TOKEN}&transaction_id=999"))
        with pytest.raises(MalformedEvent):
            EPOCH.payload(request({}))

    def test_the_token_is_not_part_of_the_payload(self) -> None:
        assert "token" not in EPOCH.payload(request(approval()))


class TestThroughTheHandler:
    def test_an_approval_becomes_one_postback_and_its_redelivery_none(
        self, invoke: Invoker, aws: Aws, sandbox: TrafficStarsSandbox
    ) -> None:
        first = deliver(invoke, approval())
        again = deliver(invoke, approval())
        assert (first.status, first.body) == (200, {"status": "sent", "conversion_id": PURCHASE})
        assert (again.status, again.body["status"]) == (200, "duplicate")
        [received] = sandbox.state.received
        assert (received.click_id, received.key_matched) == (CLICK_ID, True)
        record = aws.record(PURCHASE)
        assert record is not None and record["status"] == "sent"

    def test_the_dataplus_row_of_the_initial_sale_is_a_duplicate(
        self, invoke: Invoker, sandbox: TrafficStarsSandbox
    ) -> None:
        deliver(invoke, approval())
        reply = deliver(invoke, dataplus("I", transaction=TRANSACTION, refs=None))
        assert (reply.status, reply.body["status"]) == (200, "duplicate")
        assert len(sandbox.state.received) == 1

    def test_a_rebill_is_sent_as_a_renewal_with_the_click_id_the_approval_brought(
        self, invoke: Invoker, aws: Aws, sandbox: TrafficStarsSandbox
    ) -> None:
        deliver(invoke, approval())
        reply = deliver(invoke, dataplus("N"))
        assert (reply.status, reply.body["status"]) == (200, "sent")
        assert [r.click_id for r in sandbox.state.received] == [CLICK_ID, CLICK_ID]
        record = aws.record(f"epoch#{REBILL_TRANSACTION}")
        assert record is not None and (record["goal"], record["detail_click_id_from"]) == ("renewal", "subscription")

    @pytest.mark.parametrize(("kind", "status"), [("C", "refunded"), ("D", "charged_back")])
    def test_a_credit_or_chargeback_marks_the_approval_and_sends_nothing(
        self, invoke: Invoker, aws: Aws, sandbox: TrafficStarsSandbox, kind: str, status: str
    ) -> None:
        deliver(invoke, approval())
        reply = deliver(invoke, dataplus(kind, transaction="1122334477"))
        assert (reply.status, reply.body["status"]) == (200, status)
        record = aws.record(PURCHASE)
        assert record is not None and (record["status"], record["status_before_reversal"]) == (status, "sent")
        assert len(sandbox.state.received) == 1

    def test_a_test_transaction_is_recorded_and_not_sent(
        self, invoke: Invoker, aws: Aws, sandbox: TrafficStarsSandbox
    ) -> None:
        reply = deliver(invoke, approval("YGOODTEST"))
        assert reply.status == 200
        record = aws.record(PURCHASE)
        assert record is not None and record["status"] == "test_mode"
        assert sandbox.state.received == []

    def test_a_decline_sends_and_stores_nothing(self, invoke: Invoker, aws: Aws, sandbox: TrafficStarsSandbox) -> None:
        reply = deliver(invoke, approval("NDECLINED"))
        assert (reply.status, reply.body["status"]) == (200, "ignored")
        assert sandbox.state.received == [] and aws.items() == []

    @pytest.mark.parametrize(
        ("token", "source_ip", "status"),
        [
            ("forged-token", EPOCH_IP, 401),
            (None, EPOCH_IP, 401),
            (TOKEN, "203.0.113.9", 403),
            (TOKEN, "64.38.240.17", 403),  # CCBill's range, not Epoch's
        ],
    )
    def test_a_wrong_or_missing_token_or_an_address_outside_epochs_ranges_is_refused(
        self,
        invoke: Invoker,
        aws: Aws,
        sandbox: TrafficStarsSandbox,
        token: str | None,
        source_ip: str,
        status: int,
    ) -> None:
        reply = deliver(invoke, approval(), token=token, source_ip=source_ip)
        assert reply.status == status and "error" in reply.body
        assert aws.items() == [] and sandbox.state.received == []

    def test_malformed_bodies_are_400_and_store_nothing(self, invoke: Invoker, aws: Aws) -> None:
        for fields in ({**approval(), "transaction_id": "x" * 80}, {"order_id": "1"}):
            reply = deliver(invoke, fields)
            assert (reply.status, reply.body["error"]) == (400, "malformed_body")
        assert aws.items() == []


EXPECTED = {"approval": "sent", "dataplus-rebill": "sent", "dataplus-chargeback": "charged_back"}


def test_the_sample_events_are_epochs() -> None:
    assert {path.stem for path in samples("epoch")} == set(EXPECTED)


def test_the_sample_events_run_in_order(relay_env: pytest.MonkeyPatch, sandbox: TrafficStarsSandbox) -> None:
    relay_env.setenv("EPOCH_ALLOWED_IPS", "127.0.0.1")  # the samples come from loopback, as in the local run
    relay_env.setenv("EPOCH_WEBHOOK_TOKEN", TOKEN)
    statuses = {}
    for stem in EXPECTED:
        status, body, event = run_sample(Path(__file__).resolve().parents[3] / "events" / "epoch" / f"{stem}.json")
        assert event["rawQueryString"].startswith("token=")  # added when sent, never written into the file
        statuses[stem] = (status, body["status"])
    assert statuses == {stem: (200, status) for stem, status in EXPECTED.items()}
