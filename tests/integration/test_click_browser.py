"""click.js in a real headless Chromium: a visitor lands from a TrafficStars ad with ``?click_id=<40 hex>``, then
reaches the checkout on the same site, where every kind of checkout link and button must carry the id to the
place the relay reads it (src/postback_relay/platforms/*.py). The site and the browser are on loopback
(tests/support/browser.py); nothing the page asks for may leave it."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar
from urllib.parse import parse_qs, urlsplit

import pytest

from postback_relay_dev.sandbox import TrafficStarsSandbox
from tests.support.aws import Aws
from tests.support.browser import SKIP_REASON, Browser, Site, SiteCertificate, chromium, make_site_certificate, page
from tests.support.click_cases import CLICK, COOKIE_DOMAINS, FROM_URL, NEWER
from tests.support.constants import TEST_STRIPE_SECRET
from tests.support.helpers import Invoker, checkout_session, stripe_event

pytestmark = pytest.mark.skipif(chromium() is None, reason=SKIP_REASON)

T = TypeVar("T")
LANDING, CHECKOUT = "/landing", "/checkout"

# What a merchant's checkout page holds, one element per platform, each as that platform documents it.
CHECKOUT_BODY = """
<a id="payment-link" href="https://buy.stripe.com/test_8wM6pQ?prefilled_email=jenny%40example.com">Pay</a>
<a id="payment-link-own-reference" href="https://buy.stripe.com/test_8wM6pQ?client_reference_id=order_42">Pay</a>
<stripe-buy-button id="buy-button" buy-button-id="buy_btn_1Q" publishable-key="pk_test_x"></stripe-buy-button>
<stripe-pricing-table id="pricing-table" pricing-table-id="prctbl_1Q" publishable-key="pk_test_x">
</stripe-pricing-table>
<a id="paddle" href="#" class="paddle_button" data-items='[{"priceId":"pri_01h","quantity":1}]'
   data-custom-data='{"plan":"pro"}'>Buy with Paddle</a>
<a id="lemon" href="https://demo.lemonsqueezy.com/checkout/buy/9f1c2a3b?embed=1" class="lemonsqueezy-button">Buy</a>
<form id="woo" class="checkout woocommerce-checkout" method="post" action="/checkout/">
  <input name="billing_email"></form>
<a id="ccbill" href="https://api.ccbill.com/wap-frontflex/flexforms/4319ea1d?clientSubacc=0000">Join</a>
<a id="custom-domain" href="https://pay.shop.test/b/8wM6pQ" data-click-param="client_reference_id">Pay</a>
<a id="unrelated" href="https://elsewhere.example/offer?a=1">Elsewhere</a>
<a id="lemon-account" href="https://app.lemonsqueezy.com/my-orders">Your orders</a>
"""
# Stripe's buy-button.js defines <stripe-buy-button> and reads its attributes when the element is connected.
# This stand-in does the same and records what it read, so a test sees what the real component would render.
BUY_BUTTON_STAND_IN = """<script>
window.connected = [];
customElements.define("stripe-buy-button", class extends HTMLElement {
  connectedCallback() { window.connected.push(this.getAttribute("client-reference-id")); }
});
</script>"""


@pytest.fixture(scope="module")
def site_certificate(tmp_path_factory: pytest.TempPathFactory) -> SiteCertificate:
    return make_site_certificate(tmp_path_factory.mktemp("site-tls"))


@pytest.fixture(scope="module")
def site_server(site_certificate: SiteCertificate) -> Iterator[Site]:
    server = Site(site_certificate).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def chrome(site_certificate: SiteCertificate) -> Iterator[Browser]:
    browser = Browser(site_certificate)
    yield browser
    browser.quit()


@pytest.fixture
def site(site_server: Site, chrome: Browser) -> Site:
    """The site with a landing and a checkout page, and a browser that has never seen it."""
    chrome.reset()
    site_server.reset()
    site_server.page(LANDING, page("<h1>Offer</h1>"))
    site_server.page(CHECKOUT, page(CHECKOUT_BODY, head=BUY_BUTTON_STAND_IN))
    return site_server


def land(chrome: Browser, site: Site, query: str, host: str = "www.shop.test") -> None:
    chrome.open(site.url(host, f"{LANDING}?{query}" if query else LANDING))


def href(chrome: Browser, element_id: str) -> str:
    return str(chrome.js("return document.getElementById(arguments[0]).getAttribute('href')", element_id))


def query(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


def until(check: Callable[[], T], timeout: float = 5) -> T:
    """Wait for ``check`` to return something truthy (the page's requests are asynchronous)."""
    deadline = time.monotonic() + timeout
    while not (result := check()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return result


def click_cookies(chrome: Browser) -> list[dict[str, object]]:
    return [c for c in chrome.cookies() if c["name"] == "ts_click_id"]


def stored(chrome: Browser) -> str | None:
    value = chrome.js("return window.postbackRelay.clickId()")
    return None if value is None else str(value)


class TestLanding:
    def test_a_valid_click_id_is_kept_in_a_first_party_cookie_on_the_registrable_domain(
        self, chrome: Browser, site: Site
    ) -> None:
        land(chrome, site, f"click_id={CLICK}&utm_source=trafficstars")
        [cookie] = click_cookies(chrome)
        assert (cookie["value"], cookie["domain"], cookie["path"]) == (CLICK, ".shop.test", "/")
        assert (cookie["sameSite"], cookie["secure"], cookie["httpOnly"]) == ("Lax", True, False)
        days = (float(str(cookie["expires"])) - time.time()) / 86400
        assert 29.9 < days <= 30

    def test_the_id_is_case_folded_and_trimmed_as_the_relay_does(self, chrome: Browser, site: Site) -> None:
        land(chrome, site, f"click_id=%20{CLICK.upper()}%20")
        assert [c["value"] for c in click_cookies(chrome)] == [CLICK]

    @pytest.mark.parametrize(
        "bad", ["", "not-a-click", CLICK[:-1], CLICK + "0", CLICK.replace("c", "g", 1), "%7B%7Bclick_id%7D%7D"]
    )
    def test_an_invalid_or_empty_id_stores_nothing(self, chrome: Browser, site: Site, bad: str) -> None:
        land(chrome, site, f"click_id={bad}")
        assert click_cookies(chrome) == []
        assert chrome.js("return localStorage.length") == 0
        assert stored(chrome) is None

    def test_the_advertiser_names_the_parameter(self, chrome: Browser, site: Site) -> None:
        site.page(LANDING, page("", attrs='data-param="tracking_param,click_id"'))
        land(chrome, site, f"tracking_param={CLICK}")
        assert [c["value"] for c in click_cookies(chrome)] == [CLICK]

    def test_days_sets_the_cookie_lifetime(self, chrome: Browser, site: Site) -> None:
        site.page(LANDING, page("", attrs='data-days="7"'))
        land(chrome, site, f"click_id={CLICK}")
        [cookie] = click_cookies(chrome)
        assert 6.9 < (float(str(cookie["expires"])) - time.time()) / 86400 <= 7


class TestCookieDomainInTheBrowser:
    """Where the cookie really lands, as Chromium (with its own public suffix list) accepts it."""

    @pytest.mark.parametrize(
        ("host", "domain"),
        [
            ("www.shop.test", ".shop.test"),
            ("shop.test", ".shop.test"),
            ("a.b.shop.test", ".shop.test"),
            ("www.shop.co.uk", ".shop.co.uk"),  # never co.uk: a multi-part public suffix
            ("localhost", "localhost"),  # host-only: Domain=localhost is refused
            ("127.0.0.1", "127.0.0.1"),  # host-only: an IP has no parent domain
        ],
    )
    def test_the_cookie_goes_on_the_widest_domain_that_is_not_a_public_suffix(
        self, chrome: Browser, site: Site, host: str, domain: str
    ) -> None:
        land(chrome, site, f"click_id={CLICK}", host=host)
        assert [(c["domain"], c["value"]) for c in click_cookies(chrome)] == [(domain, CLICK)]

    def test_with_cookies_refused_localstorage_keeps_the_id(self, chrome: Browser, site: Site) -> None:
        chrome.driver.execute_cdp_cmd("Emulation.setDocumentCookieDisabled", {"disabled": True})
        land(chrome, site, f"click_id={CLICK}")
        chrome.open(site.url("www.shop.test", CHECKOUT))
        assert click_cookies(chrome) == []
        assert stored(chrome) == CLICK
        assert query(href(chrome, "payment-link"))["client_reference_id"] == [CLICK]


class TestCheckout:
    @pytest.fixture
    def checkout(self, chrome: Browser, site: Site) -> Browser:
        """Landed on www.shop.test, now on the checkout at pay.shop.test: only the cookie links the two."""
        land(chrome, site, f"click_id={CLICK}")
        chrome.open(site.url("pay.shop.test", CHECKOUT))
        return chrome

    def test_a_stripe_payment_link_gets_client_reference_id(self, checkout: Browser) -> None:
        assert query(href(checkout, "payment-link")) == {
            "prefilled_email": ["jenny@example.com"],
            "client_reference_id": [CLICK],
        }

    def test_a_payment_link_with_the_merchants_own_reference_is_left_alone(self, checkout: Browser) -> None:
        assert query(href(checkout, "payment-link-own-reference")) == {"client_reference_id": ["order_42"]}

    def test_a_stripe_buy_button_and_pricing_table_get_client_reference_id(self, checkout: Browser) -> None:
        attribute = "return document.getElementById(arguments[0]).getAttribute('client-reference-id')"
        assert checkout.js(attribute, "buy-button") == CLICK
        assert checkout.js(attribute, "pricing-table") == CLICK
        # The component had already rendered without it; it is connected again, and now reads the id.
        assert checkout.js("return window.connected") == [None, CLICK]

    def test_a_paddle_button_gets_click_id_in_its_custom_data(self, checkout: Browser) -> None:
        custom = checkout.js("return document.getElementById('paddle').getAttribute('data-custom-data')")
        assert json.loads(custom) == {"plan": "pro", "click_id": CLICK}

    def test_a_lemon_squeezy_checkout_link_gets_checkout_custom_click_id(self, checkout: Browser) -> None:
        assert query(href(checkout, "lemon")) == {"embed": ["1"], "checkout[custom][click_id]": [CLICK]}

    def test_the_woocommerce_checkout_form_gets_a_hidden_click_id_field(self, checkout: Browser) -> None:
        fields = checkout.js("return [...document.getElementById('woo').elements].map(e => [e.name, e.type, e.value])")
        assert fields == [["billing_email", "text", ""], ["click_id", "hidden", CLICK]]

    def test_a_ccbill_flexform_link_gets_click_id_which_ccbill_posts_back_as_x_click_id(
        self, checkout: Browser
    ) -> None:
        assert query(href(checkout, "ccbill")) == {"clientSubacc": ["0000"], "click_id": [CLICK]}

    def test_data_click_param_names_the_parameter_for_a_custom_domain(self, checkout: Browser) -> None:
        assert query(href(checkout, "custom-domain")) == {"client_reference_id": [CLICK]}

    def test_links_to_anyone_else_are_untouched(self, checkout: Browser) -> None:
        assert href(checkout, "unrelated") == "https://elsewhere.example/offer?a=1"
        assert href(checkout, "lemon-account") == "https://app.lemonsqueezy.com/my-orders"  # not a checkout

    def test_click_id_hands_the_id_to_server_side_checkout_code(self, checkout: Browser) -> None:
        assert stored(checkout) == CLICK

    def test_links_added_or_changed_after_load_are_decorated(self, checkout: Browser) -> None:
        checkout.js(
            """const a = document.createElement('a'); a.id = 'late';
            a.href = 'https://buy.stripe.com/test_late'; document.body.appendChild(a);
            document.getElementById('unrelated').href = 'https://buy.stripe.com/test_changed';"""
        )
        checkout.until("return document.getElementById('late').href.includes('client_reference_id')")
        checkout.until("return document.getElementById('unrelated').href.includes('client_reference_id')")
        assert query(href(checkout, "late")) == {"client_reference_id": [CLICK]}
        assert query(href(checkout, "unrelated")) == {"client_reference_id": [CLICK]}

    def test_no_request_leaves_the_page(self, checkout: Browser, site: Site) -> None:
        checkout.js(
            "document.body.appendChild(Object.assign(document.createElement('a'), {href: 'https://buy.stripe.com/x'}))"
        )
        checkout.until("return document.querySelector('a[href*=\"/x?\"]')")
        requested = list(checkout.requests())
        assert requested, "the DevTools log shows the pages' own requests"
        assert {urlsplit(url).netloc for url in requested} <= {
            f"www.shop.test:{site.port}",
            f"pay.shop.test:{site.port}",
        }
        assert sorted((s.host, s.path) for s in site.seen() if s.path.startswith("/click.js")) == [
            ("pay.shop.test", "/click.js"),
            ("www.shop.test", "/click.js"),
        ]
        assert [s.method for s in site.seen()] == ["GET"] * 4  # two pages and the script twice: nothing else
        assert checkout.js("return performance.getEntriesByType('resource').map(e => e.name)") == [
            site.url("pay.shop.test", "/click.js")
        ]


class TestLaterVisits:
    def test_a_later_visit_with_an_invalid_or_missing_id_keeps_the_valid_one(self, chrome: Browser, site: Site) -> None:
        land(chrome, site, f"click_id={CLICK}")
        for later in ["click_id=", "click_id=garbage", f"click_id={CLICK[:20]}", "", "utm_source=newsletter"]:
            land(chrome, site, later)
        assert [c["value"] for c in click_cookies(chrome)] == [CLICK]
        assert stored(chrome) == CLICK

    def test_a_newer_valid_click_replaces_it_last_click_wins(self, chrome: Browser, site: Site) -> None:
        land(chrome, site, f"click_id={CLICK}")
        land(chrome, site, f"click_id={NEWER}", host="shop.test")
        chrome.open(site.url("pay.shop.test", CHECKOUT))
        assert [(c["domain"], c["value"]) for c in click_cookies(chrome)] == [(".shop.test", NEWER)]
        assert query(href(chrome, "payment-link"))["client_reference_id"] == [NEWER]

    def test_a_link_decorated_with_an_older_click_gets_the_newer_one(self, chrome: Browser, site: Site) -> None:
        site.page(CHECKOUT, page(f'<a id="old" href="https://buy.stripe.com/t?client_reference_id={CLICK}">Pay</a>'))
        land(chrome, site, f"click_id={NEWER}")
        chrome.open(site.url("www.shop.test", CHECKOUT))
        assert query(href(chrome, "old")) == {"client_reference_id": [NEWER]}

    def test_with_first_click_attribution_the_first_valid_click_stays(self, chrome: Browser, site: Site) -> None:
        site.page(LANDING, page("", attrs='data-attribution="first"'))
        site.page(CHECKOUT, page(CHECKOUT_BODY, attrs='data-attribution="first"', head=BUY_BUTTON_STAND_IN))
        land(chrome, site, f"click_id={CLICK}")
        land(chrome, site, f"click_id={NEWER}")
        chrome.open(site.url("www.shop.test", f"{CHECKOUT}?click_id={NEWER}"))
        assert [c["value"] for c in click_cookies(chrome)] == [CLICK]
        assert query(href(chrome, "payment-link"))["client_reference_id"] == [CLICK]


class TestConsent:
    @pytest.fixture
    def gated(self, site: Site) -> Site:
        site.page(
            LANDING,
            page('<a id="payment-link" href="https://buy.stripe.com/t">Pay</a>', attrs='data-consent="required"'),
        )
        return site

    def test_until_consent_nothing_is_stored_or_decorated(self, chrome: Browser, gated: Site) -> None:
        land(chrome, gated, f"click_id={CLICK}")
        assert click_cookies(chrome) == []
        assert chrome.js("return localStorage.length + sessionStorage.length") == 0
        assert stored(chrome) is None
        assert href(chrome, "payment-link") == "https://buy.stripe.com/t"

    def test_consent_stores_the_id_of_this_landing_and_decorates(self, chrome: Browser, gated: Site) -> None:
        land(chrome, gated, f"click_id={CLICK}")
        chrome.js("window.postbackRelay.consent(true)")
        assert [c["value"] for c in click_cookies(chrome)] == [CLICK]
        assert query(href(chrome, "payment-link")) == {"client_reference_id": [CLICK]}

    def test_consent_withdrawn_erases_the_cookie_and_the_copy(self, chrome: Browser, gated: Site) -> None:
        land(chrome, gated, f"click_id={CLICK}")
        chrome.js("window.postbackRelay.consent(true)")
        chrome.js("window.postbackRelay.consent(false)")
        assert click_cookies(chrome) == []
        assert chrome.js("return localStorage.length") == 0
        assert stored(chrome) is None


class TestShopify:
    def test_on_a_shopify_store_the_id_becomes_a_cart_attribute(self, chrome: Browser, site: Site) -> None:
        shop = '<script>window.Shopify = {shop: "demo.myshopify.com", routes: {root: "/"}};</script>'
        site.page(LANDING, page("", head=shop))
        land(chrome, site, f"click_id={CLICK}")
        updates = until(lambda: [s for s in site.seen() if s.path == "/cart/update.js"])
        [update] = updates
        assert (update.method, update.host) == ("POST", "www.shop.test")
        assert parse_qs(update.body.decode()) == {"attributes[click_id]": [CLICK]}

    def test_elsewhere_no_cart_request_is_made(self, chrome: Browser, site: Site) -> None:
        land(chrome, site, f"click_id={CLICK}")
        chrome.open(site.url("www.shop.test", CHECKOUT))
        assert [s.path for s in site.seen() if "cart" in s.path] == []


class TestPureFunctions:
    """The parsing and cookie-domain rules (tests/support/click_cases.py), in the browser's JavaScript engine."""

    @pytest.fixture
    def engine(self, chrome: Browser, site_server: Site) -> Browser:
        """A page with click.js loaded, opened once for all these cases (they store nothing)."""
        if not chrome.js("return location.pathname == '/engine' && !!window.postbackRelay"):
            site_server.page("/engine", page(""))
            chrome.open(site_server.url("www.shop.test", "/engine"))
        return chrome

    @pytest.mark.parametrize(("url", "names", "expected"), FROM_URL)
    def test_from_url(self, engine: Browser, url: str, names: list[str] | None, expected: str | None) -> None:
        call = "return window.postbackRelay.fromUrl(...arguments)"
        assert engine.js(call, url, *([names] if names else [])) == expected

    @pytest.mark.parametrize(("host", "domains"), COOKIE_DOMAINS)
    def test_cookie_domains(self, engine: Browser, host: str, domains: list[str]) -> None:
        assert engine.js("return window.postbackRelay.cookieDomains(arguments[0])", host) == domains


class TestEndToEnd:
    def test_a_payment_link_decorated_in_the_browser_becomes_one_postback_for_that_click(
        self, chrome: Browser, site: Site, invoke: Invoker, aws: Aws, sandbox: TrafficStarsSandbox
    ) -> None:
        land(chrome, site, f"click_id={CLICK}")
        chrome.open(site.url("pay.shop.test", CHECKOUT))
        [reference] = query(href(chrome, "payment-link"))["client_reference_id"]
        # The buyer follows the link; Stripe copies its client_reference_id onto the Checkout Session it creates
        # (Stripe, "Track a payment link": the client_reference_id URL parameter) and signs the completed event.
        session = checkout_session(click_id=reference, payment_intent="pi_click_js_e2e", session_id="cs_click_js")
        body = stripe_event("checkout.session.completed", session)
        first = invoke.stripe(body, TEST_STRIPE_SECRET)
        redelivery = invoke.stripe(body, TEST_STRIPE_SECRET)
        assert (first.status, first.body["status"]) == (200, "sent")
        assert (redelivery.status, redelivery.body["status"]) == (200, "duplicate")
        [postback] = sandbox.state.received
        assert (postback.click_id, postback.key_matched) == (CLICK, True)
        [record] = aws.items()
        assert record["click_id"] == CLICK and record["status"] == "sent"


def test_the_page_is_served_the_file_in_the_repository(chrome: Browser, site: Site) -> None:
    land(chrome, site, "")
    served = chrome.js("return fetch('/click.js').then(r => r.text())")
    assert served == (Path(__file__).resolve().parents[2] / "src/postback_relay/web/click.js").read_text()
