"""The conversion model: click id format, which candidate wins, and a lead code fixed by identity."""

from __future__ import annotations

from postback_relay.core.conversion import Conversion, ParseContext, lead_code
from postback_relay.networks.trafficstars import CLICK_ID_PATTERN

CONTEXT = ParseContext(CLICK_ID_PATTERN)
normalize_click_id, pick_click_id = CONTEXT.click_id, CONTEXT.pick_click_id
VALID = "c86b8a88b91228911e723b93c65a5900bb49bc99"


def test_trafficstars_click_ids_are_40_hex_characters_case_folded() -> None:
    assert normalize_click_id(VALID) == VALID
    assert normalize_click_id(VALID.upper()) == VALID
    assert normalize_click_id(f"  {VALID}\n") == VALID
    for bad in ("", VALID[:-1], VALID + "0", "g" * 40, "{click_id}", None, 42):
        assert normalize_click_id(bad) is None


def test_the_first_valid_candidate_wins_and_the_first_raw_value_is_kept() -> None:
    assert pick_click_id([None, "", VALID]) == (VALID, VALID)
    assert pick_click_id(["{click_id}", VALID]) == (VALID, "{click_id}")
    assert pick_click_id(["not-a-click", None]) == (None, "not-a-click")
    assert pick_click_id([None, {"x": 1}]) == (None, None)
    assert pick_click_id(["x" * 500]) == (None, "x" * 200)


def test_identity_is_source_and_purchase_not_event() -> None:
    first = Conversion("stripe", "pi_1", "evt_a", "payment_intent.succeeded", VALID, None)
    second = Conversion("stripe", "pi_1", "evt_b", "checkout.session.completed", VALID, None)
    assert first.identity == second.identity == "stripe#pi_1"


def test_lead_code_is_stable_per_identity_and_distinct_across_identities() -> None:
    assert lead_code("stripe#pi_1") == lead_code("stripe#pi_1")
    assert lead_code("stripe#pi_1") != lead_code("stripe#pi_2")
    assert len({lead_code(f"stripe#pi_{n}") for n in range(1000)}) == 1000
