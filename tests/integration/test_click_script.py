"""click.js as a file: what the relay serves at GET /click.js, its size budget, and the integrity hash the README
gives merchants for ``<script integrity=…>``. How it behaves in a page: tests/integration/test_click_browser.py."""

from __future__ import annotations

import base64
import gzip
import hashlib
import re
from pathlib import Path
from typing import Any

import pytest
import requests

from postback_relay import web
from postback_relay_dev.front import LocalApi
from postback_relay_dev.template import http_routes, load_template

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "src" / "postback_relay" / "web" / "click.js"
README = ROOT / "README.md"
GZIP_BUDGET = 2048  # bytes, gzip -9: the "under 2 KB gzipped", on every page of the merchant's site


def get(path: str, method: str = "GET") -> dict[str, Any]:
    """The real handler's answer to a request with no body (the Invoker reads answers as JSON; this one is not)."""
    from postback_relay.handlers.http import lambda_handler
    from postback_relay_dev.apigw import LocalContext, build_event

    result: dict[str, Any] = lambda_handler(
        build_event(method, path, [], b"", "", route_key=f"{method} {path}"), LocalContext()
    )
    return result


def sri(data: bytes) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode()


class TestServedByTheRelay:
    def test_get_click_js_answers_the_repository_file_as_javascript(self, relay_env: pytest.MonkeyPatch) -> None:
        result = get("/click.js")
        assert result["statusCode"] == 200 and result["isBase64Encoded"] is False
        assert result["body"].encode() == SCRIPT.read_bytes()
        assert result["headers"]["Content-Type"] == "text/javascript; charset=utf-8"

    def test_it_is_cached_for_a_year_without_revalidation_and_usable_with_integrity_from_any_origin(
        self, relay_env: pytest.MonkeyPatch
    ) -> None:
        headers = get("/click.js")["headers"]
        assert headers["Cache-Control"] == "public, max-age=31536000, immutable"
        assert headers["Access-Control-Allow-Origin"] == "*"  # <script crossorigin integrity> is a CORS request
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["ETag"] == f'"{sri(SCRIPT.read_bytes())}"'

    def test_make_run_serves_it_from_the_template_route_too(self, relay_env: pytest.MonkeyPatch) -> None:
        api = LocalApi(http_routes(load_template())).start()
        try:
            response = requests.get(f"{api.base_url}/click.js", timeout=5)
        finally:
            api.stop()
        assert (response.status_code, response.content) == (200, SCRIPT.read_bytes())
        assert response.headers["Content-Type"] == "text/javascript; charset=utf-8"

    def test_only_get_is_routed(self, relay_env: pytest.MonkeyPatch) -> None:
        assert get("/click.js", "POST")["statusCode"] == 404

    def test_the_template_routes_get_click_js_to_the_webhook_function(self) -> None:
        routes = {(r.method, r.path): r.function for r in http_routes(load_template())}
        assert routes[("GET", "/click.js")] == "WebhookFunction"


class TestTheFile:
    def test_gzipped_it_stays_within_its_budget(self) -> None:
        assert len(gzip.compress(SCRIPT.read_bytes(), compresslevel=9, mtime=0)) < GZIP_BUDGET

    def test_the_readme_gives_its_integrity_hash(self) -> None:
        readme = README.read_text(encoding="utf-8")
        given = set(re.findall(r"sha384-[A-Za-z0-9+/]{64}", readme))
        assert given == {sri(SCRIPT.read_bytes())}, "update the README's integrity= after changing click.js"
        assert web.integrity(web.click_script()) == sri(SCRIPT.read_bytes())

    def test_the_readme_tag_carries_the_files_version_so_a_new_file_gets_a_new_url(self) -> None:
        [version] = re.findall(r"^/\*! postback-relay click\.js (\d+) ", SCRIPT.read_text(encoding="utf-8"))
        assert set(re.findall(r"/click\.js\?v=(\d+)", README.read_text(encoding="utf-8"))) == {version}

    def test_the_readme_states_the_gzipped_size(self) -> None:
        size = len(gzip.compress(SCRIPT.read_bytes(), compresslevel=9, mtime=0))
        assert f"{size:,} bytes gzipped" in README.read_text(encoding="utf-8")

    def test_it_requests_nothing_but_shopifys_own_cart_endpoint(self) -> None:
        text = SCRIPT.read_text(encoding="utf-8")
        assert re.findall(r"\b(fetch|XMLHttpRequest|sendBeacon|WebSocket|EventSource|importScripts)\b", text) == [
            "fetch"
        ]
        assert '"cart/update.js"' in text
        assert not re.search(r"new Image|\.src\s*=|createElement\(\"(script|img|iframe|link)", text)
