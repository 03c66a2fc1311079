"""Several shops and several TrafficStars accounts in one deployment (issue #14, README "Tenants"): the real
handler, moto server and the HTTPS sandbox answering for each tenant's account.

Tenants `acme` and `globex` both sell through Stripe (and the tracker GET), each with its own signing secret,
click-id key, currency, TrafficStars key and account; the default tenant is the deployment's own, as before."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from postback_relay.aws.tenants import TenantDirectory
from postback_relay.core.conversion import lead_code
from postback_relay.core.tenant import TenantConfig
from postback_relay.runtime import reset_runtime
from postback_relay_dev.sandbox import TrafficStarsSandbox
from tests.integration.platforms.test_shopify import order, shopify_hmac
from tests.support import emf
from tests.support.aws import Aws
from tests.support.constants import TEST_KEY, TEST_STRIPE_SECRET
from tests.support.helpers import CLICK_ID, Invoker, checkout_session, stripe_event, stripe_signature
from tests.support.tenants import TENANT_SECRET_PREFIX, add_tenant, now_iso

OTHER_CLICK = "0123456789abcdef0123456789abcdef01234567"
# Each tenant's secret: canaries, looked for in everything written.
SECRETS = {
    "acme": {
        "trafficstars_key": "ts-acme-canary-91c2",
        "stripe_webhook_secret": "whsec_acme_canary_5d1e",
        "postback_token": "acme-token-canary-77aa",
    },
    "globex": {
        "trafficstars_key": "ts-globex-canary-3b8f",
        "stripe_webhook_secret": "whsec_globex_canary_c04d",
        "postback_token": "globex-token-canary-19fe",
    },
}
SETTINGS = {
    # acme reports in USD and converts its EUR sales; its click id is in metadata.ts_click
    "acme": {"CLICK_ID_METADATA_KEY": "ts_click", "ACCOUNT_CURRENCY": "USD", "FX_RATES": '{"EUR": "1.10"}'},
    # globex's TrafficStars account is in EUR; its click id is in metadata.clickid, and it uses the query form
    "globex": {
        "CLICK_ID_METADATA_KEY": "clickid",
        "ACCOUNT_CURRENCY": "EUR",
        "TRAFFICSTARS_URL_FORM": "query",
        "TRAFFICSTARS_GOAL_PURCHASE": "4242",
    },
}


class Tenants:
    """The test's tenants: written as `postback-relay tenant add` writes them (config item + secret)."""

    def __init__(self, aws: Aws, sandbox: TrafficStarsSandbox) -> None:
        self.aws = aws
        self.sandbox = sandbox
        self.directory = TenantDirectory(aws.dynamodb, aws.table_name, 300)

    def add(
        self,
        name: str,
        sources: tuple[str, ...] = ("stripe", "postback"),
        settings: dict[str, str] | None = None,
        **extra: Any,
    ) -> TenantConfig:
        own = {"TRAFFICSTARS_URL": self.sandbox.base_url, **(SETTINGS[name] if settings is None else settings)}
        config = add_tenant(self.aws, name, sources, own, SECRETS[name], **extra)
        self.sandbox.state.accounts[name] = SECRETS[name]["trafficstars_key"]
        return config

    def disable(self, name: str) -> None:
        previous = self.directory.get(name, force=True)
        assert previous is not None
        self.directory.save(_replace(previous, enabled=False, updated_at=now_iso()), previous)

    def delete(self, name: str) -> None:
        config = self.directory.get(name, force=True)
        assert config is not None
        self.directory.delete(config)


@pytest.fixture
def tenants(relay_env: pytest.MonkeyPatch, aws: Aws, sandbox: TrafficStarsSandbox) -> Iterator[Tenants]:
    relay_env.setenv("TENANT_SECRET_PREFIX", TENANT_SECRET_PREFIX)
    reset_runtime()
    made = Tenants(aws, sandbox)
    made.add("acme")
    made.add("globex")
    yield made


def _replace(config: TenantConfig, **changes: Any) -> TenantConfig:
    from dataclasses import replace

    return replace(config, **changes)


def sale(metadata_key: str, *, pi: str = "pi_shared_0001", click_id: str = CLICK_ID, currency: str = "eur") -> bytes:
    """A paid Checkout Session whose click id is in ``metadata[metadata_key]``."""
    session = checkout_session(payment_intent=pi, click_id=None, currency=currency, amount=4900)
    session["metadata"] = {metadata_key: click_id}
    return stripe_event("checkout.session.completed", session)


def post(invoke: Invoker, tenant: str, body: bytes, secret: str) -> Any:
    return invoke(body, {"Stripe-Signature": stripe_signature(body, secret)}, path=f"/webhooks/{tenant}/stripe")


class TestEachTenantHasItsOwnAccount:
    def test_each_conversion_goes_to_its_own_account_with_its_own_value(
        self, invoke: Invoker, tenants: Tenants, aws: Aws, sandbox: TrafficStarsSandbox
    ) -> None:
        acme = post(invoke, "acme", sale("ts_click", click_id=CLICK_ID), SECRETS["acme"]["stripe_webhook_secret"])
        globex = post(
            invoke, "globex", sale("clickid", click_id=OTHER_CLICK), SECRETS["globex"]["stripe_webhook_secret"]
        )
        assert (acme.status, acme.body["status"]) == (200, "sent")
        assert (globex.status, globex.body["status"]) == (200, "sent")
        by_account = {r.account: r for r in sandbox.state.received}
        assert set(by_account) == {"acme", "globex"}  # each with its own key, never the default's
        assert by_account["acme"].click_id == CLICK_ID and by_account["acme"].form == "path"
        assert by_account["acme"].params["value"] == "53.90"  # €49.00 at acme's 1.10 USD per EUR
        assert by_account["globex"].click_id == OTHER_CLICK and by_account["globex"].form == "query"
        assert by_account["globex"].params["value"] == "49.00"  # globex's account is in EUR
        assert by_account["globex"].params["goalid"] == "4242"
        record = aws.record("acme/stripe#pi_shared_0001")
        assert record is not None and record["tenant"] == "acme" and record["source"] == "stripe"
        assert (record["value"], record["value_currency"]) == ("53.90", "USD")

    def test_the_same_order_id_in_two_tenants_is_two_conversions(
        self, invoke: Invoker, tenants: Tenants, aws: Aws, sandbox: TrafficStarsSandbox
    ) -> None:
        for name, key in (("acme", "ts_click"), ("globex", "clickid")):
            reply = post(invoke, name, sale(key, pi="pi_1234"), SECRETS[name]["stripe_webhook_secret"])
            assert reply.body == {"status": "sent", "conversion_id": f"{name}/stripe#pi_1234"}
        codes = {r.account: r.params["lead_code"] for r in sandbox.state.received}
        assert codes == {"acme": lead_code("acme/stripe#pi_1234"), "globex": lead_code("globex/stripe#pi_1234")}
        assert codes["acme"] != codes["globex"]
        assert aws.record("stripe#pi_1234") is None  # nothing under the default tenant

    def test_a_redelivery_to_a_tenant_is_a_duplicate_there_only(
        self, invoke: Invoker, tenants: Tenants, sandbox: TrafficStarsSandbox
    ) -> None:
        body = sale("ts_click")
        secret = SECRETS["acme"]["stripe_webhook_secret"]
        assert post(invoke, "acme", body, secret).body["status"] == "sent"
        assert post(invoke, "acme", body, secret).body["status"] == "duplicate"
        assert len(sandbox.state.received) == 1

    def test_a_tracker_postback_is_authenticated_by_the_tenants_token(
        self, invoke: Invoker, tenants: Tenants, sandbox: TrafficStarsSandbox
    ) -> None:
        query = f"click_id={CLICK_ID}&payout=12.50&txid=T-1&token={SECRETS['globex']['postback_token']}"
        reply = invoke(b"", path="/postback/globex", method="GET", query=query)
        assert (reply.status, reply.body["status"]) == (200, "sent")
        assert reply.body["conversion_id"].startswith("globex/tracker#")
        assert [r.account for r in sandbox.state.received] == ["globex"]
        wrong = f"click_id={CLICK_ID}&payout=12.50&txid=T-2&token={SECRETS['acme']['postback_token']}"
        assert invoke(b"", path="/postback/globex", method="GET", query=wrong).status == 401


class TestRefusals:
    def test_a_delivery_signed_with_another_tenants_secret_is_refused_and_stores_nothing(
        self, invoke: Invoker, tenants: Tenants, aws: Aws, sandbox: TrafficStarsSandbox
    ) -> None:
        before = len(aws.items())
        reply = post(invoke, "globex", sale("clickid"), SECRETS["acme"]["stripe_webhook_secret"])
        assert (reply.status, reply.body["error"]) == (401, "invalid_signature")
        default_signed = post(invoke, "globex", sale("clickid"), TEST_STRIPE_SECRET)
        assert default_signed.status == 401  # nor with the deployment's own
        assert len(aws.items()) == before and sandbox.state.received == []

    def test_a_tenants_secret_does_not_open_the_default_route(
        self, invoke: Invoker, tenants: Tenants, aws: Aws
    ) -> None:
        body = sale("click_id")
        reply = invoke(body, {"Stripe-Signature": stripe_signature(body, SECRETS["acme"]["stripe_webhook_secret"])})
        assert reply.status == 401

    def test_an_unknown_tenant_is_a_404_that_reads_no_secret(self, invoke: Invoker, tenants: Tenants, aws: Aws) -> None:
        reads = aws.calls("secretsmanager.GetSecretValue")
        reply = post(invoke, "initech", sale("click_id"), SECRETS["acme"]["stripe_webhook_secret"])
        assert (reply.status, reply.body["error"]) == (404, "unknown_tenant")
        assert aws.calls("secretsmanager.GetSecretValue") == reads

    @pytest.mark.parametrize("name", ["ACME", "-acme", "a" * 33, "acme%2Fstripe", "café"])
    def test_a_name_no_tenant_can_have_is_refused_without_reading_anything(
        self, invoke: Invoker, tenants: Tenants, aws: Aws, name: str
    ) -> None:
        calls = len(aws.server.calls)
        reply = post(invoke, name, sale("click_id"), SECRETS["acme"]["stripe_webhook_secret"])
        assert (reply.status, reply.body["error"]) == (404, "unknown_tenant")
        assert len(aws.server.calls) == calls

    def test_a_source_the_tenant_does_not_sell_through_is_not_configured(
        self, invoke: Invoker, tenants: Tenants, aws: Aws
    ) -> None:
        reply = invoke(b"{}", {"X-WC-Webhook-Topic": "order.created"}, path="/webhooks/acme/woocommerce")
        assert (reply.status, reply.body["error"]) == (404, "source_not_configured")

    def test_an_unknown_platform_under_a_tenant_is_unknown(self, invoke: Invoker, tenants: Tenants) -> None:
        reply = invoke(b"{}", path="/webhooks/acme/paypal")
        assert (reply.status, reply.body["error"]) == (404, "unknown_source")


class TestNoRedeploy:
    def test_a_tenant_added_is_served_at_once_by_a_warm_container(
        self, invoke: Invoker, tenants: Tenants, aws: Aws, sandbox: TrafficStarsSandbox, monkeypatch: Any
    ) -> None:
        tenants.delete("globex")
        body = sale("clickid")
        secret = SECRETS["globex"]["stripe_webhook_secret"]
        assert post(invoke, "globex", body, secret).status == 404  # the container is warm now
        tenants.add("globex")
        reply = post(invoke, "globex", body, secret)
        assert (reply.status, reply.body["status"]) == (200, "sent")
        assert [r.account for r in sandbox.state.received] == ["globex"]

    def test_a_removed_tenants_traffic_is_refused_cleanly(
        self, invoke: Invoker, tenants: Tenants, aws: Aws, sandbox: TrafficStarsSandbox, monkeypatch: Any
    ) -> None:
        monkeypatch.setenv("SECRET_MAX_AGE_SECONDS", "1")
        reset_runtime()
        secret = SECRETS["acme"]["stripe_webhook_secret"]
        assert post(invoke, "acme", sale("ts_click", pi="pi_before"), secret).body["status"] == "sent"
        tenants.disable("acme")
        time.sleep(1.1)  # a warm container rereads a configuration older than SECRET_MAX_AGE_SECONDS
        before = len(aws.items())
        reply = post(invoke, "acme", sale("ts_click", pi="pi_after"), secret)
        assert (reply.status, reply.body["error"]) == (404, "unknown_tenant")
        assert len(aws.items()) == before and len(sandbox.state.received) == 1
        assert post(invoke, "globex", sale("clickid"), SECRETS["globex"]["stripe_webhook_secret"]).status == 200


class TestRetries:
    def test_a_tenants_retry_is_sent_with_its_own_key_and_its_message_names_it(
        self, invoke: Invoker, tenants: Tenants, aws: Aws, sandbox: TrafficStarsSandbox, fast_retries: Any
    ) -> None:
        reset_runtime()
        sandbox.state.fault = lambda received: (503, "down")
        reply = post(invoke, "acme", sale("ts_click"), SECRETS["acme"]["stripe_webhook_secret"])
        assert reply.body["status"] == "retry_pending"
        [message] = aws.sqs.receive_message(QueueUrl=aws.retry_url, WaitTimeSeconds=2)["Messages"]
        assert json.loads(message["Body"])["tenant"] == "acme"
        aws.sqs.change_message_visibility(
            QueueUrl=aws.retry_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
        )
        sandbox.state.fault = None
        aws.drain()
        record = aws.record("acme/stripe#pi_shared_0001")
        assert record is not None and record["status"] == "sent"
        assert [r.account for r in sandbox.state.received] == ["acme", "acme"]

    def test_a_waiting_conversion_of_a_deleted_tenant_is_never_sent_with_another_key(
        self, invoke: Invoker, tenants: Tenants, aws: Aws, sandbox: TrafficStarsSandbox, fast_retries: Any
    ) -> None:
        reset_runtime()
        sandbox.state.fault = lambda received: (503, "down")
        post(invoke, "acme", sale("ts_click"), SECRETS["acme"]["stripe_webhook_secret"])
        sandbox.state.fault = None
        tenants.delete("acme")
        reset_runtime()  # a container that never saw acme
        aws.drain(rounds=3)
        record = aws.record("acme/stripe#pi_shared_0001")
        assert record is not None and record["status"] in ("retry_pending", "failed")
        assert record["trafficstars_reason"] == "key_missing"
        assert [r.account for r in sandbox.state.received] == ["acme"]  # only the first try, before it went

    def test_past_its_retry_rate_a_tenants_retry_is_put_back_unclaimed(
        self, invoke: Invoker, tenants: Tenants, aws: Aws, sandbox: TrafficStarsSandbox, fast_retries: Any
    ) -> None:
        from postback_relay.runtime import get_runtime

        previous = tenants.directory.get("acme", force=True)
        assert previous is not None
        slow = {**previous.settings, "RETRY_RATE_PER_SECOND": "0.1"}  # one saved token, then one per 10 s
        tenants.directory.save(_replace(previous, settings=slow, updated_at=now_iso()), previous)
        reset_runtime()
        sandbox.state.fault = lambda received: (503, "down")
        for pi in ("pi_r1", "pi_r2"):
            post(invoke, "acme", sale("ts_click", pi=pi), SECRETS["acme"]["stripe_webhook_secret"])
        queued = len(aws.queued())
        time.sleep(0.05)  # both are due (fast_retries)
        tenants_ = get_runtime().tenants
        first = tenants_.retry("acme/stripe#pi_r1")
        second = tenants_.retry("acme/stripe#pi_r2")
        assert first is not None  # the one token: claimed and tried
        assert second is None  # put back for later, not claimed
        record = aws.record("acme/stripe#pi_r2")
        assert record is not None and record["attempts"] == 1  # only its webhook's own attempt
        assert len(aws.queued()) == queued + 2  # the first one's next retry, and the second put back


class TestSharedRoutes:
    def test_a_stripe_connect_event_goes_to_the_tenant_of_its_account(
        self, invoke: Invoker, tenants: Tenants, aws: Aws, sandbox: TrafficStarsSandbox
    ) -> None:
        aws.put_secret({"trafficstars_key": TEST_KEY, "stripe_connect_webhook_secret": "whsec_connect_canary_88"})
        tenants.delete("globex")
        tenants.add("globex", stripe_accounts=("acct_1Globex",))
        reset_runtime()
        event = json.loads(sale("clickid"))
        event["account"] = "acct_1Globex"
        body = json.dumps(event).encode()
        signed = {"Stripe-Signature": stripe_signature(body, "whsec_connect_canary_88")}
        reply = invoke(body, signed, path="/webhooks/_connect/stripe")
        assert (reply.status, reply.body["conversion_id"]) == (200, "globex/stripe#pi_shared_0001")
        assert [r.account for r in sandbox.state.received] == ["globex"]
        event["account"], event["id"] = "acct_nobody", "evt_other"
        body = json.dumps(event).encode()
        unknown = invoke(
            body,
            {"Stripe-Signature": stripe_signature(body, "whsec_connect_canary_88")},
            path="/webhooks/_connect/stripe",
        )
        assert (unknown.status, unknown.body["status"]) == (200, "ignored")  # Stripe would retry anything else
        forged = invoke(
            body,
            {"Stripe-Signature": stripe_signature(body, SECRETS["globex"]["stripe_webhook_secret"])},
            path="/webhooks/_connect/stripe",
        )
        assert forged.status == 401
        assert len(sandbox.state.received) == 1

    def test_a_shopify_app_webhook_goes_to_the_tenant_of_its_shop(
        self, invoke: Invoker, tenants: Tenants, aws: Aws, sandbox: TrafficStarsSandbox
    ) -> None:
        aws.put_secret({"trafficstars_key": TEST_KEY, "shopify_app_secret": "shpss_app_canary_41"})
        tenants.delete("acme")
        tenants.add("acme", sources=("shopify",), settings={}, shopify_shops=("Acme-Store.myshopify.com",))
        reset_runtime()
        body = json.dumps(order(order_id=777, total="20.00")).encode()
        headers = {
            "X-Shopify-Topic": "orders/paid",
            "X-Shopify-Shop-Domain": "acme-store.myshopify.com",
            "X-Shopify-Webhook-Id": str(uuid.uuid4()),
            "X-Shopify-Hmac-Sha256": shopify_hmac(body, "shpss_app_canary_41"),
        }
        reply = invoke(body, headers, path="/webhooks/_app/shopify")
        assert (reply.status, reply.body["status"]) == (200, "sent")
        assert reply.body["conversion_id"] == "acme/shopify#777"
        assert [r.account for r in sandbox.state.received] == ["acme"]
        # the compliance topics every public app must answer: 200, nothing stored, nothing sent
        before = len(aws.items())
        redact = json.dumps({"shop_id": 1, "shop_domain": "acme-store.myshopify.com", "customer": {"id": 9}}).encode()
        compliance = {
            **headers,
            "X-Shopify-Topic": "customers/redact",
            "X-Shopify-Hmac-Sha256": shopify_hmac(redact, "shpss_app_canary_41"),
        }
        answered = invoke(redact, compliance, path="/webhooks/_app/shopify")
        assert (answered.status, answered.body["status"]) == (200, "ignored")
        assert len(aws.items()) == before and len(sandbox.state.received) == 1


class TestIsolationInWhatIsWritten:
    def test_metrics_count_a_tenant_once_and_never_a_name_from_a_path(
        self, invoke: Invoker, tenants: Tenants, capfd: pytest.CaptureFixture[str]
    ) -> None:
        capfd.readouterr()
        post(invoke, "acme", sale("ts_click"), SECRETS["acme"]["stripe_webhook_secret"])
        post(invoke, "initech", sale("ts_click"), SECRETS["acme"]["stripe_webhook_secret"])
        out = capfd.readouterr().out
        assert emf.values(out, "Webhooks", tenant="acme") == [1.0]
        assert emf.values(out, "Postbacks", tenant="acme") == [1.0]
        assert emf.values(out, "Webhooks", source="stripe", outcome="sent") == [1.0]  # the roll-ups as before
        dimension_values = {v for p in emf.datapoints(out) for v in p.dimensions.values()}
        assert "initech" not in dimension_values

    def test_the_tenant_is_on_every_log_line_and_no_secret_anywhere(
        self, invoke: Invoker, tenants: Tenants, aws: Aws, capfd: pytest.CaptureFixture[str]
    ) -> None:
        capfd.readouterr()
        post(invoke, "acme", sale("ts_click"), SECRETS["acme"]["stripe_webhook_secret"])
        out = capfd.readouterr().out
        lines = [json.loads(line) for line in out.splitlines() if line.startswith("{") and '"level"' in line]
        assert lines and all(line.get("tenant") == "acme" for line in lines)
        written = out + json.dumps(aws.items(), default=str)
        canaries = [value for secrets in SECRETS.values() for value in secrets.values()]
        assert not [c for c in canaries if c in written]
