"""Reconciliation for Paddle Billing (README "Reconciliation"): the transactions whose notifications never arrived
are listed from Paddle's event stream (a local Paddle API on loopback here, serving `GET /events` as documented),
recorded with `origin: reconcile` and sent exactly once, under the same identity (`paddle#txn_…`) and with the
same lead code as their webhooks."""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import trustme

from postback_relay.core.conversion import lead_code
from postback_relay.core.reconcile import Tally, settled_window
from postback_relay.reconcile.api import ApiError
from postback_relay.relay.reconciling import NotReconcilable, listing_for, reconciler_for
from postback_relay.runtime import get_runtime, reset_runtime
from postback_relay_dev.sandbox import TrafficStarsSandbox
from tests.integration.platforms import test_paddle as paddle
from tests.integration.test_cli import LocalRun, local_run
from tests.integration.test_cli import run as run_cli
from tests.support.aws import Aws
from tests.support.constants import TEST_KEY, TEST_SOURCE_SECRETS, TEST_STRIPE_SECRET
from tests.support.helpers import Invoker
from tests.support.paddle_api import API_KEY, PaddleApi

HOUR = 3600.0
DAY = 86_400.0
__all__ = ["local_run"]  # the fixture (tests/integration/test_cli.py)


@pytest.fixture(scope="session")
def paddle_server(authority: trustme.CA) -> Iterator[PaddleApi]:
    server = PaddleApi(authority).start()
    yield server
    server.stop()


def put_secret(aws: Aws, **keys: str) -> None:
    aws.put_secret(
        {"trafficstars_key": TEST_KEY, "stripe_webhook_secret": TEST_STRIPE_SECRET, **TEST_SOURCE_SECRETS, **keys}
    )
    reset_runtime()


@pytest.fixture
def paddle_api(paddle_server: PaddleApi, relay_env: pytest.MonkeyPatch, aws: Aws) -> Iterator[PaddleApi]:
    """The local Paddle API as PADDLE_API_BASE, its API key in the relay's secret."""
    paddle_server.state.reset()
    relay_env.setenv("PADDLE_API_BASE", paddle_server.base_url)
    put_secret(aws, paddle_api_key=API_KEY)
    yield paddle_server
    paddle_server.state.reset()


def click(number: int) -> str:
    return hashlib.sha1(f"paddle-click-{number}".encode()).hexdigest()  # noqa: S324 - a 40-hex click id


def txn(number: int) -> str:
    return f"txn_{number:026d}"


def identity(number: int) -> str:
    return f"paddle#{txn(number)}"


def listed(event_type: str, data: dict[str, Any], number: int, moment: float) -> dict[str, Any]:
    """An event as `GET /events` lists it: the notification's envelope without `notification_id`. Its id grows
    with its time, as Paddle's ULID-like ids do."""
    envelope = paddle.notification(event_type, data, event_id=f"evt_{int(moment * 1000):013d}{number:013d}")
    del envelope["notification_id"]
    envelope["occurred_at"] = datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return envelope


def purchase(number: int, moment: float) -> dict[str, Any]:
    """Transaction ``number``'s transaction.completed."""
    return listed("transaction.completed", paddle.transaction(txn=txn(number), click_id=click(number)), number, moment)


def refund(number: int, moment: float, status: str = "approved") -> dict[str, Any]:
    """An adjustment refunding transaction ``number`` in full."""
    data = {**paddle.adjustment(status=status), "id": f"adj_{number:026d}", "transaction_id": txn(number)}
    return listed("adjustment.updated" if status == "approved" else "adjustment.created", data, number, moment)


def credit(number: int, moment: float) -> dict[str, Any]:
    """A credit adjustment: an adjustment event the relay reads and ignores (no money back to the buyer)."""
    data = {**paddle.adjustment(action="credit"), "id": f"adj_{number:026d}", "transaction_id": txn(number)}
    return listed("adjustment.created", data, number, moment)


def purchases(count: int, start: float | None = None) -> list[dict[str, Any]]:
    first = start if start is not None else time.time() - 5 * HOUR
    return [purchase(number, first + number) for number in range(count)]


def stream(count: int, purchase_every: int) -> list[dict[str, Any]]:
    """``count`` events a second apart, oldest first: every ``purchase_every``-th (from the first) a purchase,
    the others credits, so pages fill without each event costing a postback."""
    first = time.time() - 5 * HOUR
    return [(purchase if number % purchase_every == 0 else credit)(number, first + number) for number in range(count)]


def deliver(invoke: Invoker, event: dict[str, Any]) -> Any:
    """The event as Paddle notifies it, signed (a notification carries its own `notification_id`)."""
    return paddle.deliver(invoke, {**event, "notification_id": f"ntf_{uuid.uuid4().hex[:26]}"})


def reconcile(
    dry_run: bool = False, since: float | None = None, cursor: str | None = None, one_page: bool = False
) -> Tally:
    now = time.time()
    relay = get_runtime().relay
    start = since if since is not None else now - 7 * DAY
    window = settled_window(start, None, now, relay.settings.reconcile_settle_seconds)
    stop = (lambda: True) if one_page else None
    return reconciler_for(relay, "paddle", now).run(window, dry_run, cursor=cursor, stop=stop)


def accepted_lead_codes(sandbox: TrafficStarsSandbox) -> list[str]:
    return [r.params["lead_code"] for r in sandbox.state.received if r.answer.get("ok")]


class TestLostNotificationsAreRecovered:
    def test_the_transactions_never_delivered_are_recorded_and_sent_once_with_their_lead_codes(
        self, invoke: Invoker, paddle_api: PaddleApi, sandbox: TrafficStarsSandbox, aws: Aws
    ) -> None:
        events = purchases(10)
        paddle_api.state.events.extend(events)
        for event in events[:3]:  # the others were lost in an outage
            assert deliver(invoke, event).status == 200
        tally = reconcile()
        assert (tally.listed, tally.already_recorded, dict(tally.recovered), tally.errors) == (10, 3, {"sent": 7}, [])
        assert sorted(accepted_lead_codes(sandbox)) == sorted(lead_code(identity(n)) for n in range(10))
        recovered, webhook = aws.record(identity(9)), aws.record(identity(0))
        assert recovered is not None and (recovered["status"], recovered["origin"]) == ("sent", "reconcile")
        assert recovered["click_id"] == click(9) and recovered["first_event_id"] == events[9]["event_id"]
        assert webhook is not None and "origin" not in webhook

    def test_a_notification_arriving_after_the_reconcile_is_a_duplicate(
        self, invoke: Invoker, paddle_api: PaddleApi, sandbox: TrafficStarsSandbox
    ) -> None:
        [event] = purchases(1)
        paddle_api.state.events.append(event)
        assert reconcile().sent == 1
        late = deliver(invoke, event)
        assert (late.status, late.body["status"]) == (200, "duplicate")
        assert len(sandbox.state.received) == 1

    def test_a_second_run_sends_nothing_and_writes_nothing(
        self, paddle_api: PaddleApi, sandbox: TrafficStarsSandbox, aws: Aws
    ) -> None:
        paddle_api.state.events.extend(purchases(5))
        assert reconcile().sent == 5
        items = aws.raw_items()
        again = reconcile()
        assert (again.listed, again.already_recorded, sum(again.recovered.values())) == (5, 5, 0)
        assert aws.raw_items() == items and len(sandbox.state.received) == 5

    def test_only_completed_transactions_and_adjustments_are_asked_for(self, paddle_api: PaddleApi) -> None:
        reconcile()
        [request] = paddle_api.state.requests
        assert request.param("event_type") == "transaction.completed,adjustment.created,adjustment.updated"
        assert (request.headers["authorization"], request.headers["paddle-version"]) == (f"Bearer {API_KEY}", "1")

    def test_events_younger_than_the_settle_time_are_left_to_their_notifications(
        self, paddle_api: PaddleApi, sandbox: TrafficStarsSandbox
    ) -> None:
        paddle_api.state.events.extend(purchases(2, start=time.time() - 60))
        assert reconcile().listed == 0 and sandbox.state.received == []


class TestRefunds:
    def test_a_refund_it_finds_marks_the_delivered_conversion(
        self, invoke: Invoker, paddle_api: PaddleApi, aws: Aws
    ) -> None:
        [sale] = purchases(1)
        deliver(invoke, sale)
        paddle_api.state.events.append(refund(0, time.time() - 2 * HOUR))
        tally = reconcile()
        record = aws.record(identity(0))
        assert dict(tally.reversals) == {"refunded": 1} and record is not None and record["status"] == "refunded"

    def test_a_refunded_transaction_never_delivered_is_never_sent_though_its_refund_is_pages_later(
        self, paddle_api: PaddleApi, sandbox: TrafficStarsSandbox, aws: Aws
    ) -> None:
        """Transaction 0 is the oldest of 450 events (on the last page); its refund is the newest (on the first)."""
        paddle_api.state.events.extend(stream(450, purchase_every=50))
        paddle_api.state.events.append(refund(0, time.time() - HOUR))
        tally = reconcile()
        record = aws.record(identity(0))
        assert record is not None and record["status"] == "refunded"
        assert (tally.pages, tally.sent, dict(tally.reversals)) == (3, 8, {"refunded": 1})
        assert lead_code(identity(0)) not in accepted_lead_codes(sandbox) and len(sandbox.state.received) == 8

    def test_a_refund_still_pending_approval_reverses_nothing(
        self, paddle_api: PaddleApi, sandbox: TrafficStarsSandbox
    ) -> None:
        [sale] = purchases(1)
        paddle_api.state.events.extend([sale, refund(0, time.time() - 2 * HOUR, status="pending_approval")])
        tally = reconcile()
        assert (tally.sent, sum(tally.ignored.values()), dict(tally.reversals)) == (1, 1, {})


class TestPages:
    def test_every_page_is_read_newest_first_each_after_the_last(
        self, paddle_api: PaddleApi, sandbox: TrafficStarsSandbox
    ) -> None:
        events = stream(450, purchase_every=45)
        paddle_api.state.events.extend(events)
        tally = reconcile()
        assert (tally.listed, tally.sent, sum(tally.ignored.values())) == (450, 10, 440)
        assert (tally.pages, tally.cursor, tally.errors) == (3, None, [])
        first, second, third = paddle_api.state.listings()
        assert (first.param("order_by"), first.param("per_page"), first.param("after")) == ("id[DESC]", "200", None)
        newest_first = sorted((e["event_id"] for e in events), reverse=True)
        assert (second.param("after"), third.param("after")) == (newest_first[199], newest_first[399])

    def test_a_run_stopped_after_a_page_resumes_from_its_cursor_without_repeats(
        self, paddle_api: PaddleApi, sandbox: TrafficStarsSandbox
    ) -> None:
        paddle_api.state.events.extend(stream(250, purchase_every=60))  # 0 on the second page, 60…240 the first
        stopped = reconcile(one_page=True)
        assert (stopped.listed, stopped.sent, stopped.pages) == (200, 4, 1) and stopped.cursor is not None
        rest = reconcile(cursor=stopped.cursor)
        assert (rest.listed, rest.already_recorded, rest.sent, rest.cursor) == (50, 0, 1, None)
        assert sorted(accepted_lead_codes(sandbox)) == sorted(lead_code(identity(n)) for n in (0, 60, 120, 180, 240))

    def test_a_window_is_asked_for_by_time_and_nothing_before_it_is_listed(
        self, paddle_api: PaddleApi, sandbox: TrafficStarsSandbox
    ) -> None:
        old = purchases(3, start=time.time() - 3 * DAY)
        paddle_api.state.events.extend([*old, *purchases(2, start=time.time() - 5 * HOUR)])
        tally = reconcile(since=time.time() - DAY)
        assert (tally.listed, tally.sent) == (2, 2)
        since = datetime.fromisoformat(paddle_api.state.requests[0].param("from") or "").timestamp()
        assert time.time() - DAY - 60 <= since <= time.time() - DAY

    def test_were_from_and_to_not_applied_the_listing_still_keeps_to_the_window_and_stops_before_it(
        self, paddle_api: PaddleApi, sandbox: TrafficStarsSandbox
    ) -> None:
        start = time.time() - 30 * DAY
        old = [credit(number, start + number) for number in range(450)]
        paddle_api.state.events.extend([*old, *purchases(2), purchase(7, time.time() - 60)])  # the last: unsettled
        paddle_api.state.dated = False
        tally = reconcile(since=time.time() - DAY)
        assert (tally.listed, tally.sent, tally.cursor) == (2, 2, None)
        assert len(paddle_api.state.listings()) == 1  # its first page already reached before the window


class TestDryRun:
    def test_it_changes_nothing_and_shows_what_would_be_sent_with_the_key_redacted(
        self, invoke: Invoker, paddle_api: PaddleApi, sandbox: TrafficStarsSandbox, aws: Aws
    ) -> None:
        events = purchases(3)
        paddle_api.state.events.extend(events)
        deliver(invoke, events[0])
        items, received = aws.raw_items(), len(sandbox.state.received)
        tally = reconcile(dry_run=True)
        assert aws.raw_items() == items and len(sandbox.state.received) == received
        assert (tally.already_recorded, len(tally.would_record)) == (1, 2)
        shown = tally.would_record[0]
        assert (shown["conversion_id"], shown["status"], shown["click_id"]) == (identity(1), "sending", click(1))
        assert "key=***" in shown["postback_url"] and TEST_KEY not in str(tally.as_dict())


class TestTheApiPushesBack:
    def test_rate_limiting_slows_the_run_without_failing_it(
        self, paddle_api: PaddleApi, sandbox: TrafficStarsSandbox
    ) -> None:
        paddle_api.state.events.extend(purchases(3))
        paddle_api.state.throttle = 2
        tally = reconcile()
        assert (tally.sent, tally.errors) == (3, [])
        assert len(paddle_api.state.requests) == 3  # two 429s, then the page

    def test_a_wrong_or_revoked_key_is_reported_clearly_and_nothing_changes(
        self, paddle_api: PaddleApi, aws: Aws
    ) -> None:
        paddle_api.state.events.extend(purchases(3))
        paddle_api.state.key = "pdl_live_apikey_01rotated"  # the relay's key was revoked
        tally = reconcile()
        [error] = tally.errors
        assert error.startswith("credentials_refused: HTTP 403") and "invalid_token" in error
        assert API_KEY not in error and tally.listed == 0 and aws.items() == []

    def test_a_key_without_the_events_permission_is_refused_by_name(self, paddle_api: PaddleApi, aws: Aws) -> None:
        paddle_api.state.events.extend(purchases(3))
        paddle_api.state.permitted = False
        [error] = reconcile().errors
        assert error.startswith("credentials_refused: HTTP 403") and "forbidden" in error and API_KEY not in error

    def test_without_the_api_key_paddle_cannot_be_reconciled(self, paddle_api: PaddleApi, aws: Aws) -> None:
        put_secret(aws)
        with pytest.raises(NotReconcilable, match="paddle_api_key"):
            reconciler_for(get_runtime().relay, "paddle", time.time())

    def test_a_window_beyond_paddles_90_days_is_said(self, paddle_api: PaddleApi) -> None:
        tally = reconcile(since=time.time() - 120 * DAY)
        assert tally.notes == ["Paddle keeps events for 90 days: the part of the window before that was not listed"]
        since = datetime.fromisoformat(paddle_api.state.requests[0].param("from") or "").timestamp()
        assert since >= time.time() - 90 * DAY - 60


def test_only_the_live_account_is_reconciled_not_the_sandbox_route(paddle_api: PaddleApi) -> None:
    with pytest.raises(NotReconcilable, match="paddle-sandbox cannot be reconciled"):
        reconciler_for(get_runtime().relay, "paddle-sandbox", time.time())
    assert paddle_api.state.requests == []


class TestProbe:
    """What `postback-relay check` reads: one event."""

    def test_it_reads_one_event_and_fails_when_the_key_is_refused(self, paddle_api: PaddleApi) -> None:
        relay = get_runtime().relay
        listing = listing_for(relay.settings, relay.credential, "paddle", time.time())
        listing.probe()
        assert [(r.path, r.params) for r in paddle_api.state.requests] == [("/events", {"per_page": ["1"]})]
        paddle_api.state.key = "pdl_live_apikey_01rotated"
        with pytest.raises(ApiError, match="invalid_token"):
            listing.probe()


class TestTheCommand:
    """`postback-relay reconcile --source paddle` and `check` with --local, against what `make run` starts."""

    @pytest.fixture
    def local(self, local_run: LocalRun, paddle_server: PaddleApi, relay_env: pytest.MonkeyPatch) -> LocalRun:
        paddle_server.state.reset()
        relay_env.setenv("PADDLE_API_BASE", paddle_server.base_url)
        local_run.put_secret(
            {
                "trafficstars_key": TEST_KEY,
                "paddle_webhook_secret": TEST_SOURCE_SECRETS["paddle_webhook_secret"],
                "paddle_api_key": API_KEY,
            }
        )
        reset_runtime()
        return local_run

    def test_a_dry_run_then_a_run_recovers_the_lost_transactions_once(
        self,
        local: LocalRun,
        paddle_server: PaddleApi,
        sandbox: TrafficStarsSandbox,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        paddle_server.state.events.extend(purchases(3))
        dry = run_cli(capsys, "--local", "--json", "reconcile", "--source", "paddle", "--since", "7d", "--dry-run")
        assert dry.code == 0 and (dry.json()["listed"], len(dry.json()["would_record"])) == (3, 3)
        assert local.record(identity(0)) is None and sandbox.state.received == []
        done = run_cli(capsys, "--local", "--json", "reconcile", "--source", "paddle", "--since", "7d")
        assert done.code == 0 and (done.json()["sent"], done.json()["errors"]) == (3, [])
        record = local.record(identity(2))
        assert record is not None and record["origin"] == "reconcile" and API_KEY not in done.out + done.err

    def test_check_reads_one_event_with_the_key_and_fails_when_it_is_refused(
        self, local: LocalRun, paddle_server: PaddleApi, capsys: pytest.CaptureFixture[str]
    ) -> None:
        good = run_cli(capsys, "--local", "check")
        [line] = [row for row in good.out.splitlines() if "reconcile paddle" in row]
        assert "OK" in line and [r.params for r in paddle_server.state.requests] == [{"per_page": ["1"]}]
        paddle_server.state.key = "pdl_live_apikey_01rotated"
        bad = run_cli(capsys, "--local", "check")
        [line] = [row for row in bad.out.splitlines() if "reconcile paddle" in row]
        assert "FAIL" in line and "invalid_token" in line and bad.code == 1 and API_KEY not in bad.out
