"""click.js, the landing-page script that carries the TrafficStars click id to the checkout, as the relay
serves it at ``GET /click.js``.

The file beside this module is the one source: merchants copy it from the repository, pin it with the README's
``integrity`` hash, or load it from the relay. It is read only when that route is asked for, so webhooks pay
nothing for it at a cold start."""

from __future__ import annotations

import base64
import functools
import hashlib
from pathlib import Path

CLICK_JS = Path(__file__).with_name("click.js")
JAVASCRIPT = "text/javascript; charset=utf-8"  # RFC 9239: text/javascript is the one JavaScript media type
# A year, and `immutable`: browsers then do not even revalidate. The file changes only with a relay release,
# and a page that pins it with `integrity` must change its tag then anyway (README, "click.js").
CACHE_CONTROL = "public, max-age=31536000, immutable"


@functools.cache
def click_script() -> bytes:
    """The script's bytes, exactly as in the repository (the integrity hash is over these)."""
    return CLICK_JS.read_bytes()


def integrity(script: bytes) -> str:
    """The Subresource Integrity value of ``script``: ``sha384-`` and the base64 of its SHA-384 digest."""
    return "sha384-" + base64.b64encode(hashlib.sha384(script).digest()).decode()


def click_script_headers() -> dict[str, str]:
    """Headers for the script. ``<script integrity=… crossorigin=anonymous>`` from another origin makes a CORS
    request, which fails without Access-Control-Allow-Origin; nosniff makes browsers insist on the type."""
    return {
        "Content-Type": JAVASCRIPT,
        "Cache-Control": CACHE_CONTROL,
        "Access-Control-Allow-Origin": "*",
        "Cross-Origin-Resource-Policy": "cross-origin",
        "X-Content-Type-Options": "nosniff",
        "ETag": f'"{integrity(click_script())}"',
    }
