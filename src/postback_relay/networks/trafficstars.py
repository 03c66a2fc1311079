"""Everything TrafficStars: its settings, URL forms, key name, value range, click-id rule, the GET, reading
every answer the spec lists, key redaction. Nothing else in the package knows these; adding another network
means another module like this one and the selector in runtime.py.

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
from urllib.parse import quote, urlencode, urlsplit

import requests

from postback_relay import env
from postback_relay.core.conversion import GOAL_KINDS
from postback_relay.core.money import ValueRange, format_value
from postback_relay.core.outcome import Answer, AnswerKind

NAME = "trafficstars"
KEY_FIELD = "trafficstars_key"  # the S2S key's name in the relay's secret JSON
DEFAULT_URL = "https://tsyndicate.com/api/v1/cpa/action"
CLICK_ID_PATTERN = re.compile(r"[0-9a-f]{40}")  # what {click_id} in an ad's URL becomes (case-folded)
# TrafficStars answers "the price should be between 0.010 and 200.000" outside this range.
VALUE_RANGE = ValueRange(Decimal("0.01"), Decimal("200.0"))
REDACTED = "***"
_KEY_IN_TEXT = re.compile(r"(?i)(\bkey=|key%3D)[^&\s'\"<>)]*")
MAX_MESSAGE = 300

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


def _as_given(environ: Mapping[str, str], name: str, default: str) -> str:
    """The URL as set: from_env checks it with checked_url, which needs LOCAL_MODE as well."""
    return environ.get(name, default)


def _goal_id(environ: Mapping[str, str], name: str, default: str) -> str | None:
    goal_id = environ.get(name, default).strip()
    if goal_id and not (goal_id.isascii() and goal_id.isdigit()):
        raise env.SettingsError(f"{name} must be a TrafficStars goal id (digits), got {goal_id!r}")
    return goal_id or None


def _price(environ: Mapping[str, str], name: str, default: str) -> str | Decimal:
    """ "value", "none" (also empty), or a fixed price within the range TrafficStars takes."""
    raw = environ.get(name, default).strip().lower()
    if raw in ("", "none", "value"):
        return raw or "none"
    price = env.number(environ, name, "0", minimum=float(VALUE_RANGE.low))
    if price > VALUE_RANGE.high:
        raise env.SettingsError(f"{name} must be at most {VALUE_RANGE.high}, got {raw!r}")
    return price


# TrafficStars' environment variables (settings.py reads them through TrafficStarsSettings.from_env).
# Each tenant has its own account: the URL form, goals, price and duplicates are its own (per_tenant).
VARIABLES: tuple[env.Variable, ...] = (
    env.Variable("TRAFFICSTARS_URL", "url", _as_given, DEFAULT_URL, "TrafficStarsUrl", per_tenant=True),
    env.Variable(
        "TRAFFICSTARS_URL_FORM", "form", env.choice("path", "query"), "path", "TrafficStarsUrlForm", per_tenant=True
    ),
    *(
        env.Variable(
            f"TRAFFICSTARS_GOAL_{kind.upper()}",
            f"goal_ids.{kind}",
            _goal_id,
            "",
            f"GoalId{kind.title()}",
            per_tenant=True,
        )
        for kind in GOAL_KINDS
    ),
    env.Variable("TRAFFICSTARS_PRICE", "price", _price, "", "TrafficStarsPrice", per_tenant=True),
    env.Variable(
        "TRAFFICSTARS_ALLOW_DUPLICATES",
        "allow_duplicates",
        env.flag_reader,
        "false",
        "AllowDuplicates",
        per_tenant=True,
    ),
    env.Variable("TRAFFICSTARS_CONNECT_TIMEOUT", "connect_timeout_seconds", env.seconds(0.05), "1.0"),
    env.Variable("TRAFFICSTARS_READ_TIMEOUT", "read_timeout_seconds", env.seconds(0.05), "2.5"),
)


@dataclass(frozen=True)
class TrafficStarsSettings:
    """Where and how postbacks go (the environment variables: VARIABLES)."""

    url: str = DEFAULT_URL  # the base of /{click_id}?value=&lead_code=&key= (or of ?clickid=… in the query form)
    options: PostbackOptions = field(default_factory=PostbackOptions)
    connect_timeout_seconds: float = 1.0
    read_timeout_seconds: float = 2.5

    @classmethod
    def from_env(cls, environ: Mapping[str, str], local_mode: bool) -> TrafficStarsSettings:
        """Read and validate the TRAFFICSTARS_* variables; ``local_mode`` allows http:// on loopback."""
        values = env.read_variables(VARIABLES, environ)
        url = checked_url(values["url"], local_mode)
        return cls(url, _options(values), values["connect_timeout_seconds"], values["read_timeout_seconds"])


def checked_url(raw: str, local_mode: bool) -> str:
    """The base URL without its trailing slash, once it is HTTPS (or, in the local run, HTTP on loopback):
    the key and lead_code go only over HTTPS. Raises SettingsError naming TRAFFICSTARS_URL."""
    url = raw.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.query or parts.fragment or not parts.hostname:
        raise env.SettingsError(f"TRAFFICSTARS_URL must be a base URL without query, like {DEFAULT_URL}")
    if env.transport_allowed(parts.scheme, parts.hostname, local_mode):
        return url
    raise env.SettingsError(
        "TRAFFICSTARS_URL must use https: the key and lead_code go only over HTTPS "
        "(http:// is accepted only for a loopback host with LOCAL_MODE=true)"
    )


def _options(values: dict[str, Any]) -> PostbackOptions:
    """The postback's shape; goals, price and duplicates exist only in the query form, so setting one in the
    path form is a mistake said at start rather than a setting silently ignored."""
    goal_ids = {kind: goal for kind, goal in values["goal_ids"].items() if goal is not None}
    price = values["price"]
    if values["form"] == "path":
        given = [f"TRAFFICSTARS_GOAL_{kind.upper()}" for kind in goal_ids]
        given += ["TRAFFICSTARS_PRICE"] if price != "none" else []
        given += ["TRAFFICSTARS_ALLOW_DUPLICATES"] if values["allow_duplicates"] else []
        if given:
            raise env.SettingsError(f"{', '.join(given)} exist only in the query form: set TRAFFICSTARS_URL_FORM=query")
        return PostbackOptions()
    if isinstance(price, Decimal):
        return PostbackOptions("query", goal_ids, "fixed", price, values["allow_duplicates"])
    return PostbackOptions("query", goal_ids, price, None, values["allow_duplicates"])


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
    """Sends postbacks over one pooled HTTPS session with a short total budget and no redirects, shaped by
    ``options``. What the relay needs to know of the network (the key's name, the values it takes) it reads
    here."""

    key_field = KEY_FIELD
    value_range = VALUE_RANGE

    def __init__(
        self,
        base_url: str,
        connect_timeout: float,
        read_timeout: float,
        session: requests.Session | None = None,
        options: PostbackOptions | None = None,
    ) -> None:
        self.base_url = base_url
        self.timeout = (connect_timeout, read_timeout)
        self.session = session or environment_session(base_url)
        self.options = options or PostbackOptions()
        self.form: UrlForm = self.options.form

    @classmethod
    def from_settings(
        cls, settings: TrafficStarsSettings, shared: TrafficStarsClient | None = None
    ) -> TrafficStarsClient:
        """The client of a deployment's (or a tenant's) TrafficStars settings; with ``shared``, over that
        client's pooled session when both go to the same base URL (one pool for every tenant's postbacks)."""
        session = shared.session if shared is not None and shared.base_url == settings.url else None
        return cls(
            settings.url,
            settings.connect_timeout_seconds,
            settings.read_timeout_seconds,
            session,
            options=settings.options,
        )

    def postback(self, click_id: str, lead_code: str, value: Decimal | None, goal: str) -> Postback:
        """The postback of one conversion of kind ``goal`` under this client's options."""
        return self.options.postback(click_id, lead_code, value, goal)

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


def trusted_authorities() -> str | None:
    """The certificate bundle the environment names (REQUESTS_CA_BUNDLE, else CURL_CA_BUNDLE, as requests reads
    them); None for requests' own (certifi's)."""
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or None


def environment_session(base_url: str) -> requests.Session:
    """A session that applies the environment (REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE, HTTPS_PROXY, NO_PROXY)
    as requests does, but reads it once here instead of on every request: with ``trust_env`` requests looks
    up the proxy variables and ~/.netrc per call, ~50 µs of a webhook's ~1 ms of CPU."""
    session = requests.Session()
    session.trust_env = False
    session.verify = trusted_authorities() or True
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
