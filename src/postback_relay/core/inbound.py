"""One inbound request as the platform sent it, whatever its shape: the exact bytes, the ordered query and form
pairs, the headers, the method and the address it came from. Pure: the HTTP handler builds it from API Gateway's
event, the platforms read it, the checks authenticate it.

Why pairs and not a dict: API Gateway's `queryStringParameters` joins a repeated parameter's values with commas
(so `a=1,2` and `a=1&a=2` look alike), and some billers sign or echo the parameters in the order received. The
pairs come from the raw query string and the raw body, with duplicates and blanks kept. The source address is
API Gateway's `requestContext.http.sourceIp` (the TCP peer it saw), never `X-Forwarded-For`, which anyone can
write."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple
from urllib.parse import parse_qsl

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
# The relay's URL token travels as this query parameter (GET /postback, the billers' URLs): checked by the
# platforms, never passed on to a merchant's endpoint (forward mode).
TOKEN_PARAMETER = "token"  # noqa: S105 - a parameter's name, not a secret

Pairs = tuple[tuple[str, str], ...]


def _pairs(text: str) -> Pairs:
    return tuple(parse_qsl(text, keep_blank_values=True))


class ConflictingField(ValueError):
    """A request names one field twice with different values."""


@dataclass(frozen=True)
class InboundRequest:
    """What reached a route: method, raw query, exact body bytes, headers (lower-case names) and source IP."""

    method: str
    raw_query: str
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    source_ip: str = ""
    route: str = ""  # the ROUTED name of the route it reached (`verotel`, `postback`): forward mode's key

    @property
    def query_pairs(self) -> Pairs:
        """The query string's parameters, in order, duplicates and blanks kept."""
        return _pairs(self.raw_query)

    @property
    def is_form(self) -> bool:
        """True when the body is URL-encoded form data (by its content type)."""
        content_type = str(self.headers.get("content-type", "")).split(";", 1)[0].strip().lower()
        return content_type == FORM_CONTENT_TYPE

    @property
    def form_pairs(self) -> Pairs:
        """The form body's fields, in order (none when the body is not a form)."""
        if not self.is_form or not self.body:
            return ()
        return _pairs(self.body.decode("utf-8", "replace"))

    @property
    def params(self) -> Pairs:
        """The query's pairs then the form's: a biller that puts the event type in the query and the data in the
        body (CCBill), or fills a URL template's macros in either (Segpay), is read from one list."""
        return self.query_pairs + self.form_pairs

    def fields(self) -> dict[str, str]:
        """The query's pairs then the form's as one mapping, without the relay's token: how a biller that fills
        a URL template's macros (Segpay) or posts a form (Epoch) is read. ConflictingField for a name sent twice
        with different values (which one the platform meant cannot be known); the same value twice is one."""
        fields: dict[str, str] = {}
        for name, value in self.params:
            if name == TOKEN_PARAMETER:
                continue
            if name in fields and fields[name] != value:
                raise ConflictingField(f"the parameter {name!r} is sent twice with different values")
            fields[name] = value
        return fields

    def without_parameter(self, name: str) -> str:
        """The raw query string without any ``name=`` pair (the URL token), every other byte as sent: what is
        forwarded to a merchant's endpoint, which must never learn the relay's token."""
        return query_without(self.raw_query, name)


def query_without(raw_query: str, name: str) -> str:
    """``raw_query`` without any pair whose decoded name is ``name`` (``token``, ``%74oken``), every other pair
    byte for byte as it was: the one rule for taking the URL token out of a query, whether to forward it or to
    put a new token in its place."""
    return "&".join(part for part in raw_query.split("&") if part and _name(part) != name)


def _name(part: str) -> str:
    pairs = _pairs(part)
    return pairs[0][0] if pairs else ""


class PlatformAnswer(NamedTuple):
    """A platform's own success answer (Verotel's body `OK`, Segpay's expected text): status, type, body."""

    status: int
    content_type: str
    body: str
