"""The TrafficStars client: the seed's URL form, every answer the spec lists, and the key kept secret."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
import trustme

from postback_relay.networks.trafficstars import (
    Postback,
    PostbackOptions,
    TrafficStarsClient,
    build_url,
    classify,
    redact,
)
from postback_relay_dev.sandbox import HTTPS_ONLY, TrafficStarsSandbox
from tests.support.constants import TEST_KEY
from tests.support.helpers import CLICK_ID

POSTBACK = Postback(CLICK_ID, "lead0001", Decimal("49.00"))


def test_the_url_has_the_seed_path_form() -> None:
    url = build_url("https://tsyndicate.com/api/v1/cpa/action", POSTBACK, "k3y")
    assert url == (f"https://tsyndicate.com/api/v1/cpa/action/{CLICK_ID}?value=49.00&lead_code=lead0001&key=k3y")
    no_value = build_url("https://tsyndicate.com/api/v1/cpa/action", Postback(CLICK_ID, "l"), "k")
    assert no_value.endswith(f"/{CLICK_ID}?lead_code=l&key=k")


def test_the_key_is_url_encoded() -> None:
    assert build_url("https://h/a", POSTBACK, "a&b=c").endswith("&key=a%26b%3Dc")


def test_redaction_removes_every_key_value() -> None:
    text = "GET https://h/a/x?value=1&lead_code=l&key=SECRET123 failed; retry /a?key=SECRET123)"
    assert "SECRET123" not in redact(text)
    assert redact("key%3DSECRET") == "key%3D***"


@pytest.mark.parametrize(
    ("status", "body", "kind", "reason"),
    [
        (200, '{"ok": true}', "ok", "ok"),
        (200, '{\n"ok": true\n}', "ok", "ok"),
        (400, '{"error": {"msg": "invalid code"}}', "rejected", "invalid_code"),
        (400, '{"error": {"msg": "invalid key"}}', "invalid_key", "invalid_key"),
        (200, '{"error": {"msg": "invalid key"}}', "invalid_key", "invalid_key"),
        (400, """{"error": {"msg": "invalid price value: 'abc'"}}""", "rejected", "price"),
        (400, '{"error": {"msg": "the price should be between 0.010 and 200.000"}}', "rejected", "price"),
        (400, '{"error": {"msg": "the price should be between %.3f and %.3"}}', "rejected", "price"),
        (400, f'{{"error": {{"msg": "{HTTPS_ONLY}"}}}}', "rejected", "https_required"),
        (400, '{"error": {"msg": "clickid is short"}}', "rejected", "invalid_code"),
        (503, '{"error": {"msg": "maintenance"}}', "retryable", "http_503"),
        (500, "<html>oops</html>", "retryable", "http_500"),
        (429, "", "retryable", "http_429"),
        (302, "", "retryable", "http_302"),
        (200, "", "retryable", "http_200"),
        (200, '{"ok": false}', "retryable", "http_200"),
        (404, "<h1>Not Found</h1>", "rejected", "http_404"),
    ],
)
def test_every_answer_is_classified(status: int, body: str, kind: str, reason: str) -> None:
    got_kind, message, got_reason = classify(status, body)
    assert (got_kind, got_reason) == (kind, reason)
    assert message


def test_trafficstars_own_message_is_kept() -> None:
    assert classify(400, """{"error":{"msg":"invalid price value: 'x'"}}""")[1] == "invalid price value: 'x'"


@pytest.fixture
def client(sandbox: TrafficStarsSandbox, ca_file: Path, monkeypatch: pytest.MonkeyPatch) -> TrafficStarsClient:
    # requests reads REQUESTS_CA_BUNDLE before a session's own verify setting: trust the local CA that way.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca_file))
    return TrafficStarsClient(sandbox.base_url, 0.5, 0.5)


def test_an_accepted_postback(client: TrafficStarsClient, sandbox: TrafficStarsSandbox) -> None:
    answer = client.send(POSTBACK, TEST_KEY)
    assert (answer.kind, answer.http_status, answer.message) == ("ok", 200, "ok")
    [received] = sandbox.state.received
    assert received.click_id == CLICK_ID
    assert received.params == {"value": "49.00", "lead_code": "lead0001", "key": "***"}
    assert received.key_matched


@pytest.mark.parametrize(
    ("postback", "key", "kind", "message"),
    [
        (Postback("0" * 39, "l"), TEST_KEY, "rejected", "invalid code"),
        (POSTBACK, "wrong-key", "invalid_key", "invalid key"),
        (
            Postback(CLICK_ID, "l", Decimal("250")),
            TEST_KEY,
            "rejected",
            "the price should be between 0.010 and 200.000",
        ),
    ],
)
def test_the_sandbox_answers_as_the_spec_documents(
    client: TrafficStarsClient, postback: Postback, key: str, kind: str, message: str
) -> None:
    answer = client.send(postback, key)
    assert (answer.kind, answer.http_status, answer.message) == (kind, 400, message)


def test_a_slow_upstream_is_a_retryable_timeout(client: TrafficStarsClient, sandbox: TrafficStarsSandbox) -> None:
    sandbox.state.delay_seconds = 1.5
    answer = client.send(POSTBACK, TEST_KEY)
    assert (answer.kind, answer.reason, answer.http_status) == ("retryable", "timeout", None)
    assert answer.duration_ms < 1400
    assert TEST_KEY not in answer.message


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_refused_connection_is_retryable_and_its_message_has_no_key() -> None:
    client = TrafficStarsClient(f"https://127.0.0.1:{free_port()}/api/v1/cpa/action", 0.5, 0.5)
    answer = client.send(POSTBACK, TEST_KEY)
    assert (answer.kind, answer.reason) == ("retryable", "connection_error")
    assert TEST_KEY not in answer.message
    assert "key=***" in answer.message  # the URL is still there to diagnose, without the key


def test_an_untrusted_certificate_is_refused_and_said_to_be_one(
    sandbox: TrafficStarsSandbox, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The sandbox's authority is not the one trusted here: that is a certificate verification failure, not a
    network problem, and it is still retried (a bundle can be fixed)."""
    stranger = tmp_path / "another-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(stranger))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(stranger))
    answer = TrafficStarsClient(sandbox.base_url, 0.5, 0.5).send(POSTBACK, TEST_KEY)
    assert (answer.kind, answer.reason, answer.http_status) == ("retryable", "certificate_error", None)
    assert answer.message.startswith("certificate verification failed: SSLError")
    assert TEST_KEY not in answer.message
    assert sandbox.state.received == []


def test_the_systems_authorities_do_not_vouch_for_the_sandbox_either(
    sandbox: TrafficStarsSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    answer = TrafficStarsClient(sandbox.base_url, 0.5, 0.5, requests.Session()).send(POSTBACK, TEST_KEY)
    assert (answer.kind, answer.reason) == ("retryable", "certificate_error")
    assert sandbox.state.received == []


class _Redirector(BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:
        _Redirector.hits.append(self.path)
        self.send_response(302)
        self.send_header("Location", "http://127.0.0.1:1/elsewhere")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return


@pytest.fixture
def redirector() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _Redirector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/api/v1/cpa/action"
    server.shutdown()
    server.server_close()


def test_redirects_are_not_followed(redirector: str) -> None:
    _Redirector.hits.clear()
    answer = TrafficStarsClient(redirector, 0.5, 0.5).send(POSTBACK, TEST_KEY)
    assert (answer.kind, answer.http_status) == ("retryable", 302)
    assert len(_Redirector.hits) == 1


def test_the_redacted_url_never_holds_the_key(client: TrafficStarsClient) -> None:
    url = client.redacted_url(POSTBACK)
    assert url.endswith("&key=***") and TEST_KEY not in url


class TestQueryForm:
    base = "https://tsyndicate.com/api/v1/cpa/action"

    def test_the_url_has_the_query_form_in_the_documented_order(self) -> None:
        postback = Postback(CLICK_ID, "lead0001", Decimal("49"), "1101", Decimal("2.5"), True)
        assert build_url(self.base, postback, "k3y", "query") == (
            f"{self.base}?clickid={CLICK_ID}&goalid=1101&value=49.00&price=2.50&lead_code=lead0001"
            "&allow_duplicates=1&key=k3y"
        )

    def test_what_is_not_configured_is_left_out(self) -> None:
        url = build_url(self.base, Postback(CLICK_ID, "l", Decimal("5")), "k", "query")
        assert url == f"{self.base}?clickid={CLICK_ID}&value=5.00&lead_code=l&key=k"

    def test_the_path_form_never_carries_query_only_parameters(self) -> None:
        postback = Postback(CLICK_ID, "l", Decimal("5"), "1101", Decimal("2"), True)
        assert build_url(self.base, postback, "k") == f"{self.base}/{CLICK_ID}?value=5.00&lead_code=l&key=k"

    def test_price_is_never_the_revenue_unless_configured(self) -> None:
        value = Decimal("49.00")
        assert PostbackOptions("query").postback(CLICK_ID, "l", value, "purchase").price is None
        assert PostbackOptions("query", price="value").postback(CLICK_ID, "l", value, "purchase").price == value
        fixed = PostbackOptions("query", price="fixed", fixed_price=Decimal("2.5"))
        assert fixed.postback(CLICK_ID, "l", value, "purchase").price == Decimal("2.5")

    def test_goals_per_kind_with_renewals_counted_as_purchases_unless_they_have_their_own(self) -> None:
        options = PostbackOptions("query", goal_ids={"purchase": "11"})
        assert [options.goal_id(kind) for kind in ("purchase", "renewal", "lead")] == ["11", "11", None]
        own = PostbackOptions("query", goal_ids={"purchase": "11", "renewal": "12", "lead": "0"})
        assert [own.goal_id(kind) for kind in ("purchase", "renewal", "lead")] == ["11", "12", "0"]

    def test_the_path_form_options_make_a_plain_postback(self) -> None:
        options = PostbackOptions("path", goal_ids={"purchase": "11"}, price="value", allow_duplicates=True)
        assert options.postback(CLICK_ID, "l", Decimal("1"), "purchase") == Postback(CLICK_ID, "l", Decimal("1"))

    def test_the_redacted_query_url_never_holds_the_key(self, sandbox: TrafficStarsSandbox) -> None:
        url = TrafficStarsClient(sandbox.base_url, 0.5, 0.5, options=PostbackOptions("query")).redacted_url(POSTBACK)
        assert url.endswith("&key=***") and "?clickid=" in url and TEST_KEY not in url

    def test_the_sandbox_accepts_the_query_form(
        self, sandbox: TrafficStarsSandbox, ca_file: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca_file))
        client = TrafficStarsClient(sandbox.base_url, 0.5, 0.5, options=PostbackOptions("query"))
        answer = client.send(Postback(CLICK_ID, "lead0001", Decimal("49"), "1101", None, True), TEST_KEY)
        assert (answer.kind, answer.http_status) == ("ok", 200)
        [received] = sandbox.state.received
        assert (received.form, received.click_id, received.key_matched) == ("query", CLICK_ID, True)
        assert received.params == {
            "clickid": CLICK_ID,
            "goalid": "1101",
            "value": "49.00",
            "lead_code": "lead0001",
            "allow_duplicates": "1",
            "key": "***",
        }

    @pytest.mark.parametrize(
        ("postback", "message", "reason"),
        [
            (Postback("", "l"), "clickid is empty", "invalid_code"),
            (Postback("0" * 16, "l"), "clickid is short", "invalid_code"),
            (
                Postback(CLICK_ID, "l", None, None, Decimal("250")),
                "the price should be between 0.010 and 200.000",
                "price",
            ),
        ],
    )
    def test_the_sandbox_answers_query_form_errors_as_trafficstars_does(
        self,
        sandbox: TrafficStarsSandbox,
        ca_file: Path,
        monkeypatch: pytest.MonkeyPatch,
        postback: Postback,
        message: str,
        reason: str,
    ) -> None:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca_file))
        answer = TrafficStarsClient(sandbox.base_url, 0.5, 0.5, options=PostbackOptions("query")).send(
            postback, TEST_KEY
        )
        assert (answer.kind, answer.http_status, answer.message, answer.reason) == ("rejected", 400, message, reason)
