"""Segpay TransPost postbacks: shaped as the merchant's URL template fills them in (billers.md, section 2: the
macros in the query, or the same fields in a form body, since Segpay's method is unconfirmed), accepted only with
the URL token and from the addresses the operator sets (Segpay publishes none); which events count, the click id
remembered across the purchase, reversals by the related transaction, and the Expected Response `OK`."""

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
from postback_relay.platforms.segpay import SEGPAY
from postback_relay.runtime import reset_runtime
from postback_relay_dev.sandbox import TrafficStarsSandbox
from tests.support.aws import Aws
from tests.support.constants import TEST_SOURCE_SECRETS
from tests.support.helpers import CLICK_ID, Invoker, Reply, run_sample, samples

TOKEN = TEST_SOURCE_SECRETS["segpay_webhook_token"]
CONTEXT = ParseContext(CLICK_ID_PATTERN)
ALLOWED = "198.51.100.0/24"
SEGPAY_IP = "198.51.100.20"
PURCHASE_ID = "12345678"
SALE_TRANSACTION = "987654321"
REBILL_TRANSACTION = "987654400"
SALE = f"segpay#{SALE_TRANSACTION}"
STATUS = "X-Postback-Relay-Status"  # the outcome, beside the platform's own text answer


def postback(
    action: str = "Auth",
    stage: str = "Initial",
    approved: str = "Yes",
    trantype: str = "Sale",
    tranid: str = SALE_TRANSACTION,
    relatedtranid: str = "",
    price: str = "29.95",
    click_id: str | None = CLICK_ID,
    **extra: str,
) -> dict[str, str]:
    """The fields the URL template's macros are filled with (billers.md's 2.6 sample)."""
    fields = {
        "action": action,
        "stage": stage,
        "approved": approved,
        "trantype": trantype,
        "purchaseid": PURCHASE_ID,
        "tranid": tranid,
        "relatedtranid": relatedtranid,
        "price": price,
        "currencycode": "USD",
        "click_id": click_id or "",
    }
    return {**fields, **extra}


def rebill() -> dict[str, str]:
    """A rebill: the `<extra click_id>` may not be repeated (unconfirmed), so it is blank here."""
    return postback(stage="Rebill", tranid=REBILL_TRANSACTION, click_id=None)


def reversal(trantype: str = "Chargeback", action: str = "Auth") -> dict[str, str]:
    return postback(action=action, trantype=trantype, tranid="987654500", relatedtranid=SALE_TRANSACTION, click_id=None)


def query(fields: dict[str, str] | None, token: str | None = TOKEN) -> str:
    head = [f"token={token}"] if token is not None else []
    return "&".join([*head, *([urlencode(fields)] if fields else [])])


def deliver(
    invoke: Invoker,
    fields: dict[str, str],
    *,
    post: bool = False,
    token: str | None = TOKEN,
    source_ip: str = SEGPAY_IP,
) -> Reply:
    """A GET with the macros in the query, or a POST of them as a form (the token always in the query)."""
    if post:
        return invoke(
            urlencode(fields).encode(),
            {"User-Agent": "Segpay"},
            path="/webhooks/segpay",
            content_type="application/x-www-form-urlencoded",
            query=query(None, token),
            source_ip=source_ip,
        )
    return invoke(
        b"",
        {"User-Agent": "Segpay"},
        path="/webhooks/segpay",
        method="GET",
        query=query(fields, token),
        source_ip=source_ip,
    )


def parse(fields: dict[str, str]) -> Any:
    return SEGPAY.parse(SEGPAY.payload(InboundRequest("GET", query(fields), b"")), CONTEXT)


@pytest.fixture
def allowed(relay_env: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    relay_env.setenv("SEGPAY_ALLOWED_IPS", ALLOWED)
    reset_runtime()
    return relay_env


class TestWhatEachEventIs:
    def test_an_approved_initial_sale_is_the_purchase_under_its_transaction(self) -> None:
        event = parse(postback())
        assert isinstance(event, Conversion)
        assert (event.identity, event.click_id, event.amount) == (SALE, CLICK_ID, Money(Decimal("29.95"), "USD"))
        assert (event.payment, event.subscription, event.aliases) == ("first", PURCHASE_ID, (PURCHASE_ID,))
        assert (event.event_id, event.event_type) == (f"auth:initial:{SALE_TRANSACTION}", "segpay.auth.initial")

    def test_the_form_body_is_the_same_sale(self) -> None:
        form = InboundRequest(
            "POST", query(None), urlencode(postback()).encode(), {"content-type": "application/x-www-form-urlencoded"}
        )
        assert SEGPAY.parse(SEGPAY.payload(form), CONTEXT) == parse(postback())

    def test_the_token_is_not_part_of_the_payload(self) -> None:
        assert "token" not in SEGPAY.payload(InboundRequest("GET", query(postback()), b""))

    @pytest.mark.parametrize("stage", ["Rebill", "Conversion", "Instantconversion", "REBILL"])
    def test_a_rebill_or_conversion_is_a_cycle_of_the_purchase_under_its_own_transaction(self, stage: str) -> None:
        event = parse({**rebill(), "stage": stage})
        assert isinstance(event, Conversion)
        assert (event.purchase_id, event.payment, event.subscription, event.click_id, event.aliases) == (
            REBILL_TRANSACTION,
            "cycle",
            PURCHASE_ID,
            None,
            (),
        )

    @pytest.mark.parametrize(
        ("trantype", "action", "kind"),
        [
            ("Credit", "Auth", "refunded"),
            ("refund", "Auth", "refunded"),
            ("Chargeback", "Auth", "charged_back"),
            ("Sale", "Void", "cancelled"),
        ],
    )
    def test_credits_chargebacks_and_voids_reverse_the_related_transaction(
        self, trantype: str, action: str, kind: str
    ) -> None:
        event = parse(reversal(trantype, action))
        assert isinstance(event, Reversal)
        assert (event.identities, event.kind, event.amount) == ((SALE,), kind, Money(Decimal("29.95"), "USD"))

    def test_a_reversal_without_a_related_transaction_names_the_purchase(self) -> None:
        event = parse({**reversal(), "relatedtranid": "", "price": ""})
        assert isinstance(event, Reversal)
        assert (event.identities, event.amount) == ((f"segpay#{PURCHASE_ID}",), None)

    @pytest.mark.parametrize("approved", ["No", "", "maybe"])
    def test_a_declined_sale_is_ignored(self, approved: str) -> None:
        assert isinstance(parse(postback(approved=approved)), Ignored)

    @pytest.mark.parametrize(
        "fields",
        [postback(stage="Expire"), postback(action="Probe", stage=""), postback(action="Enable", stage="Signup")],
    )
    def test_every_other_stage_or_action_is_ignored(self, fields: dict[str, str]) -> None:
        assert isinstance(parse(fields), Ignored)

    @pytest.mark.parametrize(
        "fields",
        [
            postback(tranid=""),
            postback(tranid="98765-4321"),
            postback(tranid="x" * 65),
            postback(tranid="９８７"),
            {**postback(), "purchaseid": ""},
            {**postback(), "purchaseid": "1234 5678"},
            postback(price="twenty"),
            postback(price="-1"),
            {**postback(), "currencycode": "US"},
        ],
    )
    def test_a_postback_without_its_ids_or_amount_is_malformed(self, fields: dict[str, str]) -> None:
        with pytest.raises(MalformedEvent):
            parse(fields)

    def test_a_parameter_sent_twice_with_different_values_is_malformed(self) -> None:
        form = InboundRequest(
            "POST",
            query({"tranid": "111"}),
            urlencode(postback()).encode(),
            {"content-type": "application/x-www-form-urlencoded"},
        )
        with pytest.raises(MalformedEvent):
            SEGPAY.payload(form)

    def test_the_token_is_added_when_sent(self) -> None:
        assert SEGPAY.sign_query("tranid=1&token=old", "new") == "token=new&tranid=1"


@pytest.mark.usefixtures("allowed")
class TestThroughTheHandler:
    def test_a_sale_becomes_one_get_answered_ok_and_its_form_redelivery_a_duplicate(
        self, invoke: Invoker, aws: Aws, sandbox: TrafficStarsSandbox
    ) -> None:
        first = deliver(invoke, postback())
        assert (first.status, first.text) == (200, "OK")
        again = deliver(invoke, postback(), post=True)
        assert (again.status, again.text) == (200, "OK")
        assert (first.headers[STATUS], again.headers[STATUS]) == ("sent", "duplicate")
        [received] = sandbox.state.received
        assert (received.click_id, received.params["value"], received.key_matched) == (CLICK_ID, "29.95", True)
        record = aws.record(SALE)
        assert record is not None and record["status"] == "sent"

    def test_a_rebill_is_sent_as_a_renewal_with_the_click_id_the_sale_brought(
        self, invoke: Invoker, aws: Aws, sandbox: TrafficStarsSandbox
    ) -> None:
        deliver(invoke, postback())
        reply = deliver(invoke, rebill())
        assert (reply.status, reply.text) == (200, "OK")
        assert [r.click_id for r in sandbox.state.received] == [CLICK_ID, CLICK_ID]
        record = aws.record(f"segpay#{REBILL_TRANSACTION}")
        assert record is not None and (record["goal"], record["status"]) == ("renewal", "sent")

    @pytest.mark.parametrize(("trantype", "status"), [("Credit", "refunded"), ("Chargeback", "charged_back")])
    def test_a_refund_or_chargeback_marks_the_sale_and_sends_nothing(
        self, invoke: Invoker, aws: Aws, sandbox: TrafficStarsSandbox, trantype: str, status: str
    ) -> None:
        deliver(invoke, postback())
        reply = deliver(invoke, reversal(trantype))
        assert (reply.status, reply.text, reply.headers[STATUS]) == (200, "OK", status)
        record = aws.record(SALE)
        assert record is not None and (record["status"], record["status_before_reversal"]) == (status, "sent")
        assert len(sandbox.state.received) == 1

    def test_a_decline_sends_and_stores_nothing(self, invoke: Invoker, aws: Aws, sandbox: TrafficStarsSandbox) -> None:
        reply = deliver(invoke, postback(approved="No"))
        assert (reply.status, reply.text, reply.headers[STATUS]) == (200, "OK", "ignored")
        assert sandbox.state.received == []
        assert [item for item in aws.items() if not item["pk"].startswith("subscription#")] == []

    @pytest.mark.parametrize(
        ("token", "source_ip", "status"),
        [("forged-token", SEGPAY_IP, 401), (None, SEGPAY_IP, 401), (TOKEN, "203.0.113.9", 403)],
    )
    def test_a_wrong_or_missing_token_or_an_address_outside_the_list_is_refused(
        self,
        invoke: Invoker,
        aws: Aws,
        sandbox: TrafficStarsSandbox,
        token: str | None,
        source_ip: str,
        status: int,
    ) -> None:
        reply = deliver(invoke, postback(), token=token, source_ip=source_ip)
        assert reply.status == status and "error" in reply.body and reply.text != "OK"
        assert aws.items() == [] and sandbox.state.received == []

    def test_malformed_ids_are_400_and_store_nothing(self, invoke: Invoker, aws: Aws) -> None:
        reply = deliver(invoke, postback(tranid="x" * 80))
        assert (reply.status, reply.body["error"]) == (400, "malformed_body")
        assert aws.items() == []


def test_with_no_allowlist_set_every_request_is_refused(
    invoke: Invoker, aws: Aws, sandbox: TrafficStarsSandbox, relay_env: pytest.MonkeyPatch
) -> None:
    relay_env.delenv("SEGPAY_ALLOWED_IPS", raising=False)
    reset_runtime()
    for source_ip in (SEGPAY_IP, "127.0.0.1", "203.0.113.9"):
        for post in (False, True):
            assert deliver(invoke, postback(), post=post, source_ip=source_ip).status == 403
    assert aws.items() == [] and sandbox.state.received == []


def test_any_turns_the_allowlist_off(
    invoke: Invoker, relay_env: pytest.MonkeyPatch, sandbox: TrafficStarsSandbox
) -> None:
    relay_env.setenv("SEGPAY_ALLOWED_IPS", "any")
    reset_runtime()
    reply = deliver(invoke, postback(), source_ip="203.0.113.9")
    assert (reply.status, reply.text) == (200, "OK")
    assert len(sandbox.state.received) == 1


SAMPLES = ("initial", "rebill", "chargeback")  # run in this order


def test_the_sample_events_are_segpays() -> None:
    assert {path.stem for path in samples("segpay")} == set(SAMPLES)


def test_the_sample_events_run_in_order(relay_env: pytest.MonkeyPatch, aws: Aws, sandbox: TrafficStarsSandbox) -> None:
    relay_env.setenv("SEGPAY_ALLOWED_IPS", "127.0.0.1")  # the samples come from loopback, as in the local run
    relay_env.setenv("SEGPAY_WEBHOOK_TOKEN", TOKEN)
    statuses = {}
    for stem in SAMPLES:
        status, body, event = run_sample(Path(__file__).resolve().parents[3] / "events" / "segpay" / f"{stem}.json")
        assert event["rawQueryString"].startswith("token=")  # added when sent, never written into the file
        statuses[stem] = (status, body)
    assert statuses == {stem: (200, {"text": "OK"}) for stem in SAMPLES}
    assert len(sandbox.state.received) == 2
    records = {
        stem: aws.record(f"segpay#{tranid}") for stem, tranid in (("initial", "987654321"), ("rebill", "987654400"))
    }
    assert {stem: record and record["status"] for stem, record in records.items()} == {
        "initial": "charged_back",  # the chargeback names the initial sale's transaction
        "rebill": "sent",
    }
