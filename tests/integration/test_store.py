"""The DynamoDB record: each declared transition is one conditional write, refused outside its from-states;
claims with leases; outcomes only under the claim; reversals final for sending; the due index holds only
what is waiting or in flight."""

from __future__ import annotations

from typing import Any

import pytest

from postback_relay.aws.store import Applied, Claim, ConversionStore, StoreUnavailable
from postback_relay.core.record import Status, violations
from tests.support.aws import Aws

PK = "stripe#pi_1"
FIELDS = {"source": "stripe", "purchase_id": "pi_1", "click_id": "c" * 40, "lead_code": "l1"}


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


def create(
    store: ConversionStore, event_id: str = "evt_1", status: Status = Status.SENDING, **fields: Any
) -> Claim | Applied:
    return store.create(PK, status, {**FIELDS, **fields}, event_id, "checkout.session.completed", lease_seconds=30)


def claimed(result: Claim | Applied) -> Claim:
    assert isinstance(result, Claim), result
    return result


def sound(aws: Aws) -> dict[str, Any]:
    """The record, after checking it against the declared field-per-state rules."""
    record = aws.record(PK)
    assert record is not None
    assert violations(record) == []
    return record


def test_the_first_delivery_creates_the_record_already_claimed(store: ConversionStore, aws: Aws) -> None:
    claim = claimed(create(store))
    record = sound(aws)
    assert record["status"] == "sending" and record["lease_token"] == claim.token
    assert record["attempts"] == 1 and record["deliveries"] == 1 and record["event_ids"] == {"evt_1"}
    assert record["expires_at"] == 1_800_000_000 + 90 * 86400
    assert record["due_at"] == record["lease_until"]  # a sender that dies holding it is found by the sweep


def test_a_second_create_is_refused_and_returns_the_record_as_it_was(store: ConversionStore, aws: Aws) -> None:
    create(store)
    aws.server.calls.clear()
    again = create(store, "evt_2", click_id="d" * 40)
    assert isinstance(again, Applied) and not again.done
    assert again.record is not None and again.record.click_id == "c" * 40  # read from the refused write
    assert aws.server.calls == ["DynamoDB_20120810.UpdateItem"]
    assert sound(aws)["event_ids"] == {"evt_1"}


def test_a_duplicate_delivery_notes_the_event_and_changes_no_status_lease_or_due_field(
    store: ConversionStore, aws: Aws
) -> None:
    create(store)
    before = sound(aws)
    noted = store.note_delivery(PK, "evt_2", "payment_intent.succeeded")
    after = sound(aws)
    assert noted is not None and noted.deliveries == 2
    assert after["event_ids"] == {"evt_1", "evt_2"} and after["event_types"] >= {"payment_intent.succeeded"}
    for field in ("status", "lease_token", "lease_until", "due_shard", "due_at", "attempts"):
        assert after[field] == before[field]


def test_a_duplicate_of_a_finished_conversion_does_not_put_it_back_in_the_due_index(
    store: ConversionStore, aws: Aws
) -> None:
    claim = claimed(create(store))
    assert store.finish(PK, claim, Status.SENT, {"sent_at": "now"}, [{"n": 1}]).done
    store.note_delivery(PK, "evt_2", "invoice.paid")
    record = sound(aws)
    assert record["status"] == "sent" and "due_at" not in record and "due_shard" not in record
    assert list(store.due(2_000_000_000)) == []


def test_a_record_not_to_be_sent_holds_no_claim_and_is_not_due(store: ConversionStore, aws: Aws) -> None:
    held = create(store, status=Status.NO_CLICK_ID, click_id=None)
    assert isinstance(held, Applied) and held.done
    record = sound(aws)
    assert record["status"] == "no_click_id" and record["attempts"] == 0 and "due_at" not in record


def test_a_live_lease_cannot_be_claimed_an_expired_one_can(store: ConversionStore, clock: Clock) -> None:
    create(store)
    refused = store.claim(PK, 30)
    assert isinstance(refused, Applied) and refused.record is not None and refused.record.status is Status.SENDING
    clock.now += 31
    assert claimed(store.claim(PK, 30)).record.attempts == 2


def test_retry_pending_is_claimable_once_and_only_when_due(store: ConversionStore, clock: Clock, aws: Aws) -> None:
    first = claimed(create(store))
    due = clock.now + 60
    assert store.finish(PK, first, Status.RETRY_PENDING, {"trafficstars_answer": "HTTP 503"}, [{"n": 1}], due).done
    assert "lease_token" not in sound(aws) and sound(aws)["due_at"] == due
    assert not isinstance(store.claim(PK, 30), Claim)  # not yet due
    clock.now = due
    claimed(store.claim(PK, 30))
    assert not isinstance(store.claim(PK, 30), Claim)


def test_an_outcome_is_written_only_under_the_claim_that_holds_the_lease(
    store: ConversionStore, clock: Clock, aws: Aws
) -> None:
    stale = claimed(create(store))
    clock.now += 31
    fresh = claimed(store.claim(PK, 30))
    assert not store.finish(PK, stale, Status.SENT, {}, [{"n": 1}]).done
    assert store.finish(PK, fresh, Status.SENT, {"sent_at": "now"}, [{"n": 2, "ms": 1.5}]).done
    record = sound(aws)
    assert record["status"] == "sent" and "lease_token" not in record and "due_at" not in record
    assert [entry["n"] for entry in record["attempt_log"]] == [2]


def test_an_upgrade_claims_a_record_that_had_no_click_id(store: ConversionStore, aws: Aws) -> None:
    create(store, status=Status.NO_CLICK_ID, click_id=None)
    claim = store.upgrade(PK, {"click_id": "e" * 40, "lead_code": "l9"}, "evt_2", "checkout.session.completed", 30)
    assert claim is not None and claim.record.click_id == "e" * 40 and claim.record.status is Status.SENDING
    assert store.upgrade(PK, {"click_id": "f" * 40}, "evt_3", "checkout.session.completed", 30) is None
    assert sound(aws)["deliveries"] == 2


def test_a_reversal_marks_every_existing_identity_it_names(store: ConversionStore, aws: Aws) -> None:
    create(store)
    marked = store.mark_reversal(("stripe#in_9", PK), "refunded", "evt_r", {"reversal_amount": "49.00"})
    assert marked == [PK]
    record = sound(aws)
    assert (record["status"], record["status_before_reversal"]) == ("refunded", "sending")
    assert store.mark_reversal(("stripe#nothing",), "refunded", "evt_x", {}) == []
    assert aws.record("stripe#nothing") is None


def test_an_alias_leads_a_reversal_to_the_conversion_recorded_under_another_id(
    store: ConversionStore, aws: Aws
) -> None:
    store.create("stripe#in_1", Status.SENDING, FIELDS, "evt_1", "invoice.paid", lease_seconds=30)
    store.add_aliases("stripe#in_1", ("stripe#pi_9", "stripe#ch_9"))
    store.add_aliases("stripe#in_1", ("stripe#pi_9",))  # a redelivered link changes nothing
    assert store.resolve(("stripe#pi_9",)) == ((), ("stripe#in_1",))
    assert store.resolve(("stripe#ch_9", "stripe#in_1")) == (("stripe#in_1",), ())
    assert store.resolve(("stripe#pi_unknown",)) == ((), ())
    assert store.mark_reversal(store.resolve(("stripe#pi_9",)).aliased, "charged_back", "evt_d", {}) == ["stripe#in_1"]
    record = aws.record("stripe#in_1")
    assert record is not None and violations(record) == []
    assert (record["status"], record["dispute_status"], "due_at" in record) == ("charged_back", "opened", False)
    alias = aws.record("alias#stripe#pi_9")
    assert alias is not None and alias["alias_of"] == {"stripe#in_1"} and "status" not in alias
    assert [item["pk"] for item in store.select()] == ["stripe#in_1"]  # operators' listings skip the aliases


def test_a_reversal_of_nothing_recorded_is_kept_so_the_late_purchase_is_born_reversed(
    store: ConversionStore, aws: Aws
) -> None:
    assert store.tombstone(PK, "stripe", "pi_1", "refunded", "evt_r", {"reversal_amount": "49.00"})
    assert not store.tombstone(PK, "stripe", "pi_1", "refunded", "evt_r2", {})  # one is enough
    assert not store.tombstone("stripe#pi_2", "stripe", "pi_2", "partially_refunded", "evt_p", {})
    late = create(store, event_id="evt_paid")
    assert isinstance(late, Applied) and not late.done and late.record is not None
    assert late.record.status is Status.REFUNDED
    record = sound(aws)
    assert (record["status"], record["reversal_amount"], record["event_ids"]) == ("refunded", "49.00", {"evt_r"})
    assert aws.record("stripe#pi_2") is None


def test_a_dispute_won_is_noted_and_a_dispute_lost_is_a_chargeback(store: ConversionStore, aws: Aws) -> None:
    claim = claimed(create(store))
    store.finish(PK, claim, Status.SENT, {}, [{"outcome": "ok"}])
    assert store.mark_reversal((PK,), "dispute_won", "evt_w", {}) == [PK]
    assert (sound(aws)["status"], sound(aws)["dispute_status"]) == ("sent", "won")
    assert store.mark_reversal((PK,), "dispute_lost", "evt_l", {}) == [PK]
    record = sound(aws)
    assert (record["status"], record["dispute_status"], record["status_before_reversal"]) == (
        "charged_back",
        "lost",
        "sent",
    )
    store.mark_reversal((PK,), "refunded", "evt_r", {})  # a second reversal keeps what it was before the first
    assert sound(aws)["status_before_reversal"] == "sent"


def test_a_subscription_remembers_its_first_click_id_and_its_first_paid_payment(
    store: ConversionStore, aws: Aws
) -> None:
    memory_pk = "subscription#stripe#sub_1"
    assert store.follow_subscription(memory_pk, None, "stripe#in_2", known_only=True) is None  # never seen start
    assert aws.record(memory_pk) is None
    started = store.follow_subscription(memory_pk, "a" * 40, None, known_only=False)
    assert started is not None and started == ("a" * 40, None)
    first = store.follow_subscription(memory_pk, "b" * 40, "stripe#in_2", known_only=True)
    assert first == ("a" * 40, "stripe#in_2")  # the click that started it is kept
    assert store.follow_subscription(memory_pk, None, "stripe#in_2", known_only=True) == ("a" * 40, "stripe#in_2")
    assert store.follow_subscription(memory_pk, None, "stripe#in_3", known_only=True) == ("a" * 40, "stripe#in_2")
    assert list(store.select()) == []


def test_a_refund_during_a_send_wins_over_the_sends_outcome_which_is_still_logged(
    store: ConversionStore, clock: Clock, aws: Aws
) -> None:
    claim = claimed(create(store))
    store.mark_reversal((PK,), "refunded", "evt_r", {})
    assert "lease_token" not in sound(aws) and "due_at" not in sound(aws)
    assert not store.finish(PK, claim, Status.RETRY_PENDING, {}, [{"outcome": "retryable"}], clock.now + 5).done
    record = sound(aws)
    assert record["status"] == "refunded" and record["status_before_reversal"] == "retry_pending"
    assert [entry["outcome"] for entry in record["attempt_log"]] == ["retryable"]
    clock.now += 3600
    assert not isinstance(store.claim(PK, 30), Claim)  # nothing takes it back to sending
    assert not store.reopen(PK)


def test_a_partial_refund_is_noted_and_changes_no_status(store: ConversionStore, aws: Aws) -> None:
    claimed(create(store))
    store.mark_reversal((PK,), "partially_refunded", "evt_p", {"reversal_amount": "10.00"})
    record = sound(aws)
    assert (record["status"], record["reversal_kind"], record["reversal_amount"]) == (
        "sending",
        "partially_refunded",
        "10.00",
    )


def test_reopen_takes_failed_rejected_and_waiting_records_back_due_now(
    store: ConversionStore, clock: Clock, aws: Aws
) -> None:
    claim = claimed(create(store))
    store.finish(PK, claim, Status.FAILED, {}, [{"n": 1}])
    assert list(store.due(clock.now + 10)) == []
    assert store.reopen(PK)
    record = sound(aws)
    assert (record["status"], record["due_at"], record["replays"]) == ("retry_pending", clock.now, 1)
    assert [due.pk for due in store.due(clock.now)] == [PK]


def test_the_due_index_is_read_to_its_end_oldest_first(store: ConversionStore, clock: Clock) -> None:
    for n in range(25):
        clock.now = 1_800_000_000.0 + n
        store.create(f"stripe#pi_{n:02}", Status.SENDING, FIELDS, f"evt_{n}", "checkout.session.completed", 30)
    found = [due.pk for due in store.due(2_000_000_000)]
    assert found == [f"stripe#pi_{n:02}" for n in range(25)]


def test_dynamodb_errors_become_store_unavailable(store: ConversionStore, aws: Aws) -> None:
    aws.server.fault = lambda environ: True
    with pytest.raises(StoreUnavailable, match="InternalServerError"):
        create(store)


def test_a_missing_table_is_store_unavailable(aws: Aws, clock: Clock) -> None:
    store = ConversionStore(aws.dynamodb, "no-such-table", retention_days=90, clock=clock)
    with pytest.raises(StoreUnavailable, match="ResourceNotFoundException"):
        create(store)


def test_a_store_without_retention_reads_and_replays_but_creates_nothing(
    store: ConversionStore, aws: Aws, clock: Clock
) -> None:
    assert store.finish(PK, claimed(create(store)), Status.FAILED, {}, []).done
    replaying = ConversionStore(aws.dynamodb, aws.table_name, clock=clock)
    assert [record["pk"] for record in replaying.select(("failed",))] == [PK]
    assert replaying.reopen(PK)
    assert sound(aws)["status"] == "retry_pending"
    with pytest.raises(ValueError, match="retention_days"):
        create(replaying, event_id="evt_2")
    with pytest.raises(ValueError, match="retention_days"):
        replaying.add_aliases(PK, ("in_1",))
