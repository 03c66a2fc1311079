"""Trackers and affiliate networks: the GET postback authenticated by a token (parameter or header, compared in
constant time), the raw query string as the conversion, a lead_code passed through or derived; then the same
through the real handler, moto and the HTTPS TrafficStars sandbox."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import pytest

from postback_relay.conversion import Conversion, Ignored, lead_code
from postback_relay.local.sandbox import TrafficStarsSandbox
from postback_relay.settings import Settings
from postback_relay.sources.base import MalformedEvent, SignatureError, SignatureMismatch
from postback_relay.sources.tracker import TRACKER
from tests.conftest import TEST_KEY, TEST_SOURCE_SECRETS, Aws
from tests.helpers import CLICK_ID, Invoker, Reply, run_sample, samples

TOKEN = TEST_SOURCE_SECRETS["postback_token"]
SETTINGS = Settings.from_env({"SECRET_ID": "s", "TABLE_NAME": "t", "ACCOUNT_CURRENCY": "USD"})


def query(**params: str) -> str:
    """The query string a tracker fires once its macros are filled in."""
    return urlencode({"click_id": CLICK_ID, **params})


def fire(invoke: Invoker, raw_query: str, headers: dict[str, str] | None = None) -> Reply:
    return invoke(b"", headers or {}, path="/postback", method="GET", query=raw_query)


def parse(raw_query: str, settings: Settings = SETTINGS) -> Any:
    return TRACKER.parse(parse_qsl(raw_query, keep_blank_values=True), settings)


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

    @pytest.mark.parametrize("status", ["rejected", "Declined", "pending", "hold", "trash"])
    def test_conversions_that_are_not_approved_are_ignored(self, status: str) -> None:
        assert isinstance(parse(query(status=status)), Ignored)

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
