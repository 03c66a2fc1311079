"""The TrafficStars S2S postback: URL building, the GET, reading every answer the spec lists, key redaction.

Two URL forms (TRAFFICSTARS_URL_FORM):
- path (the seed spec): GET {base}/{click_id}?value={price}&lead_code={code}&key={key}
- query (the current "Advanced" form): GET {base}?clickid=…&goalid=…&value=…&price=…&lead_code=…
  &allow_duplicates=1&key=…, with a goal per kind of conversion.
Both over HTTPS. Answers are JSON: {"ok": true}, or {"error": {"msg": …}} with "invalid code", "invalid key",
"invalid price value: …", "the price should be between 0.010 and 200.000", or the lead_code-needs-HTTPS
message (the query form also answers "clickid is empty", "clickid is short")."""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal, NamedTuple
from urllib.parse import quote, urlencode

import requests

from postback_relay.core.money import format_value

REDACTED = "***"
_KEY_IN_TEXT = re.compile(r"(?i)(\bkey=|key%3D)[^&\s'\"<>)]*")
MAX_MESSAGE = 300

AnswerKind = Literal["ok", "rejected", "invalid_key", "retryable"]
UrlForm = Literal["path", "query"]
PriceSource = Literal["none", "value", "fixed"]


class Postback(NamedTuple):
    """What one postback carries, apart from the key. The last three exist only in the query form."""

    click_id: str
    lead_code: str
    value: Decimal | None = None
    goal_id: str | None = None
    price: Decimal | None = None  # the conversion's cost in a CPA campaign, never revenue unless configured so
    allow_duplicates: bool = False


@dataclass(frozen=True)
class PostbackOptions:
    """How postbacks are shaped: the URL form and, in the query form, the goal of each kind of conversion,
    the price and duplicates. TrafficStars charges a CPA campaign ``price`` per conversion, so it is sent
    only when configured: a fixed price, or (``value``) the value sent, deliberately."""

    form: UrlForm = "path"
    goal_ids: Mapping[str, str] = field(default_factory=dict)  # purchase / renewal / lead → goalid
    price: PriceSource = "none"
    fixed_price: Decimal | None = None
    allow_duplicates: bool = False

    def postback(self, click_id: str, lead_code: str, value: Decimal | None, goal: str) -> Postback:
        """The postback of one conversion of kind ``goal`` under these options."""
        if self.form == "path":
            return Postback(click_id, lead_code, value)
        price = {"value": value, "fixed": self.fixed_price}.get(self.price)
        return Postback(click_id, lead_code, value, self.goal_id(goal), price, self.allow_duplicates)

    def goal_id(self, goal: str) -> str | None:
        """The goalid of a kind; a renewal counts towards the purchase goal unless it has its own.
        None: no goalid is sent and TrafficStars counts the conversion towards its default goal."""
        if goal in self.goal_ids:
            return self.goal_ids[goal]
        return self.goal_ids.get("purchase") if goal == "renewal" else None


class Answer(NamedTuple):
    """TrafficStars' answer to one GET: what it means for us, its HTTP status and its own message."""

    kind: AnswerKind
    http_status: int | None
    message: str
    reason: str  # low-cardinality label for metrics: ok, invalid_code, price, https_required, invalid_key, …
    duration_ms: float = 0.0
    retry_after: str | None = None  # the Retry-After header of a 429/503, as sent


def build_url(base_url: str, postback: Postback, key: str, form: UrlForm = "path") -> str:
    """The path form {base}/{click_id}?value=…&lead_code=…&key=…, or the query form
    {base}?clickid=…&goalid=…&value=…&price=…&lead_code=…&allow_duplicates=1&key=…"""
    params: list[tuple[str, str]] = []
    if form == "query":
        params.append(("clickid", postback.click_id))
        if postback.goal_id is not None:
            params.append(("goalid", postback.goal_id))
    if postback.value is not None:
        params.append(("value", format_value(postback.value)))
    if form == "query" and postback.price is not None:
        params.append(("price", format_value(postback.price)))
    params.append(("lead_code", postback.lead_code))
    if form == "query" and postback.allow_duplicates:
        params.append(("allow_duplicates", "1"))
    key_part = "key=" + (REDACTED if key == REDACTED else quote(key, safe=""))
    if form == "query":
        return f"{base_url}?{urlencode(params)}&{key_part}"
    return f"{base_url}/{quote(postback.click_id, safe='')}?{urlencode(params)}&{key_part}"


def redact(text: str) -> str:
    """Replace the value of every ``key=`` in ``text`` (a URL, an exception message, a log line)."""
    return _KEY_IN_TEXT.sub(lambda match: match.group(1) + REDACTED, text)


def classify(http_status: int, body: str) -> tuple[AnswerKind, str, str]:
    """(kind, TrafficStars' message, reason) for one HTTP answer."""
    document = _json(body)
    message = _error_message(document)
    if 200 <= http_status < 300 and isinstance(document, dict) and document.get("ok") is True:
        return "ok", "ok", "ok"
    if message is not None:
        lowered = message.lower()
        if lowered == "invalid key":
            return "invalid_key", message, "invalid_key"
        if http_status >= 500 or http_status == 429:
            return "retryable", message, f"http_{http_status}"
        if "price" in lowered:
            return "rejected", message, "price"
        if "https" in lowered:
            return "rejected", message, "https_required"
        if "code" in lowered or "click" in lowered:
            return "rejected", message, "invalid_code"
        return "rejected", message, "other"
    snippet = _snippet(body) or "(empty body)"
    if http_status >= 500 or http_status in (408, 429) or 300 <= http_status < 400 or http_status < 300:
        # 2xx without {"ok": true} is not a confirmed delivery: retry with the same lead_code.
        return "retryable", f"HTTP {http_status}: {snippet}", f"http_{http_status}"
    return "rejected", f"HTTP {http_status}: {snippet}", f"http_{http_status}"


class TrafficStarsClient:
    """Sends postbacks over one pooled HTTPS session with a short total budget and no redirects."""

    def __init__(
        self,
        base_url: str,
        connect_timeout: float,
        read_timeout: float,
        session: requests.Session | None = None,
        form: UrlForm = "path",
    ) -> None:
        self.base_url = base_url
        self.timeout = (connect_timeout, read_timeout)
        self.session = session or environment_session(base_url)
        self.form: UrlForm = form

    def send(self, postback: Postback, key: str) -> Answer:
        """GET the postback. Never raises for network trouble and never lets the key out in a message."""
        url = build_url(self.base_url, postback, key, self.form)
        started = time.perf_counter()
        try:
            response = self.session.get(url, timeout=self.timeout, allow_redirects=False)
        except requests.Timeout as exc:
            return Answer("retryable", None, _scrub(f"timeout: {exc}", key), "timeout", _ms(started))
        except requests.exceptions.SSLError as exc:
            # Not the network: TrafficStars (or whatever answered at the URL) showed a certificate that the
            # trusted authorities (REQUESTS_CA_BUNDLE, else certifi's) do not vouch for. Still retried, since
            # the bundle can be fixed, but said for what it is so nobody goes looking at routes and firewalls.
            detail = f"certificate verification failed: {type(exc).__name__}: {exc}"
            return Answer("retryable", None, _scrub(detail, key), "certificate_error", _ms(started))
        except requests.RequestException as exc:
            detail = f"{type(exc).__name__}: {exc}"
            return Answer("retryable", None, _scrub(detail, key), "connection_error", _ms(started))
        kind, message, reason = classify(response.status_code, response.text)
        retry_after = response.headers.get("Retry-After") if kind == "retryable" else None
        return Answer(kind, response.status_code, _scrub(message, key), reason, _ms(started), retry_after)

    def redacted_url(self, postback: Postback) -> str:
        """The URL as it may be stored or logged: the key replaced."""
        return build_url(self.base_url, postback, REDACTED, self.form)


def environment_session(base_url: str) -> requests.Session:
    """A session that applies the environment (REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE, HTTPS_PROXY, NO_PROXY)
    as requests does, but reads it once here instead of on every request: with ``trust_env`` requests looks
    up the proxy variables and ~/.netrc per call, ~50 µs of a webhook's ~1 ms of CPU."""
    session = requests.Session()
    session.trust_env = False
    session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    session.proxies.update(requests.utils.get_environ_proxies(base_url))
    return session


class RedactKeyFilter(logging.Filter):
    """Scrubs ``key=…`` from records of loggers that may print request URLs (urllib3 at DEBUG)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        return True


for _name in ("urllib3", "urllib3.connectionpool", "requests"):
    logging.getLogger(_name).addFilter(RedactKeyFilter())


def _scrub(text: str, key: str) -> str:
    text = redact(text)
    if key:
        text = text.replace(key, REDACTED)
    return text[:MAX_MESSAGE]


def _json(body: str) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None


def _error_message(document: Any) -> str | None:
    if isinstance(document, dict):
        error = document.get("error")
        message = error.get("msg") if isinstance(error, dict) else None
        if isinstance(message, str):
            return message[:MAX_MESSAGE]
        if isinstance(error, str):
            return error[:MAX_MESSAGE]
    return None


def _snippet(body: str) -> str:
    return " ".join(body.split())[:120]


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)
