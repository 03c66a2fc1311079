"""Trackers and affiliate networks: the GET postback authenticated by a token (parameter or header, compared in
constant time), the raw query string as the conversion, a lead_code passed through or derived; then the same
through the real handler, moto and the HTTPS TrafficStars sandbox."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import pytest

from postback_relay.core.conversion import Conversion, Ignored, ParseContext, Reversal, lead_code
from postback_relay.networks.trafficstars import CLICK_ID_PATTERN
from postback_relay.platforms.base import MalformedEvent, SignatureError, SignatureMismatch
from postback_relay.platforms.tracker import TRACKER
from postback_relay.settings import Settings
from postback_relay_dev.sandbox import TrafficStarsSandbox
from tests.support.aws import Aws
from tests.support.constants import TEST_KEY, TEST_SOURCE_SECRETS
from tests.support.helpers import CLICK_ID, Invoker, Reply, run_sample, samples

TOKEN = TEST_SOURCE_SECRETS["postback_token"]
CONTEXT = ParseContext(CLICK_ID_PATTERN)


def query(**params: str) -> str:
    """The query string a tracker fires once its macros are filled in."""
    return urlencode({"click_id": CLICK_ID, **params})


def fire(invoke: Invoker, raw_query: str, headers: dict[str, str] | None = None) -> Reply:
    return invoke(b"", headers or {}, path="/postback", method="GET", query=raw_query)


def parse(raw_query: str, context: ParseContext = CONTEXT) -> Any:
    return TRACKER.parse(parse_qsl(raw_query, keep_blank_values=True), context)


def verify(raw_query: str, headers: dict[str, str] | None = None, secrets: list[str] | None = None) -> None:
    TRACKER.verify(raw_query.encode(), headers or {}, secrets or [TOKEN], 0.0, 300)


class TestToken:
    def test_the_token_parameter_verifies(self) -> None:
        verify(query(token=TOKEN))

    def test_the_token_header_verifies(self) -> None:
        verify(query(), {"x-postback-token": TOKEN})

    def test_either_token_verifies_while_one_is_rolled(self) -> None:
        verify(query(token="new-token"), secrets=["old-token", "new-token"])

    def test_a_percent_encoded_token_is_compared_decoded(self) -> None:
        verify(query(token="a&b=c d"), secrets=["a&b=c d"])

    def test_a_wrong_token_is_a_mismatch(self) -> None:
        with pytest.raises(SignatureMismatch):
            verify(query(token="guess"))
        with pytest.raises(SignatureMismatch):
            verify(query(token="ü" + TOKEN[1:]))

    @pytest.mark.parametrize("raw", [query(), query(token=""), "token"])
    def test_no_token_is_refused(self, raw: str) -> None:
        with pytest.raises(SignatureError):
            verify(raw)


class TestPostbacks:
    def test_a_postback_is_a_conversion_with_its_lead_code_passed_through(self) -> None:
        event = parse(query(value="12.50", currency="EUR", lead_code="ord-7781", token=TOKEN))
        assert isinstance(event, Conversion)
        assert (event.click_id, event.lead_code, event.goal, event.livemode) == (CLICK_ID, "ord-7781", "purchase", True)
        assert event.identity == f"tracker#{CLICK_ID}:ord-7781"
        assert event.amount is not None and (str(event.amount.amount), event.amount.currency) == ("12.50", "EUR")

    def test_without_a_lead_code_the_identity_is_derived_from_the_other_parameters(self) -> None:
        first, again = parse(query(value="12.50")), parse(query(value="12.50", token=TOKEN, sub2="x"))
        assert first.lead_code is None and first.identity == again.identity
        assert parse(query(value="13.00")).identity != first.identity
        assert parse(query(value="12.50", kind="lead")).identity != first.identity

    def test_the_currency_defaults_to_the_account_currency(self) -> None:
        assert parse(query(value="5")).amount.currency == "USD"

    def test_no_value_means_no_amount(self) -> None:
        assert parse(query()).amount is None
        assert parse(query(value="")).amount is None

    @pytest.mark.parametrize("kind", ["purchase", "renewal", "lead", "LEAD"])
    def test_the_kind_chooses_the_goal(self, kind: str) -> None:
        assert parse(query(kind=kind)).goal == kind.lower()

    def test_clickid_is_read_too(self) -> None:
        assert parse(urlencode({"clickid": CLICK_ID})).click_id == CLICK_ID

    def test_an_unfilled_macro_is_kept_raw_as_an_invalid_click_id(self) -> None:
        event = parse("click_id={clickid}&value=3")
        assert (event.click_id, event.raw_click_id) == (None, "{clickid}")

    @pytest.mark.parametrize(
        "status", ["", "approved", "Approved", "approve", "sale", "SALE", "confirmed", "rebill", "1"]
    )
    def test_no_status_or_an_approved_one_is_a_conversion(self, status: str) -> None:
        event = parse(query(value="12.50", lead_code="ord-7781", status=status))
        assert isinstance(event, Conversion) and event.identity == f"tracker#{CLICK_ID}:ord-7781"

    @pytest.mark.parametrize("status", ["pending", "Hold", "lead", "wait", "2", "5", "expired", "approved_maybe"])
    def test_any_status_not_approved_is_ignored(self, status: str) -> None:
        event = parse(query(value="12.50", status=status))
        assert isinstance(event, Ignored) and repr(status.lower()) in event.reason

    def test_a_long_unknown_status_is_echoed_shortened(self) -> None:
        event = parse(query(status="x" * 5000))
        assert isinstance(event, Ignored) and len(event.reason) < 100 and repr("x" * 50) in event.reason

    def test_the_approved_statuses_are_configurable(self) -> None:
        settings = Settings.from_env({"SECRET_ID": "s", "TABLE_NAME": "t", "POSTBACK_APPROVED_STATUSES": "Lead, ok"})
        context = ParseContext(CLICK_ID_PATTERN, postback_approved_statuses=settings.postback_approved_statuses)
        assert isinstance(parse(query(status="lead"), context), Conversion)
        assert isinstance(parse(query(status="OK"), context), Conversion)
        assert isinstance(parse(query(status="approved"), context), Ignored)
        assert isinstance(parse(query(), context), Conversion)

    @pytest.mark.parametrize(
        ("status", "kind"),
        [
            ("refunded", "refunded"),
            ("refund", "refunded"),
            ("chargeback", "charged_back"),
            ("Chargeback", "charged_back"),
            ("reversed", "cancelled"),
            ("rejected", "cancelled"),
            ("declined", "cancelled"),
            ("cancelled", "cancelled"),
            ("trash", "cancelled"),
        ],
    )
    def test_a_reversal_word_reverses_the_conversion_the_postback_would_have_been(self, status: str, kind: str) -> None:
        for params in ({"lead_code": "ord-7781", "value": "12.50"}, {"value": "12.50", "currency": "EUR"}, {}):
            sale = parse(query(**params, status="sale"))
            reversal = parse(query(**params, status=status, sub1="refund-desk"))
            assert isinstance(sale, Conversion) and isinstance(reversal, Reversal)
            assert (reversal.identities, reversal.kind, reversal.event_type) == (
                (sale.identity,),
                kind,
                f"postback.{status.lower()}",
            )
            assert reversal.event_id != sale.event_id
        with_lead_code = parse(query(lead_code="ord-7781", value="3", status=status))
        assert with_lead_code.identities == (f"tracker#{CLICK_ID}:ord-7781",)
        assert with_lead_code.amount is not None and str(with_lead_code.amount.amount) == "3"
        # Without a lead code the identity is the kind, value and currency: another value is another conversion.
        assert parse(query(value="9", status=status)).identities != (parse(query(value="12.50")).identity,)

    @pytest.mark.parametrize(
        "raw",
        [
            f"click_id={CLICK_ID}&clickid={CLICK_ID.upper()}",
            f"click_id={CLICK_ID}&clickid=",
            f"click_id=&clickid={CLICK_ID}",
            f"click_id={CLICK_ID}&clickid=%20{CLICK_ID}%20",
        ],
    )
    def test_click_id_and_clickid_agreeing_are_one_click_id(self, raw: str) -> None:
        event = parse(raw)
        assert isinstance(event, Conversion) and event.click_id == CLICK_ID

    def test_an_empty_click_id_is_an_organic_conversion_and_ignored(self) -> None:
        assert isinstance(parse("click_id=&value=3"), Ignored)

    @pytest.mark.parametrize(
        "raw",
        [
            "value=3",
            query(kind="refund"),
            query(value="ten"),
            query(value="-1"),
            query(currency="dollars", value="1"),
            query(lead_code="has space"),
            query(lead_code="x" * 101),
            f"{query()}&click_id={CLICK_ID}",
            f"click_id={CLICK_ID}&clickid={'b' * 40}",
            f"clickid={'b' * 40}&click_id={CLICK_ID}&status=pending",
            "click_id={clickid}&clickid=abc",
            query(status="sale") + "&status=refunded",
            query(value="5") + "&value=50",
            "status=refunded",
        ],
    )
    def test_malformed_postbacks_are_refused(self, raw: str) -> None:
        with pytest.raises(MalformedEvent):
            parse(raw)


class TestThroughTheHandler:
    def test_a_postback_becomes_one_postback_with_the_trackers_lead_code(
        self, invoke: Invoker, aws: Aws, sandbox: TrafficStarsSandbox
    ) -> None:
        pk = f"tracker#{CLICK_ID}:ord-7781"
        reply = fire(invoke, query(value="12.50", lead_code="ord-7781", token=TOKEN))
        assert (reply.status, reply.body) == (200, {"status": "sent", "conversion_id": pk})
        [received] = sandbox.state.received
        assert (received.click_id, received.params["lead_code"], received.params["value"]) == (
            CLICK_ID,
            "ord-7781",
            "12.50",
        )
        record = aws.record(pk)
        assert record is not None and (record["status"], record["source"], record["lead_code"]) == (
            "sent",
            "tracker",
            "ord-7781",
        )

    def test_a_tracker_firing_again_sends_one_postback(
        self, invoke: Invoker, aws: Aws, sandbox: TrafficStarsSandbox
    ) -> None:
        replies = [fire(invoke, query(value="9.99", token=TOKEN)) for _ in range(3)]
        assert [r.body["status"] for r in replies] == ["sent", "duplicate", "duplicate"]
        [received] = sandbox.state.received
        assert received.params["lead_code"] == lead_code(replies[0].body["conversion_id"])

    def test_a_conversion_at_a_payout_of_0_is_still_counted(
        self, invoke: Invoker, sandbox: TrafficStarsSandbox
    ) -> None:
        """The $0 rule is for payment platforms: a tracker approved this lead or sale, whatever it paid."""
        replies = [
            fire(invoke, query(kind="lead", value="0", token=TOKEN)),
            fire(invoke, query(value="0", token=TOKEN)),
        ]
        assert [r.body["status"] for r in replies] == ["sent", "sent"]
        assert len(sandbox.state.received) == 2

    def test_the_token_header_is_accepted(self, invoke: Invoker, sandbox: TrafficStarsSandbox) -> None:
        assert fire(invoke, query(), {"X-Postback-Token": TOKEN}).body["status"] == "sent"

    def test_a_lead_goes_to_the_lead_goal_in_the_query_form(
        self, invoke: Invoker, relay_env: pytest.MonkeyPatch, sandbox: TrafficStarsSandbox
    ) -> None:
        relay_env.setenv("TRAFFICSTARS_URL_FORM", "query")
        relay_env.setenv("TRAFFICSTARS_GOAL_PURCHASE", "1101")
        relay_env.setenv("TRAFFICSTARS_GOAL_LEAD", "0")
        fire(invoke, query(kind="lead", token=TOKEN))
        fire(invoke, query(value="20", token=TOKEN))
        assert [(r.form, r.params["goalid"]) for r in sandbox.state.received] == [("query", "0"), ("query", "1101")]

    def test_a_wrong_or_missing_token_is_401_and_stores_nothing(
        self, invoke: Invoker, aws: Aws, sandbox: TrafficStarsSandbox
    ) -> None:
        for reply in (fire(invoke, query(token="guess")), fire(invoke, query()), fire(invoke, "")):
            assert (reply.status, reply.body["error"]) == (401, "invalid_signature")
        assert aws.items() == [] and sandbox.state.received == []

    def test_a_rejected_conversion_is_200_with_nothing_stored(
        self, invoke: Invoker, aws: Aws, sandbox: TrafficStarsSandbox
    ) -> None:
        reply = fire(invoke, query(status="rejected", token=TOKEN))
        assert (reply.status, reply.body["status"]) == (200, "ignored")
        assert aws.items() == [] and sandbox.state.received == []

    def test_a_lead_held_then_rejected_is_never_sent_nor_stored(
        self, invoke: Invoker, aws: Aws, sandbox: TrafficStarsSandbox
    ) -> None:
        held = fire(invoke, query(value="30", lead_code="L-1", status="hold", token=TOKEN))
        rejected = fire(invoke, query(value="30", lead_code="L-1", status="rejected", token=TOKEN))
        assert [(r.status, r.body["status"]) for r in (held, rejected)] == [(200, "ignored"), (200, "ignored")]
        assert rejected.body["reason"] == "no recorded purchase for this reversal"
        assert aws.items() == [] and sandbox.state.received == []

    @pytest.mark.parametrize(("status", "kind"), [("refunded", "refunded"), ("chargeback", "charged_back")])
    def test_a_reversal_marks_the_sent_conversion_and_sends_nothing(
        self, invoke: Invoker, aws: Aws, sandbox: TrafficStarsSandbox, status: str, kind: str
    ) -> None:
        pk = f"tracker#{CLICK_ID}:ord-7781"
        sale = fire(invoke, query(value="12.50", lead_code="ord-7781", status="sale", token=TOKEN))
        reversal = fire(invoke, query(value="12.50", lead_code="ord-7781", status=status, token=TOKEN))
        assert (sale.body["status"], reversal.status, reversal.body) == (
            "sent",
            200,
            {"status": kind, "conversion_id": pk},
        )
        assert len(sandbox.state.received) == 1
        record = aws.record(pk)
        assert record is not None and (record["status"], record["reversal_kind"], record["reversal_amount"]) == (
            kind,
            kind,
            "12.50",
        )
        assert len(aws.items()) == 1

    def test_a_reversal_without_a_lead_code_finds_the_sale_by_kind_value_and_currency(
        self, invoke: Invoker, aws: Aws, sandbox: TrafficStarsSandbox
    ) -> None:
        sale = fire(invoke, query(value="9.99", currency="USD", token=TOKEN))
        other = fire(invoke, query(value="5.00", status="reversed", token=TOKEN))
        reversal = fire(invoke, query(value="9.99", status="reversed", token=TOKEN))
        assert other.body["status"] == "ignored"
        assert reversal.body == {"status": "cancelled", "conversion_id": sale.body["conversion_id"]}
        record = aws.record(sale.body["conversion_id"])
        assert record is not None and record["status"] == "cancelled"
        assert len(sandbox.state.received) == 1

    @pytest.mark.parametrize("status", ["pending", "lead", "2", "unknown-word"])
    def test_a_status_not_approved_is_200_ignored_with_nothing_stored(
        self, invoke: Invoker, aws: Aws, sandbox: TrafficStarsSandbox, status: str
    ) -> None:
        reply = fire(invoke, query(value="10", status=status, token=TOKEN))
        assert (reply.status, reply.body["status"]) == (200, "ignored")
        assert aws.items() == [] and sandbox.state.received == []

    def test_the_approved_statuses_are_the_setting(
        self, invoke: Invoker, aws: Aws, relay_env: pytest.MonkeyPatch, sandbox: TrafficStarsSandbox
    ) -> None:
        relay_env.setenv("POSTBACK_APPROVED_STATUSES", "lead,2")
        replies = [
            fire(invoke, query(status=status, lead_code=f"L{n}", token=TOKEN))
            for n, status in enumerate(["lead", "2", "sale"])
        ]
        assert [r.body["status"] for r in replies] == ["sent", "sent", "ignored"]
        assert [r.params["lead_code"] for r in sandbox.state.received] == ["L0", "L1"]

    def test_conflicting_click_ids_are_400_and_nothing_is_sent(
        self, invoke: Invoker, aws: Aws, sandbox: TrafficStarsSandbox
    ) -> None:
        for raw in (
            f"click_id={CLICK_ID}&clickid={'b' * 40}&token={TOKEN}",
            f"clickid={CLICK_ID}&click_id={'b' * 40}&value=5&token={TOKEN}",
            f"{query(status='sale', token=TOKEN)}&status=refunded",
        ):
            reply = fire(invoke, raw)
            assert (reply.status, reply.body["error"]) == (400, "malformed_body")
        assert aws.items() == [] and sandbox.state.received == []

    def test_malformed_postbacks_are_400(self, invoke: Invoker, aws: Aws) -> None:
        for raw in (f"value=3&token={TOKEN}", query(kind="refund", token=TOKEN)):
            reply = fire(invoke, raw)
            assert (reply.status, reply.body["error"]) == (400, "malformed_body")
        assert aws.items() == []

    def test_without_a_postback_token_the_route_is_404_and_accepts_nothing(self, invoke: Invoker, aws: Aws) -> None:
        aws.put_secret({"trafficstars_key": TEST_KEY})
        reply = fire(invoke, query(token=TOKEN))
        assert (reply.status, reply.body["error"]) == (404, "source_not_configured")
        assert aws.items() == []

    def test_the_token_appears_in_no_log_line_item_or_answer(
        self,
        invoke: Invoker,
        aws: Aws,
        sandbox: TrafficStarsSandbox,
        capfd: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        replies = [
            fire(invoke, query(value="5", token=TOKEN)),
            fire(invoke, query(value="5", token=TOKEN)),
            fire(invoke, query(value="5", kind="nonsense", token=TOKEN)),
            fire(invoke, query(value="5", token=TOKEN + "x")),
        ]
        out, err = capfd.readouterr()
        logged = [json.dumps(record.__dict__, default=str) for record in caplog.records]  # with every extra field
        written = out + err + "".join(logged) + json.dumps(aws.raw_items()) + json.dumps([r.body for r in replies])
        assert "postback handled" in caplog.text  # the logs were captured
        assert TOKEN not in written and TEST_KEY not in written


EXPECTED = {"postback-purchase": "sent", "postback-lead": "sent", "postback-rejected": "ignored"}


def test_there_is_a_sample_for_every_kind_of_postback_and_an_ignored_one() -> None:
    assert {path.stem for path in samples("tracker")} == set(EXPECTED)


def test_the_samples_carry_no_token() -> None:
    for path in samples("tracker"):
        event = json.loads(path.read_text())
        assert "token" not in dict(parse_qsl(event["rawQueryString"])) and "x-postback-token" not in event["headers"]


@pytest.mark.parametrize("path", samples("tracker"), ids=lambda p: p.stem)
def test_every_sample_event_goes_through_the_handler(
    path: Path, relay_env: pytest.MonkeyPatch, aws: Aws, sandbox: TrafficStarsSandbox
) -> None:
    relay_env.setenv("POSTBACK_TOKEN", TOKEN)
    status, body, event = run_sample(path)  # the token is added as a header when sent, as `make send` does
    assert (event["rawPath"], event["requestContext"]["http"]["method"]) == ("/postback", "GET")
    assert (status, body["status"]) == (200, EXPECTED[path.stem])
