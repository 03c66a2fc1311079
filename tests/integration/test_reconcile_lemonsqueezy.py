"""Lemon Squeezy reconciliation only reports (README "Reconciliation"): its API's orders carry no custom data, so no
click id, and a run records and sends nothing. It lists the paid orders whose webhooks the relay never received,
each by its identity, number and date, with the fix: resend each from Lemon Squeezy's dashboard. A local Lemon
Squeezy API on loopback serves the documented JSON:API pages."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import trustme

from postback_relay.core.reconcile import Tally, settled_window
from postback_relay.reconcile.lemonsqueezy import REPORT_NOTE
from postback_relay.relay.reconciling import NotReconcilable, reconciler_for
from postback_relay.runtime import get_runtime, reset_runtime
from postback_relay_dev.sandbox import TrafficStarsSandbox
from tests.integration.platforms.test_lemonsqueezy import deliver, ls_order, webhook
from tests.integration.test_cli import LocalRun, local_run
from tests.integration.test_cli import run as run_cli
from tests.support.aws import Aws
from tests.support.constants import TEST_KEY, TEST_SOURCE_SECRETS
from tests.support.helpers import Invoker
from tests.support.lemonsqueezy_api import API_KEY, LemonSqueezyApi

HOUR = 3600.0
DAY = 86_400.0
__all__ = ["local_run"]  # the fixture (tests/integration/test_cli.py)


@pytest.fixture(scope="session")
def ls_server(authority: trustme.CA) -> Iterator[LemonSqueezyApi]:
    server = LemonSqueezyApi(authority).start()
    yield server
    server.stop()


def secret(key: str | None = API_KEY) -> dict[str, str]:
    values = {"trafficstars_key": TEST_KEY, **TEST_SOURCE_SECRETS}
    return values | ({"lemonsqueezy_api_key": key} if key else {})


@pytest.fixture
def ls_api(ls_server: LemonSqueezyApi, relay_env: pytest.MonkeyPatch, aws: Aws) -> Iterator[LemonSqueezyApi]:
    """The local Lemon Squeezy API as LEMONSQUEEZY_API_BASE, its API key in the relay's secret."""
    ls_server.state.reset()
    relay_env.setenv("LEMONSQUEEZY_API_BASE", ls_server.base_url)
    aws.put_secret(secret())
    reset_runtime()
    yield ls_server
    ls_server.state.reset()


def stamp(moment: float) -> str:
    """A created_at as Lemon Squeezy writes it."""
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime(moment))


def order(number: int, created: float, status: str = "paid") -> dict[str, Any]:
    """Order ``number`` (id 5000+number, order number 18000+number) as the API lists it and its webhook carries."""
    placed = ls_order(order_id=str(5000 + number), status=status)
    attributes = {**placed["attributes"], "order_number": 18000 + number, "created_at": stamp(created)}
    attributes["identifier"] = f"00000000-0000-4000-8000-{number:012d}"
    attributes["total_formatted"] = "$11.99"
    return {**placed, "attributes": attributes}


def orders(count: int, newest: float | None = None, apart: float = 60.0) -> list[dict[str, Any]]:
    """``count`` paid orders, the newest at ``newest`` (two hours ago), each ``apart`` seconds before the next."""
    first = newest if newest is not None else time.time() - 2 * HOUR
    return [order(number, first - number * apart) for number in range(count)]


def identity(placed: dict[str, Any]) -> str:
    return f"lemonsqueezy#orders/{placed['id']}"


def reconcile(since: float | None = None, cursor: str | None = None) -> Tally:
    now = time.time()
    relay = get_runtime().relay
    start = since if since is not None else now - 7 * DAY
    window = settled_window(start, None, now, relay.settings.reconcile_settle_seconds)
    return reconciler_for(relay, "lemonsqueezy", now).run(window, cursor=cursor)


def order_pages(api: LemonSqueezyApi) -> list[str | None]:
    return [r.get("page[number]") for r in api.state.requests]


class TestLostWebhooksAreReported:
    def test_orders_whose_webhooks_were_lost_are_reported_and_nothing_is_recorded_or_sent(
        self, invoke: Invoker, ls_api: LemonSqueezyApi, sandbox: TrafficStarsSandbox, aws: Aws
    ) -> None:
        placed = orders(5)
        ls_api.state.orders.extend(placed)
        for delivered in placed[:2]:  # the other three were lost
            assert deliver(invoke, webhook("order_created", delivered)).status == 200
        items, received = aws.raw_items(), len(sandbox.state.received)
        tally = reconcile()
        assert (tally.listed, tally.already_recorded, tally.errors) == (5, 2, [])
        assert [unseen["conversion_id"] for unseen in tally.unseen] == [identity(o) for o in placed[2:]]
        assert (tally.would_record, dict(tally.recovered), tally.sent) == ([], {}, 0)
        assert aws.raw_items() == items and len(sandbox.state.received) == received == 2
        assert aws.record(identity(placed[4])) is None

    def test_each_order_never_seen_is_named_by_its_number_and_date_and_nothing_personal(
        self, ls_api: LemonSqueezyApi
    ) -> None:
        [placed] = orders(1)
        ls_api.state.orders.append(placed)
        [unseen] = reconcile().unseen
        assert unseen == {
            "conversion_id": "lemonsqueezy#orders/5000",
            "order_number": 18000,
            "identifier": "00000000-0000-4000-8000-000000000000",
            "created_at": placed["attributes"]["created_at"],
            "total_formatted": "$11.99",
            "status_formatted": "Paid",
            "test_mode": False,
        }

    def test_the_run_says_it_only_reports_and_how_to_recover_each_order(self, ls_api: LemonSqueezyApi) -> None:
        tally = reconcile()
        assert tally.notes == [REPORT_NOTE] and tally.report_only
        assert "records and sends nothing" in REPORT_NOTE and "Settings → Webhooks" in REPORT_NOTE
        document = tally.as_dict()
        assert (document["report_only"], document["unseen"], document["complete"]) == (True, [], True)

    def test_an_order_its_webhook_delivered_is_already_recorded_and_not_reported(
        self, invoke: Invoker, ls_api: LemonSqueezyApi
    ) -> None:
        [placed] = orders(1)
        ls_api.state.orders.append(placed)
        assert deliver(invoke, webhook("order_created", placed)).body["status"] == "sent"
        tally = reconcile()
        assert (tally.listed, tally.already_recorded, tally.unseen) == (1, 1, [])

    def test_a_refunded_order_is_no_lost_sale(self, ls_api: LemonSqueezyApi, aws: Aws) -> None:
        ls_api.state.orders.append(order(1, time.time() - 2 * HOUR, status="refunded"))
        tally = reconcile()
        assert (tally.unseen, dict(tally.ignored)) == ([], {"status is 'refunded', not paid": 1})
        assert (dict(tally.reversals), aws.items()) == ({}, [])

    def test_a_partly_refunded_order_is_still_a_sale_and_is_reported(self, ls_api: LemonSqueezyApi) -> None:
        partly = order(1, time.time() - 2 * HOUR, status="partial_refund")
        ls_api.state.orders.append(partly)
        [unseen] = reconcile().unseen
        assert (unseen["conversion_id"], unseen["status_formatted"]) == (identity(partly), "Partial Refund")

    def test_unpaid_orders_are_not_reported(self, ls_api: LemonSqueezyApi) -> None:
        ls_api.state.orders.extend(
            order(n, time.time() - 2 * HOUR, status=s) for n, s in enumerate(["pending", "failed"])
        )
        tally = reconcile()
        assert (tally.listed, tally.unseen, sum(tally.ignored.values())) == (2, [], 2)


class TestTheListing:
    def test_it_stops_at_the_first_order_created_before_the_window(self, ls_api: LemonSqueezyApi) -> None:
        ls_api.state.orders.extend(orders(250, apart=HOUR))  # newest first: 150 within the last ~6 days, then older
        tally = reconcile(since=time.time() - 2 * HOUR - 149.5 * HOUR)
        assert (len(tally.unseen), tally.pages, tally.cursor) == (150, 2, None)
        assert order_pages(ls_api) == ["1", "2"]  # page 3 (all before the window) is never asked for

    def test_every_page_of_the_window_is_read_a_hundred_at_a_time(self, ls_api: LemonSqueezyApi) -> None:
        ls_api.state.orders.extend(orders(230))
        tally = reconcile()
        assert (tally.listed, len(tally.unseen), tally.pages) == (230, 230, 3)
        assert order_pages(ls_api) == ["1", "2", "3"]
        assert {r["page[size]"] for r in ls_api.state.requests} == {"100"}
        assert len({unseen["conversion_id"] for unseen in tally.unseen}) == 230

    def test_orders_younger_than_the_settle_time_are_left_to_their_webhooks(self, ls_api: LemonSqueezyApi) -> None:
        ls_api.state.orders.extend(orders(2, newest=time.time() - 60))
        ls_api.state.orders.append(order(9, time.time() - 2 * HOUR))
        assert [unseen["conversion_id"] for unseen in reconcile().unseen] == ["lemonsqueezy#orders/5009"]

    def test_a_run_resumes_at_the_page_its_cursor_names(self, ls_api: LemonSqueezyApi) -> None:
        ls_api.state.orders.extend(orders(150))
        tally = reconcile(cursor="2")
        assert (order_pages(ls_api), len(tally.unseen)) == (["2"], 50)

    def test_an_order_pushed_onto_the_next_page_is_listed_once(self, ls_api: LemonSqueezyApi) -> None:
        placed = orders(101)
        ls_api.state.orders.extend(placed)
        original = ls_api.answer

        def a_new_order_after_the_first_page(request: Any) -> Any:
            answered = original(request)
            if request.param("page[number]") == "1":  # page 1's last order is now page 2's first
                ls_api.state.orders.append(order(200, time.time() - HOUR))
            return answered

        ls_api.answer = a_new_order_after_the_first_page  # type: ignore[method-assign]
        try:
            tally = reconcile()
        finally:
            del ls_api.answer
        ids = [unseen["conversion_id"] for unseen in tally.unseen]
        assert len(ids) == len(set(ids)) == 101 and identity(placed[100]) in ids


class TestTheApiPushesBack:
    def test_a_refused_key_is_reported_without_the_key(self, ls_api: LemonSqueezyApi, aws: Aws) -> None:
        ls_api.state.key = "another-key"
        tally = reconcile()
        [error] = tally.errors
        assert error.startswith("credentials_refused: HTTP 401") and "Unauthenticated." in error
        assert API_KEY not in json.dumps(tally.as_dict()) and (tally.listed, aws.items()) == (0, [])

    def test_without_the_api_key_it_cannot_be_reconciled(self, ls_api: LemonSqueezyApi, aws: Aws) -> None:
        aws.put_secret(secret(None))
        reset_runtime()
        with pytest.raises(NotReconcilable, match="lemonsqueezy_api_key"):
            reconciler_for(get_runtime().relay, "lemonsqueezy", time.time())

    def test_rate_limiting_slows_the_run_without_failing_it(self, ls_api: LemonSqueezyApi) -> None:
        ls_api.state.orders.extend(orders(3))
        ls_api.state.throttle = 1
        tally = reconcile()
        assert (len(tally.unseen), tally.errors, len(ls_api.state.requests)) == (3, [], 2)

    def test_a_page_that_is_not_a_list_of_orders_ends_the_run_with_an_error(self, ls_api: LemonSqueezyApi) -> None:
        ls_api.state.orders.append({"type": "subscriptions", "id": "1", "attributes": {"created_at": stamp(0)}})
        [error] = reconcile().errors
        assert error == "api_error: Lemon Squeezy's orders page is not a JSON:API list of orders"


class TestTheCommand:
    """`postback-relay reconcile --source lemonsqueezy --local` against what `make run` starts."""

    @pytest.fixture
    def local(self, local_run: LocalRun, ls_server: LemonSqueezyApi, relay_env: pytest.MonkeyPatch) -> LocalRun:
        ls_server.state.reset()
        relay_env.setenv("LEMONSQUEEZY_API_BASE", ls_server.base_url)
        local_run.put_secret(secret())
        reset_runtime()
        return local_run

    def test_it_lists_the_orders_never_seen_with_the_resend_fix_and_changes_nothing(
        self,
        local: LocalRun,
        ls_server: LemonSqueezyApi,
        sandbox: TrafficStarsSandbox,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        ls_server.state.orders.extend(orders(2))
        result = run_cli(capsys, "--local", "reconcile", "--source", "lemonsqueezy", "--since", "7d")
        assert result.code == 0, result.err
        assert "report only, nothing was recorded or sent" in result.out
        assert "never seen by the relay  2" in result.out, result.out
        assert "never seen lemonsqueezy#orders/5000  order_number 18000" in result.out
        assert "never seen lemonsqueezy#orders/5001  order_number 18001" in result.out
        assert "Lemon Squeezy → Settings → Webhooks → the delivery → Resend" in result.out
        assert "recovered" not in result.out and API_KEY not in result.out + result.err
        assert local.record("lemonsqueezy#orders/5000") is None and sandbox.state.received == []

    def test_its_json_lists_them_too(
        self, local: LocalRun, ls_server: LemonSqueezyApi, capsys: pytest.CaptureFixture[str]
    ) -> None:
        ls_server.state.orders.extend(orders(2))
        result = run_cli(capsys, "--local", "--json", "reconcile", "--source", "lemonsqueezy", "--since", "7d")
        document = result.json()
        assert (document["report_only"], document["would_record"], document["recovered"]) == (True, [], 0)
        assert [unseen["order_number"] for unseen in document["unseen"]] == [18000, 18001]
        assert document["notes"] == [REPORT_NOTE]

    def test_check_reads_one_order_with_the_key(
        self, local: LocalRun, ls_server: LemonSqueezyApi, capsys: pytest.CaptureFixture[str]
    ) -> None:
        good = run_cli(capsys, "--local", "check")
        [line] = [row for row in good.out.splitlines() if "reconcile lemonsqueezy" in row]
        assert "OK" in line and ls_server.state.requests == [{"page[size]": "1"}]
        ls_server.state.key = "another-key"
        bad = run_cli(capsys, "--local", "check")
        [line] = [row for row in bad.out.splitlines() if "reconcile lemonsqueezy" in row]
        assert "FAIL" in line and "refused" in line and API_KEY not in bad.out
