"""A real headless Chromium and a merchant's site for click.js, all on loopback.

The site is one HTTPS server on 127.0.0.1 answering for several hostnames (Chromium's host rules map them there):
`www.shop.test` and `pay.shop.test` share a registrable domain, `www.shop.co.uk` sits under a multi-part public
suffix, and `localhost` and `127.0.0.1` are the hosts a cookie must not get a Domain= on. It serves the pages a
test registers, click.js itself (the package's file, the one source), and Shopify's `/cart/update.js`; it records
every request, so a test can say what the page asked for.

Chromium is started so that it makes no request of its own (no first-run, background networking, component
updates, sync, safe browsing, field trials, proxies), and every other hostname resolves to nothing: a request that
tried to leave would fail and still show in the DevTools log that `Browser.requests()` reads."""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import json
import shutil
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from postback_relay import web

SITE_NAMES = ("shop.test", "*.shop.test", "shop.co.uk", "*.shop.co.uk")
SKIP_REASON = (
    "click.js browser tests skipped: Debian's chromium and chromium-driver are not installed "
    "(`make unit` installs them where apt-get and root are available: scripts/install-browser.sh)"
)


def chromium() -> tuple[str, str] | None:
    """Paths of the Chromium binary and of its chromedriver, or None when either is missing."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (binary, driver) if binary and driver else None


@dataclass(frozen=True)
class SiteCertificate:
    cert_file: Path
    key_file: Path
    spki_sha256: str  # what --ignore-certificate-errors-spki-list trusts: base64(SHA-256(SubjectPublicKeyInfo))


def make_site_certificate(directory: Path) -> SiteCertificate:
    """A self-signed certificate for the site's hostnames, localhost and 127.0.0.1."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    names: list[x509.GeneralName] = [x509.DNSName(n) for n in (*SITE_NAMES, "localhost")]
    names.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "shop.test")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "site.pem", directory / "site-key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    spki = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return SiteCertificate(cert_file, key_file, base64.b64encode(hashlib.sha256(spki).digest()).decode())


@dataclass(frozen=True)
class Seen:
    """One request the site received."""

    method: str
    host: str  # the Host header without the port
    path: str  # with the query string
    body: bytes


@dataclass
class SiteState:
    pages: dict[str, str] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        pass

    def _record(self, body: bytes = b"") -> str:
        with self.server.state.lock:
            self.server.state.seen.append(
                Seen(self.command, self.headers.get("Host", "").split(":")[0], self.path, body)
            )
        return urlsplit(self.path).path

    def do_GET(self) -> None:
        path = self._record()
        if path == "/click.js":
            self._reply(200, web.click_script(), web.JAVASCRIPT)
        elif path in self.server.state.pages:
            self._reply(200, self.server.state.pages[path].encode(), "text/html; charset=utf-8")
        else:
            self._reply(404, b"not found", "text/plain")

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        path = self._record(body)
        if path == "/cart/update.js":  # Shopify's Ajax API answers with the cart
            self._reply(200, json.dumps({"token": "cart-token", "attributes": {}}).encode(), "application/json")
        else:
            self._reply(404, b"not found", "text/plain")

    def _reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: SiteState, certificate: SiteCertificate) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state = state
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(certificate.cert_file, certificate.key_file)
        self.socket = context.wrap_socket(self.socket, server_side=True)


class Site:
    """The merchant's site: ``site.page("/landing", html)``, then ``site.url("www.shop.test", "/landing?…")``."""

    def __init__(self, certificate: SiteCertificate) -> None:
        self.state = SiteState()
        self._server = _Server(self.state, certificate)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="click-site", daemon=True)

    def start(self) -> Site:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def page(self, path: str, html: str) -> None:
        self.state.pages[path] = html

    def url(self, host: str, path: str) -> str:
        return f"https://{host}:{self.port}{path}"

    def seen(self) -> list[Seen]:
        with self.state.lock:
            return list(self.state.seen)

    def reset(self) -> None:
        with self.state.lock:
            self.state.pages.clear()
            self.state.seen.clear()


def chromium_flags(certificate: SiteCertificate) -> list[str]:
    """Headless, and quiet: nothing Chromium would fetch for itself, and only the site's names resolve."""
    rules = ", ".join(
        [*(f"MAP {name} 127.0.0.1" for name in SITE_NAMES), "MAP * ~NOTFOUND", "EXCLUDE localhost", "EXCLUDE 127.0.0.1"]
    )
    return [
        "--headless=new",
        "--no-sandbox",  # root in CI: Chromium refuses its sandbox there
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--no-first-run",
        "--no-default-browser-check",
        "--no-proxy-server",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        "--disable-extensions",
        "--disable-domain-reliability",
        "--disable-client-side-phishing-detection",
        "--disable-breakpad",
        "--disable-field-trial-config",
        "--metrics-recording-only",
        "--safebrowsing-disable-auto-update",
        "--disable-features=OptimizationHints,Translate,MediaRouter,AutofillServerCommunication,"
        "CertificateTransparencyComponentUpdater,NetworkTimeServiceQuerying",
        f"--host-resolver-rules={rules}",
        f"--ignore-certificate-errors-spki-list={certificate.spki_sha256}",
    ]


class Browser:
    """One headless Chromium driven over WebDriver, with its DevTools network log."""

    def __init__(self, certificate: SiteCertificate) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        paths = chromium()
        assert paths is not None, SKIP_REASON
        options = webdriver.ChromeOptions()
        options.binary_location = paths[0]
        for flag in chromium_flags(certificate):
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
        self.driver = webdriver.Chrome(options=options, service=Service(executable_path=paths[1]))
        self.driver.set_page_load_timeout(20)
        self._origins: set[str] = set()

    def quit(self) -> None:
        self.driver.quit()

    def open(self, url: str) -> None:
        parts = urlsplit(url)
        self._origins.add(f"{parts.scheme}://{parts.netloc}")
        self.driver.get(url)

    def js(self, script: str, *args: Any) -> Any:
        """Run ``script`` (a function body: ``return …``) in the page."""
        return self.driver.execute_script(script, *args)

    def until(self, script: str, timeout: float = 5) -> Any:
        """Wait until ``script`` returns something truthy in the page, and return it."""
        from selenium.webdriver.support.ui import WebDriverWait

        return WebDriverWait(self.driver, timeout, poll_frequency=0.05).until(lambda d: d.execute_script(script))

    def cookies(self) -> list[dict[str, Any]]:
        """Every cookie the browser holds, whatever its domain (DevTools Storage.getCookies)."""
        result: dict[str, Any] = self.driver.execute_cdp_cmd("Storage.getCookies", {})
        return list(result["cookies"])

    def requests(self) -> Iterator[str]:
        """URLs of the requests the pages made since the last call (DevTools Network.requestWillBeSent)."""
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message.get("method") == "Network.requestWillBeSent":
                yield str(message["params"]["request"]["url"])

    def reset(self) -> None:
        """Forget cookies, storage and the network log, so each test starts as a new visitor."""
        self.driver.get("about:blank")
        self.driver.execute_cdp_cmd("Storage.clearCookies", {})
        for origin in self._origins:
            self.driver.execute_cdp_cmd("Storage.clearDataForOrigin", {"origin": origin, "storageTypes": "all"})
        self.driver.execute_cdp_cmd("Emulation.setDocumentCookieDisabled", {"disabled": False})
        self.driver.get_log("performance")


def page(body: str, *, attrs: str = "", head: str = "") -> str:
    """An HTML page that loads /click.js in its head, as the README tells merchants to (``attrs`` configure it)."""
    return (
        f'<!doctype html><html><head><meta charset="utf-8"><link rel="icon" href="data:,">{head}'
        f'<script src="/click.js" {attrs}></script></head><body>{body}</body></html>'
    )
