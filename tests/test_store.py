"""The DynamoDB record: one conditional write per delivery, claims with leases, outcomes under the claim."""

from __future__ import annotations

from typing import Any

import pytest

from postback_relay.store import ConversionStore, StoreUnavailable
from tests.conftest import Aws

FIELDS = {"source": "stripe", "purchase_id": "pi_1", "status": "sending", "click_id": "c" * 40, "lead_code": "l1"}


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(aws: Aws, clock: Clock) -> ConversionStore:
    return ConversionStore(aws.dynamodb, aws.table_name, retention_days=90, clock=clock)


def begin(store: ConversionStore, event_id: str = "evt_1", fields: dict[str, Any] | None = None) -> Any:
    return store.begin("stripe#pi_1", fields or FIELDS, event_id, "checkout.session.completed", lease_seconds=30)


def test_the_first_delivery_creates_the_record_already_claimed(store: ConversionStore, aws: Aws) -> None:
    begun = begin(store)
    assert begun.created and begun.claim is not None and begun.existing is None
    record = aws.record("stripe#pi_1")
    assert record is not None
    assert record["status"] == "sending" and record["lease_token"] == begun.claim.token
    assert record["attempts"] == 1 and record["deliveries"] == 1 and record["event_ids"] == {"evt_1"}
    assert record["expires_at"] == 1_800_000_000 + 90 * 86400


def test_a_duplicate_costs_one_write_and_returns_the_record_unchanged(store: ConversionStore, aws: Aws) -> None:
    begin(store)
    aws.server.calls.clear()
    again = begin(store, "evt_2", {**FIELDS, "status": "sending", "click_id": "d" * 40})
    assert not again.created and again.claim is None
    assert again.existing is not None and again.existing["click_id"] == "c" * 40
    assert aws.server.calls == ["DynamoDB_20120810.UpdateItem"]
    record = aws.record("stripe#pi_1")
    assert record is not None and record["event_ids"] == {"evt_1", "evt_2"} and record["deliveries"] == 2
    assert record["click_id"] == "c" * 40 and record["attempts"] == 1


def test_a_record_not_to_be_sent_holds_no_claim(store: ConversionStore) -> None:
    begun = begin(store, fields={**FIELDS, "status": "no_click_id", "click_id": None})
    assert begun.created and begun.claim is None


def test_a_live_lease_cannot_be_claimed_an_expired_one_can(store: ConversionStore, clock: Clock) -> None:
    begin(store)
    assert store.claim("stripe#pi_1", 30) is None
    clock.now += 31
    claim = store.claim("stripe#pi_1", 30)
    assert claim is not None and claim.record["attempts"] == 2


def test_retry_pending_is_claimable_once(store: ConversionStore) -> None:
    first = begin(store).claim
    assert store.finish("stripe#pi_1", first, "retry_pending", {"trafficstars_answer": "HTTP 503"}, [{"n": 1}])
    claim = store.claim("stripe#pi_1", 30)
    assert claim is not None
    assert store.claim("stripe#pi_1", 30) is None


def test_an_outcome_is_written_only_under_the_claim_that_holds_the_lease(
    store: ConversionStore, clock: Clock, aws: Aws
) -> None:
    stale = begin(store).claim
    clock.now += 31
    fresh = store.claim("stripe#pi_1", 30)
    assert fresh is not None
    assert not store.finish("stripe#pi_1", stale, "sent", {}, [{"n": 1}])
    assert store.finish("stripe#pi_1", fresh, "sent", {"sent_at": "now"}, [{"n": 2, "ms": 1.5}])
    record = aws.record("stripe#pi_1")
    assert record is not None and record["status"] == "sent" and "lease_token" not in record
    assert [entry["n"] for entry in record["attempt_log"]] == [2]


def test_an_upgrade_claims_a_record_that_had_no_click_id(store: ConversionStore, aws: Aws) -> None:
    begin(store, fields={**FIELDS, "status": "no_click_id", "click_id": None})
    claim = store.claim("stripe#pi_1", 30, upgrade={"click_id": "e" * 40, "lead_code": "l9", "value": None})
    assert claim is not None and claim.record["click_id"] == "e" * 40 and claim.record["status"] == "sending"
    assert store.claim("stripe#pi_1", 30, upgrade={"click_id": "f" * 40}) is None


def test_a_reversal_marks_the_first_existing_identity(store: ConversionStore, aws: Aws) -> None:
    begin(store)
    marked = store.mark_reversal(("stripe#in_9", "stripe#pi_1"), "refunded", "evt_r", {"reversal_amount": "49.00"})
    assert marked == "stripe#pi_1"
    record = aws.record("stripe#pi_1")
    assert record is not None and (record["status"], record["status_before_reversal"]) == ("refunded", "sending")
    assert store.mark_reversal(("stripe#nothing",), "refunded", "evt_x", {}) is None
    assert aws.record("stripe#nothing") is None


def test_dynamodb_errors_become_store_unavailable(store: ConversionStore, aws: Aws) -> None:
    aws.server.fault = lambda environ: True
    with pytest.raises(StoreUnavailable, match="InternalServerError"):
        begin(store)


def test_a_missing_table_is_store_unavailable(aws: Aws, clock: Clock) -> None:
    store = ConversionStore(aws.dynamodb, "no-such-table", retention_days=90, clock=clock)
    with pytest.raises(StoreUnavailable, match="ResourceNotFoundException"):
        begin(store)
