"""Whether a biller's request may come from where it came from: its source address against the platform's
allowlist (`<PLATFORM>_ALLOWED_IPS`, the platform's published ranges by default, `any` to turn it off).

The address is API Gateway's `requestContext.http.sourceIp`, never a header. A platform whose checks cover no
content (a URL token alone: CCBill, Segpay, Epoch) is only served with an allowlist: with none configured and
none published (Segpay publishes none) every request is refused until the operator sets the addresses or
turns the check off explicitly, so a leaked URL alone never counts a sale."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from postback_relay.core.outcome import Forbidden
from postback_relay.platforms.checks import RequestSource
from postback_relay.settings import Network


def admit(source: RequestSource, source_ip: str, allowed: Sequence[Network] | None) -> None:
    """Forbidden unless ``source_ip`` is in ``allowed`` (None: the allowlist is off)."""
    if allowed is None:
        return
    variable = f"{source.name.upper()}_ALLOWED_IPS"
    if not allowed:
        if source.signs_content:
            return  # signed: the signature is the check, an allowlist only an addition
        raise Forbidden(f"{variable} is empty: set the addresses {source.name} posts from, or any")
    try:
        address = ipaddress.ip_address(source_ip)
    except ValueError:
        raise Forbidden("the request has no source address") from None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if not any(address in network for network in allowed):
        raise Forbidden(f"{source_ip} is not an address {source.name} posts from ({variable})")
