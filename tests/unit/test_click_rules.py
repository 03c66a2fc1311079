"""click.js's parsing and cookie-domain rules in Node.js, a second JavaScript engine beside the browser's, which
runs where Chromium cannot be installed. The cases: tests/support/click_cases.py."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support.click_cases import COOKIE_DOMAINS, FROM_URL

NODE = shutil.which("node")
HERE = Path(__file__).resolve().parent
SCRIPT = HERE.parents[1] / "src" / "postback_relay" / "web" / "click.js"

pytestmark = pytest.mark.skipif(NODE is None, reason="Node.js is not installed: the browser tests run these cases")


@pytest.fixture(scope="module")
def answers() -> dict[str, Any]:
    """Every case evaluated by one Node.js process, keyed by the call."""
    calls = [["fromUrl", [url, *([names] if names else [])]] for url, names, _ in FROM_URL]
    calls += [["cookieDomains", [host]] for host, _ in COOKIE_DOMAINS]
    assert NODE is not None
    result = subprocess.run(
        [NODE, str(HERE.parent / "support" / "click_rules.js"), str(SCRIPT)],
        input=json.dumps(calls),
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return {json.dumps(call): answer for call, answer in zip(calls, json.loads(result.stdout), strict=True)}


@pytest.mark.parametrize(("url", "names", "expected"), FROM_URL)
def test_from_url(answers: dict[str, Any], url: str, names: list[str] | None, expected: str | None) -> None:
    assert answers[json.dumps(["fromUrl", [url, *([names] if names else [])]])] == expected


@pytest.mark.parametrize(("host", "domains"), COOKIE_DOMAINS)
def test_cookie_domains(answers: dict[str, Any], host: str, domains: list[str]) -> None:
    assert answers[json.dumps(["cookieDomains", [host]])] == domains
