"""Forward mode (README "Forward mode"): with `<PLATFORM>_FORWARD_URL` set, a verified request is passed on to the
merchant's own endpoint (a real HTTPS server on loopback here) and the platform gets the merchant's answer, while
the relay records and sends the conversion exactly as it does without forwarding."""

from __future__ import annotations

import ipaddress
import json
import time
from collections.abc import Iterator
from urllib.parse import urlencode

import pytest
import trustme

from postback_relay.core.forwarding import MerchantAnswer, forward_request, is_public, settle
from postback_relay.core.inbound import InboundRequest
from postback_relay.env import SettingsError
from postback_relay.relay.forwarding import Forwarder
from postback_relay.runtime import reset_runtime
from postback_relay.settings import Settings
from postback_relay_dev.sandbox import TrafficStarsSandbox
from tests.integration.platforms import test_ccbill as ccbill
from tests.integration.platforms import test_tracker as tracker
from tests.integration.platforms import test_verotel as verotel
from tests.support.aws import Aws
from tests.support.constants import TEST_KEY, TEST_SOURCE_SECRETS, TEST_STRIPE_SECRET
from tests.support.helpers import CLICK_ID, Invoker, checkout_session, stripe_event
from tests.support.merchant import MerchantEndpoint

MERCHANT_PATH = "/members/postback.php"


@pytest.fixture(scope="session")
def merchant_server(authority: trustme.CA) -> Iterator[MerchantEndpoint]:
    server = MerchantEndpoint(authority).start()
    yield server
    server.stop()


@pytest.fixture
def merchant(merchant_server: MerchantEndpoint, relay_env: pytest.MonkeyPatch) -> Iterator[MerchantEndpoint]:
    """The merchant's endpoint, as the forward target of Verotel, CCBill, Stripe and the tracker postback."""
    merchant_server.behaviour.reset()
    for name in ("VEROTEL", "CCBILL", "STRIPE", "POSTBACK"):
        relay_env.setenv(f"{name}_FORWARD_URL", merchant_server.url(MERCHANT_PATH))
    relay_env.setenv("FORWARD_TIMEOUT_SECONDS", "1")
    reset_runtime()
    yield merchant_server
    merchant_server.behaviour.reset()


def answer(status: int = 200, body: bytes = b"OK", reason: str = "answered") -> MerchantAnswer:
    return MerchantAnswer(status, "text/plain", body, reason)


class TestWhatIsForwarded:
    """core/forwarding.py: the request the merchant gets."""

    REQUEST = InboundRequest(
        "POST",
        "token=secret-token&eventType=NewSaleSuccess&a=1&a=2",
        b'{"x": 1}',
        {
            "content-type": "application/json",
            "user-agent": "CCBill Webhooks",
            "host": "relay.example.com",
            "content-length": "8",
            "x-amzn-trace-id": "Root=1-abc",
            "x-forwarded-for": "198.51.100.7",
            "x-forwarded-proto": "https",
            "stripe-signature": "t=1,v1=abc",
        },
        "64.38.212.10",
        "ccbill",
    )

    def test_the_query_goes_without_the_relays_token_and_every_other_byte_as_sent(self) -> None:
        outgoing = forward_request("https://m.example.com/cb.php", self.REQUEST)
        assert outgoing.url == "https://m.example.com/cb.php?eventType=NewSaleSuccess&a=1&a=2"
        assert "secret-token" not in repr(outgoing)

    def test_the_targets_own_query_is_kept(self) -> None:
        outgoing = forward_request("https://m.example.com/cb.php?site=7", self.REQUEST)
        assert outgoing.url == "https://m.example.com/cb.php?site=7&eventType=NewSaleSuccess&a=1&a=2"

    def test_the_platforms_headers_go_and_this_hops_do_not(self) -> None:
        outgoing = forward_request("https://m.example.com/cb.php", self.REQUEST)
        assert outgoing.headers == {
            "content-type": "application/json",
            "user-agent": "CCBill Webhooks",
            "stripe-signature": "t=1,v1=abc",
            "X-Forwarded-For": "64.38.212.10",  # the platform's address as API Gateway saw it, not the header's
            "X-Forwarded-Proto": "https",
            "Via": "1.1 postback-relay",
        }
        assert (outgoing.method, outgoing.body) == ("POST", b'{"x": 1}')

    def test_a_request_without_a_query_is_forwarded_to_the_target_as_is(self) -> None:
        request = InboundRequest("POST", "", b"{}", {}, "", "stripe")
        assert forward_request("https://m.example.com/hook", request).url == "https://m.example.com/hook"


class TestWhichAddressesItMayReach:
    @pytest.mark.parametrize(
        "address",
        [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",  # the instance metadata service
            "100.64.0.1",  # shared (CGNAT)
            "0.0.0.0",  # noqa: S104 - an address under test, not a binding
            "224.0.0.1",
            "::1",
            "fe80::1",
            "fc00::1",
            "::ffff:10.0.0.1",  # an IPv4-mapped private address
            "::ffff:127.0.0.1",
            "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
        ],
    )
    def test_loopback_link_local_private_and_special_addresses_are_not_public(self, address: str) -> None:
        assert not is_public(ipaddress.ip_address(address))

    @pytest.mark.parametrize("address", ["8.8.8.8", "203.0.114.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
    def test_global_unicast_addresses_are(self, address: str) -> None:
        assert is_public(ipaddress.ip_address(address))


class TestTheSettings:
    BASE = {"SECRET_ID": "s", "TABLE_NAME": "t"}

    def read(self, **environ: str) -> Settings:
        return Settings.from_env({**self.BASE, **environ})

    def test_nothing_is_forwarded_by_default(self) -> None:
        settings = self.read()
        assert set(settings.forward_urls.values()) == {None}
        assert (settings.forward_timeout_seconds, settings.forward_on_failure) == (5.0, "pass")

    def test_every_routed_source_has_its_own_forward_url(self) -> None:
        settings = self.read(
            VEROTEL_FORWARD_URL="https://m.example.com/v.php", PADDLE_SANDBOX_FORWARD_URL="https://p.example.com/"
        )
        assert settings.forward_urls["verotel"] == "https://m.example.com/v.php"
        assert settings.forward_urls["paddle-sandbox"] == "https://p.example.com/"

    @pytest.mark.parametrize(
        ("url", "says"),
        [
            ("http://m.example.com/v.php", "must use https"),
            ("http://127.0.0.1:8080/v.php", "must use https"),  # loopback http only in the local run
            ("ftp://m.example.com/", "must use https"),
            ("https://user:pass@m.example.com/", "no user"),
            ("https://m.example.com/#x", "no user or #"),
            ("https://10.0.0.8/v.php", "not a public address"),
            ("https://127.0.0.1/v.php", "not a public address"),
            ("https://[::1]/v.php", "not a public address"),
            ("https://m.example.com:port/", "invalid port"),
        ],
    )
    def test_a_target_that_is_not_https_or_not_public_is_refused_at_start(self, url: str, says: str) -> None:
        with pytest.raises(SettingsError, match="VEROTEL_FORWARD_URL") as error:
            self.read(VEROTEL_FORWARD_URL=url)
        assert says in str(error.value)

    def test_the_local_run_may_forward_to_loopback_over_http(self) -> None:
        settings = self.read(LOCAL_MODE="true", VEROTEL_FORWARD_URL="http://127.0.0.1:8080/v.php")
        assert settings.forward_urls["verotel"] == "http://127.0.0.1:8080/v.php"

    @pytest.mark.parametrize("timeout", ["0.1", "9", "x"])
    def test_the_timeout_stays_within_the_functions(self, timeout: str) -> None:
        with pytest.raises(SettingsError, match="FORWARD_TIMEOUT_SECONDS"):
            self.read(FORWARD_TIMEOUT_SECONDS=timeout)

    def test_a_tenant_sets_its_own_target_checked_the_same_way(self) -> None:
        settings = self.read()
        tenant = settings.for_tenant({"VEROTEL_FORWARD_URL": "https://t.example.com/v", "FORWARD_ON_FAILURE": "answer"})
        assert (tenant.forward_urls["verotel"], tenant.forward_on_failure) == ("https://t.example.com/v", "answer")
        with pytest.raises(SettingsError, match="not a public address"):
            settings.for_tenant({"VEROTEL_FORWARD_URL": "https://192.168.0.2/v"})


class TestWhoseAnswerGoes:
    def test_the_merchants_answer_goes_while_it_answers(self) -> None:
        assert settle(answer(), "pass").replaces and settle(answer(), "answer").replaces
        assert settle(answer(403, b"no"), "answer").replaces  # a 4xx is the merchant's deliberate answer

    def test_a_failure_is_passed_on_unless_the_relay_is_told_to_answer(self) -> None:
        down = answer(502, b"{}", "connection_error")
        assert settle(down, "pass").replaces and not settle(down, "answer").replaces
        assert not settle(answer(500, b"boom", "http_5xx"), "answer").replaces


class TestTheAddressIsCheckedAndPinned:
    """relay/forwarding.py: the host is resolved once, each address checked, and the connection made to it."""

    def test_outside_the_local_run_a_name_resolving_to_loopback_is_never_reached(
        self, merchant_server: MerchantEndpoint, ca_file: object
    ) -> None:
        merchant_server.behaviour.reset()
        forwarder = Forwarder({"verotel": merchant_server.url(host="localhost")}, 1.0, local_mode=False)
        pending = forwarder.start(InboundRequest("GET", "a=1", b"", {}, "", "verotel"))
        assert pending is not None
        result = pending.result()
        assert (result.answer.status, result.answer.reason) == (502, "target_not_public")
        assert merchant_server.behaviour.received == []

    def test_a_name_with_one_private_address_among_public_ones_is_refused(self) -> None:
        resolved = [ipaddress.ip_address("8.8.8.8"), ipaddress.ip_address("10.0.0.1")]
        forwarder = Forwarder({"verotel": "https://m.example.com/"}, 1.0, resolver=lambda host, port: resolved)
        outgoing = forward_request("https://m.example.com/", InboundRequest("GET", "", b"", {}, "", "verotel"))
        assert forwarder.send(outgoing).reason == "target_not_public"

    def test_the_connection_goes_to_the_checked_address_with_tls_verified_for_the_name(
        self, merchant_server: MerchantEndpoint, ca_file: object, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """members.merchant.test resolves (by this resolver only) to 127.0.0.1: the relay connects there, says
        the name in SNI and Host, and the certificate is checked against the name, not the address."""
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca_file))
        merchant_server.behaviour.reset()
        looked_up: list[str] = []

        def resolver(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
            looked_up.append(host)
            return [ipaddress.ip_address("127.0.0.1")]

        url = merchant_server.url(host="members.merchant.test")
        forwarder = Forwarder({"verotel": url}, 1.0, local_mode=True, resolver=resolver)
        result = forwarder.send(forward_request(url, InboundRequest("GET", "a=1", b"", {}, "", "verotel")))
        assert (result.status, result.body, result.reason) == (200, b"OK", "answered")
        assert looked_up == ["members.merchant.test"]
        [received] = merchant_server.behaviour.received
        assert received.headers["host"] == f"members.merchant.test:{merchant_server.port}"

    def test_a_certificate_for_another_name_is_refused(
        self, merchant_server: MerchantEndpoint, ca_file: object, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca_file))
        url = merchant_server.url(host="elsewhere.test")
        forwarder = Forwarder(
            {"verotel": url}, 1.0, local_mode=True, resolver=lambda host, port: [ipaddress.ip_address("127.0.0.1")]
        )
        result = forwarder.send(forward_request(url, InboundRequest("GET", "", b"", {}, "", "verotel")))
        assert (result.status, result.reason) == (502, "certificate_error")


class TestVerotelThroughTheHandler:
    """Verotel's single postback slot: the merchant's membership system gets every postback, Verotel gets the
    merchant's answer, TrafficStars gets the sale once."""

    def test_the_merchants_answer_goes_to_verotel_and_the_sale_is_sent_once(
        self, invoke: Invoker, merchant: MerchantEndpoint, sandbox: TrafficStarsSandbox, aws: Aws
    ) -> None:
        merchant.behaviour.body = b"OK from the members area"
        query = verotel.signed(verotel.initial())
        first, again = verotel.deliver(invoke, verotel.initial()), verotel.deliver(invoke, verotel.initial())
        assert [(r.status, r.text, r.headers["Content-Type"]) for r in (first, again)] == [
            (200, "OK from the members area", "text/plain")
        ] * 2
        assert (first.headers["X-Postback-Relay-Status"], again.headers["X-Postback-Relay-Status"]) == (
            "sent",
            "duplicate",
        )
        assert [r.headers["X-Postback-Relay-Forward"] for r in (first, again)] == ["answered", "answered"]
        assert [(r.method, r.path, r.query) for r in merchant.behaviour.received] == [
            ("GET", MERCHANT_PATH, query)
        ] * 2  # the signed query exactly as Verotel sent it: the merchant can check the signature itself
        [sent] = sandbox.state.received
        assert (sent.click_id, sent.key_matched) == (CLICK_ID, True)
        record = aws.record(verotel.PURCHASE)
        assert record is not None and record["status"] == "sent"

    def test_a_merchant_that_fails_is_what_verotel_sees_and_the_sale_is_still_sent(
        self, invoke: Invoker, merchant: MerchantEndpoint, sandbox: TrafficStarsSandbox
    ) -> None:
        merchant.behaviour.status, merchant.behaviour.body = 500, b"database down"
        reply = verotel.deliver(invoke, verotel.initial())
        assert (reply.status, reply.text, reply.headers["X-Postback-Relay-Forward"]) == (
            500,
            "database down",
            "http_5xx",
        )
        assert len(sandbox.state.received) == 1
        merchant.behaviour.status, merchant.behaviour.body = 200, b"OK"
        retried = verotel.deliver(invoke, verotel.initial())  # Verotel delivers again: a duplicate for the relay
        assert (retried.status, retried.text, retried.headers["X-Postback-Relay-Status"]) == (200, "OK", "duplicate")
        assert len(sandbox.state.received) == 1

    def test_an_unreachable_merchant_is_a_502_and_the_sale_is_still_sent(
        self,
        invoke: Invoker,
        merchant: MerchantEndpoint,
        relay_env: pytest.MonkeyPatch,
        sandbox: TrafficStarsSandbox,
    ) -> None:
        relay_env.setenv("VEROTEL_FORWARD_URL", "https://127.0.0.1:9/members/postback.php")  # nothing listens
        reset_runtime()
        reply = verotel.deliver(invoke, verotel.initial())
        assert (reply.status, reply.body["error"], reply.body["reason"]) == (
            502,
            "forward_failed",
            "connection_error",
        )
        assert reply.text != "OK" and len(sandbox.state.received) == 1

    def test_a_merchant_slower_than_the_timeout_is_a_504_in_about_the_timeout(
        self, invoke: Invoker, merchant: MerchantEndpoint, sandbox: TrafficStarsSandbox
    ) -> None:
        merchant.behaviour.delay_seconds = 3.0
        started = time.monotonic()
        reply = verotel.deliver(invoke, verotel.initial())
        elapsed = time.monotonic() - started
        assert (reply.status, reply.body["reason"]) == (504, "timeout")
        assert elapsed < 2.5  # FORWARD_TIMEOUT_SECONDS=1, not the merchant's 3 s
        assert len(sandbox.state.received) == 1

    def test_with_forward_on_failure_answer_a_merchant_down_gets_verotel_the_relays_ok(
        self,
        invoke: Invoker,
        merchant: MerchantEndpoint,
        relay_env: pytest.MonkeyPatch,
        sandbox: TrafficStarsSandbox,
    ) -> None:
        relay_env.setenv("FORWARD_ON_FAILURE", "answer")
        reset_runtime()
        merchant.behaviour.status, merchant.behaviour.body = 503, b"maintenance"
        reply = verotel.deliver(invoke, verotel.initial())
        assert (reply.status, reply.text, reply.headers["X-Postback-Relay-Status"]) == (200, "OK", "sent")
        assert len(merchant.behaviour.received) == 1 and len(sandbox.state.received) == 1

    def test_a_redirect_is_answered_not_followed(
        self, invoke: Invoker, merchant: MerchantEndpoint, sandbox: TrafficStarsSandbox
    ) -> None:
        merchant.behaviour.status, merchant.behaviour.location = 302, merchant.url("/elsewhere")
        merchant.behaviour.body = b""
        reply = verotel.deliver(invoke, verotel.initial())
        assert reply.status == 302 and "Location" not in reply.headers
        assert [r.path for r in merchant.behaviour.received] == [MERCHANT_PATH]

    def test_a_forged_postback_is_refused_and_never_reaches_the_merchant(
        self, invoke: Invoker, merchant: MerchantEndpoint, aws: Aws
    ) -> None:
        reply = verotel.deliver(invoke, verotel.initial(), key="not-the-key")
        assert reply.status == 401 and merchant.behaviour.received == [] and aws.items() == []

    def test_the_relays_own_503_stands_whatever_the_merchant_answers(
        self, invoke: Invoker, merchant: MerchantEndpoint, aws: Aws
    ) -> None:
        aws.server.fault = lambda environ: environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB")
        try:
            reply = verotel.deliver(invoke, verotel.initial())
        finally:
            aws.server.fault = None
        assert reply.status == 503 and reply.text != "OK"
        assert len(merchant.behaviour.received) == 1  # the merchant got it; Verotel delivers again to both

    def test_the_relays_503_stands_when_the_sale_is_durable_but_its_retry_could_not_be_queued(
        self, invoke: Invoker, merchant: MerchantEndpoint, aws: Aws, sandbox: TrafficStarsSandbox
    ) -> None:
        """TrafficStars down and the retry queue refusing: the sale is recorded but not settled, so Verotel must
        deliver again (the outcome's own 503, not a refusal's), whatever the merchant said."""
        sandbox.state.fault = lambda received: (503, "")
        aws.server.fault = lambda environ: environ.get("HTTP_X_AMZ_TARGET", "").startswith("AmazonSQS")
        try:
            reply = verotel.deliver(invoke, verotel.initial())
        finally:
            aws.server.fault = None
            sandbox.state.fault = None
        assert reply.status == 503 and reply.text != "OK"
        assert len(merchant.behaviour.received) == 1
        record = aws.record(verotel.PURCHASE)
        assert record is not None and record["status"] == "retry_pending"

    def test_an_event_the_relay_ignores_is_still_the_merchants(
        self, invoke: Invoker, merchant: MerchantEndpoint, sandbox: TrafficStarsSandbox
    ) -> None:
        reply = verotel.deliver(invoke, {**verotel.rebill(), "event": "cancel"})
        assert (reply.status, reply.text, reply.headers["X-Postback-Relay-Status"]) == (200, "OK", "ignored")
        assert len(merchant.behaviour.received) == 1 and sandbox.state.received == []


class TestOtherSourcesThroughTheHandler:
    def test_a_ccbill_webhook_goes_without_the_token_with_its_body_and_headers(
        self, invoke: Invoker, merchant: MerchantEndpoint, sandbox: TrafficStarsSandbox
    ) -> None:
        merchant.behaviour.content_type, merchant.behaviour.body = "application/json", b'{"received": true}'
        reply = ccbill.deliver(invoke, "NewSaleSuccess", ccbill.new_sale(), form=True)
        assert (reply.status, reply.body) == (200, {"received": True})
        [received] = merchant.behaviour.received
        assert received.method == "POST" and ccbill.TOKEN not in received.query
        assert received.query == ccbill.query("NewSaleSuccess", token=None)
        assert received.body.decode() == urlencode(ccbill.new_sale())
        assert received.headers["content-type"] == "application/x-www-form-urlencoded"
        assert received.headers["x-forwarded-for"] == ccbill.CCBILL_IP
        assert received.headers["user-agent"] == "CCBill Webhooks"
        assert len(sandbox.state.received) == 1

    def test_a_stripe_event_goes_with_its_exact_body_and_signature(
        self, invoke: Invoker, merchant: MerchantEndpoint, sandbox: TrafficStarsSandbox
    ) -> None:
        body = stripe_event("checkout.session.completed", checkout_session())
        reply = invoke.stripe(body, TEST_STRIPE_SECRET)
        assert (reply.status, reply.text) == (200, "OK")
        [received] = merchant.behaviour.received
        assert received.body == body and received.headers["stripe-signature"].startswith("t=")
        assert len(sandbox.state.received) == 1

    def test_a_malformed_but_signed_delivery_gets_the_merchants_answer(
        self, invoke: Invoker, merchant: MerchantEndpoint, aws: Aws
    ) -> None:
        reply = invoke.stripe(b"not json", TEST_STRIPE_SECRET)
        assert (reply.status, reply.text, reply.headers["X-Postback-Relay-Status"]) == (200, "OK", "malformed_body")
        assert aws.items() == []

    def test_a_tracker_postback_goes_without_its_token(
        self, invoke: Invoker, merchant: MerchantEndpoint, sandbox: TrafficStarsSandbox
    ) -> None:
        token = tracker.TOKEN
        reply = tracker.fire(invoke, tracker.query(value="12.50", token=token))
        assert (reply.status, reply.text) == (200, "OK")
        [received] = merchant.behaviour.received
        assert token not in received.query and received.query == f"click_id={CLICK_ID}&value=12.50"
        assert len(sandbox.state.received) == 1

    def test_no_secret_reaches_the_merchant_or_the_logs(
        self, invoke: Invoker, merchant: MerchantEndpoint, capfd: pytest.CaptureFixture[str]
    ) -> None:
        ccbill.deliver(invoke, "NewSaleSuccess", ccbill.new_sale())
        token = TEST_SOURCE_SECRETS["ccbill_webhook_token"]
        [received] = merchant.behaviour.received
        assert token not in json.dumps([received.target, received.headers, received.body.decode()])
        logged = capfd.readouterr().out
        assert token not in logged and TEST_KEY not in logged
        assert '"forward": "answered"' in logged or '"forward":"answered"' in logged
