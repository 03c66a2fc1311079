"""The registry of platforms is the one place a platform is named: its signer and verifier agree, the local
run's secret and the tests' canaries derive from it, and a platform module parses without the settings, the
HTTP client or the ad network loaded."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import postback_relay
from postback_relay.core.conversion import ParseContext
from postback_relay.core.inbound import InboundRequest
from postback_relay.networks.trafficstars import CLICK_ID_PATTERN
from postback_relay.platforms import (
    BILLERS,
    POSTBACK_SOURCE,
    ROUTED,
    SOURCES,
    WebhookSource,
    route_name,
    sign,
    sign_query,
)
from postback_relay.platforms.base import SignatureMismatch
from postback_relay.settings import Settings
from postback_relay_dev import defaults
from tests.support.constants import TEST_SOURCE_SECRETS, TEST_STRIPE_SECRET

BODY = b'{"id": "evt_registry", "type": "checkout.session.completed"}'
WEBHOOK_SOURCES: dict[str, WebhookSource] = {**SOURCES, "postback": POSTBACK_SOURCE}


@pytest.mark.parametrize("route", [route for route in ROUTED if route not in BILLERS])
def test_what_a_source_signs_its_verify_accepts_and_another_secret_does_not(route: str) -> None:
    source = WEBHOOK_SOURCES[route]
    now = int(time.time())
    headers = {name.lower(): value for name, value in sign(route, BODY, "s3cret", now).items()}
    source.verify(BODY, headers, ["s3cret"], now, 300)
    with pytest.raises(SignatureMismatch):
        source.verify(BODY, headers, ["another"], now, 300)


@pytest.mark.parametrize("route", list(BILLERS))
def test_what_a_biller_signs_its_first_check_accepts_and_another_secret_does_not(route: str) -> None:
    biller = BILLERS[route]
    first = biller.checks[0]
    assert first.field == biller.secret_field and first.required
    signed = InboundRequest("POST", sign_query(route, "eventType=Test", "s3cret"), b"", {})
    first.verify(signed, ["s3cret"], ParseContext(CLICK_ID_PATTERN))
    with pytest.raises(SignatureMismatch):
        first.verify(signed, ["another"], ParseContext(CLICK_ID_PATTERN))


def test_only_the_url_tokens_carry_their_secret() -> None:
    carriers = [route for route, source in ROUTED.items() if source.signature_carries_secret]
    assert set(carriers) == {"ccbill", "segpay", "epoch", "postback"} & set(ROUTED)  # the URL tokens
    assert "t0ken" in sign("postback", b"", "t0ken").values()
    assert all("s3cret" not in sign(route, BODY, "s3cret").values() for route in ROUTED if route not in carriers)
    assert "token=t0ken" in sign_query("ccbill", "eventType=NewSaleSuccess", "t0ken")


def test_the_local_secret_holds_the_key_and_every_platforms_demo_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOPIFY_WEBHOOK_SECRET", "from-the-environment")
    values = defaults.secret_values()
    assert values == {
        "trafficstars_key": defaults.DEMO_TRAFFICSTARS_KEY,
        **{source.secret_field: source.demo_secret for source in ROUTED.values()},
        "shopify_webhook_secret": "from-the-environment",
    }


def test_the_local_secret_holds_a_reconcile_key_only_when_its_variable_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    for field in defaults.reconcile_fields():
        monkeypatch.delenv(field.upper(), raising=False)
    assert not set(defaults.reconcile_fields()) & set(defaults.secret_values())
    monkeypatch.setenv("STRIPE_API_KEY", "rk_test_from_the_environment")
    monkeypatch.setenv("WOOCOMMERCE_CONSUMER_SECRET", "cs_from_the_environment")
    values = defaults.secret_values()
    assert (values["stripe_api_key"], values["woocommerce_consumer_secret"]) == (
        "rk_test_from_the_environment",
        "cs_from_the_environment",
    )
    assert set(defaults.reconcile_fields()) == {
        "stripe_api_key",
        "shopify_admin_token",
        "woocommerce_consumer_key",
        "woocommerce_consumer_secret",
        "paddle_api_key",
        "lemonsqueezy_api_key",
    }


def test_the_canaries_cover_every_platform_and_are_distinct() -> None:
    fields = {source.secret_field for source in ROUTED.values()}
    assert set(TEST_SOURCE_SECRETS) | {"stripe_webhook_secret"} == fields
    assert len({*TEST_SOURCE_SECRETS.values(), TEST_STRIPE_SECRET}) == len(fields)


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/webhooks/stripe", "stripe"),
        ("/postback", "postback"),
        ("https://x.example/webhooks/paddle-sandbox/", "paddle-sandbox"),
    ],
)
def test_a_route_path_or_url_names_its_source(path: str, name: str) -> None:
    assert route_name(path) == name


def test_the_parse_context_defaults_are_the_settings_defaults() -> None:
    settings = Settings.from_env({"SECRET_ID": "s", "TABLE_NAME": "t"})
    assert ParseContext(CLICK_ID_PATTERN) == settings.parse_context


def test_a_platform_module_loads_neither_settings_nor_http_client_nor_network() -> None:
    """Parsing is pure: importing a platform must not pull in requests (and its urllib3 log filter), the
    settings or the ad network, so a unit test or another caller of ``parse`` needs none of them."""
    unwanted = ("requests", "postback_relay.settings", "postback_relay.networks")
    probe = f"import sys, postback_relay.platforms.stripe\nprint(','.join(m for m in {unwanted!r} if m in sys.modules))"
    env = {**os.environ, "PYTHONPATH": str(Path(postback_relay.__file__).resolve().parents[1])}
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, env=env)
    assert loaded.stdout.strip() == ""
