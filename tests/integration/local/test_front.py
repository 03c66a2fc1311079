"""The local front: routes from template.yaml, real payload-2.0 events, the real handler behind HTTP."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from postback_relay.platforms import BILLERS, SOURCES
from postback_relay_dev.apigw import build_event, is_text
from postback_relay_dev.front import LocalApi
from postback_relay_dev.sandbox import TrafficStarsSandbox
from postback_relay_dev.send import resign
from postback_relay_dev.template import http_routes, load_template
from tests.support.aws import Aws
from tests.support.constants import TEST_STRIPE_SECRET
from tests.support.helpers import checkout_session, stripe_event, stripe_signature

EVENTS = Path(__file__).resolve().parents[3] / "events"


@pytest.fixture
def api(relay_env: pytest.MonkeyPatch) -> Iterator[LocalApi]:
    server = LocalApi(http_routes(load_template())).start()
    yield server
    server.stop()


def test_routes_come_from_the_template_one_per_source() -> None:
    routes = {(r.method, r.path) for r in http_routes(load_template())}
    webhooks = {("POST", f"/webhooks/{name}") for name in SOURCES}
    billers = {(method, f"/webhooks/{name}") for name, biller in BILLERS.items() for method in biller.methods}
    tenants = {
        ("POST", "/webhooks/{tenant}/{platform}"),
        ("GET", "/webhooks/{tenant}/{platform}"),
        ("GET", "/postback/{tenant}"),
    }
    assert routes == webhooks | billers | tenants | {("GET", "/postback"), ("GET", "/health"), ("GET", "/click.js")}
    assert {r.handler for r in http_routes(load_template())} == {"postback_relay.handlers.http.lambda_handler"}


def test_health_over_http(api: LocalApi) -> None:
    response = requests.get(f"{api.base_url}/health", timeout=5)
    assert (response.status_code, response.json()) == (200, {"status": "ok"})
    assert response.headers["Content-Type"] == "application/json"


def test_a_signed_purchase_over_http_is_sent(api: LocalApi, aws: Aws, sandbox: TrafficStarsSandbox) -> None:
    body = stripe_event("checkout.session.completed", checkout_session())
    response = requests.post(
        f"{api.base_url}/webhooks/stripe",
        data=body,
        headers={"Content-Type": "application/json", "Stripe-Signature": stripe_signature(body, TEST_STRIPE_SECRET)},
        timeout=10,
    )
    assert response.status_code == 200 and response.json()["status"] == "sent"
    assert len(sandbox.state.received) == 1


def test_an_unknown_route_or_method_is_404_like_api_gateway(api: LocalApi) -> None:
    assert requests.get(f"{api.base_url}/nowhere", timeout=5).status_code == 404
    assert requests.get(f"{api.base_url}/webhooks/stripe", timeout=5).status_code == 404


def test_events_are_built_as_api_gateway_builds_them() -> None:
    event = build_event(
        "POST",
        "/webhooks/x",
        [("X-Custom", "a"), ("x-custom", "b"), ("Content-Type", "application/x-www-form-urlencoded")],
        b"webhook_id=1",
        "a=1&a=2&b=",
    )
    assert event["version"] == "2.0" and event["routeKey"] == "POST /webhooks/x"
    assert event["headers"]["x-custom"] == "a,b"
    assert event["isBase64Encoded"] is True and base64.b64decode(event["body"]) == b"webhook_id=1"
    assert event["queryStringParameters"] == {"a": "1,2", "b": ""}
    assert event["rawQueryString"] == "a=1&a=2&b="
    assert event["requestContext"]["http"]["method"] == "POST"


@pytest.mark.parametrize(
    ("content_type", "text"),
    [
        ("application/json", True),
        ("application/json; charset=utf-8", True),
        ("text/plain", True),
        ("application/x-www-form-urlencoded", False),
        (None, False),
        ("application/octet-stream", False),
    ],
)
def test_which_bodies_api_gateway_base64_encodes(content_type: str | None, text: bool) -> None:
    assert is_text(content_type) is text


SAMPLES = sorted(EVENTS.glob("stripe/*.json"))
EXPECTED = {
    "checkout.session.completed": "sent",
    "checkout.session.async_payment_succeeded": "sent",
    "payment_intent.succeeded": "sent",
    "invoice.paid": "sent",
    "charge.refunded": "refunded",  # nothing recorded yet: kept, so a late delivery of the purchase is not sent
    "invoice_payment.paid": "linked",  # the PaymentIntent that paid the invoice, for its refunds and disputes
    "customer.created": "ignored",
}


def test_there_is_a_sample_for_every_handled_event_a_refund_and_an_unrelated_one() -> None:
    assert {path.stem for path in SAMPLES} == set(EXPECTED)


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.stem)
def test_every_sample_event_goes_through_the_handler(
    path: Path, relay_env: pytest.MonkeyPatch, aws: Aws, sandbox: TrafficStarsSandbox
) -> None:
    from postback_relay.handlers.http import lambda_handler
    from postback_relay_dev.apigw import LocalContext

    relay_env.setenv("FX_RATES", '{"EUR": "1.08"}')
    relay_env.setenv("STRIPE_WEBHOOK_SECRET", TEST_STRIPE_SECRET)
    event = resign(json.loads(path.read_text()))
    assert event["version"] == "2.0" and event["rawPath"] == "/webhooks/stripe"
    assert json.loads(event["body"])["type"] == path.stem
    result = lambda_handler(event, LocalContext())
    assert (result["statusCode"], json.loads(result["body"])["status"]) == (200, EXPECTED[path.stem])


def test_the_console_never_shows_a_query_strings_token_or_key(relay_env: pytest.MonkeyPatch) -> None:
    """What `make run` prints of each request (its on_response) has the secrets of a tracker postback's query
    replaced, whatever their case or place, and the rest of the query as it was sent."""
    printed: list[tuple[str, str, int]] = []
    api = LocalApi(http_routes(load_template()), on_response=lambda m, p, s, b: printed.append((m, p, s))).start()
    try:
        query = "click_id=abc&token=SECRET-TOKEN&value=1.50&Key=SECRET-KEY&monkey=banana"
        requests.get(f"{api.base_url}/postback?{query}", timeout=10)
    finally:
        api.stop()
    [(method, path, _)] = printed
    assert method == "GET"
    assert path == "/postback?click_id=abc&token=***&value=1.50&Key=***&monkey=banana"
    assert "SECRET" not in repr(printed)


def test_a_tenants_route_over_http_is_that_tenants(
    api: LocalApi, aws: Aws, sandbox: TrafficStarsSandbox, relay_env: pytest.MonkeyPatch
) -> None:
    """`make run` serves the tenant routes of the template too: a tenant added to moto is served at once."""
    from postback_relay.runtime import reset_runtime
    from tests.support.tenants import TENANT_SECRET_PREFIX, add_tenant

    relay_env.setenv("TENANT_SECRET_PREFIX", TENANT_SECRET_PREFIX)
    reset_runtime()
    secrets = {"trafficstars_key": "ts-front-acme", "stripe_webhook_secret": "whsec_front_acme"}
    add_tenant(aws, "acme", ("stripe",), {"TRAFFICSTARS_URL": sandbox.base_url}, secrets)
    sandbox.state.accounts["acme"] = secrets["trafficstars_key"]
    body = stripe_event("checkout.session.completed", checkout_session())
    response = requests.post(
        f"{api.base_url}/webhooks/acme/stripe",
        data=body,
        headers={"Content-Type": "application/json", "Stripe-Signature": stripe_signature(body, "whsec_front_acme")},
        timeout=10,
    )
    assert (response.status_code, response.json()["conversion_id"]) == (200, "acme/stripe#pi_test_0001")
    assert [r.account for r in sandbox.state.received] == ["acme"]
    unknown = requests.post(f"{api.base_url}/webhooks/initech/stripe", data=body, timeout=10)
    assert (unknown.status_code, unknown.json()["error"]) == (404, "unknown_tenant")
