"""A merchant's own endpoint on loopback, over HTTPS (a certificate of the tests' authority): what forward mode
passes requests on to. It records every request exactly as received and answers as a test tells it to: a status,
a content type and a body, after a delay, or a redirect."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tests.support.platform_api import Answer, ApiRequest, PlatformApi

if TYPE_CHECKING:
    import trustme

HOST_NAMES = ("members.merchant.test",)  # a name the tests resolve to 127.0.0.1


@dataclass(frozen=True)
class MerchantRequest:
    """One request the merchant received: method, path with query, headers (lower-case names), body."""

    method: str
    target: str
    headers: dict[str, str]
    body: bytes

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    @property
    def query(self) -> str:
        return self.target.split("?", 1)[1] if "?" in self.target else ""


@dataclass
class MerchantBehaviour:
    """How the merchant answers the next requests."""

    status: int = 200
    content_type: str = "text/plain"
    body: bytes = b"OK"
    delay_seconds: float = 0.0
    location: str | None = None  # a redirect's target
    drop: bool = False  # close the connection without an answer (a merchant that is down)
    received: list[MerchantRequest] = field(default_factory=list)

    def reset(self) -> None:
        self.__init__()  # type: ignore[misc]


class MerchantEndpoint(PlatformApi):
    """An HTTPS server on 127.0.0.1 whose behaviour a test sets (``behaviour``) and whose requests it reads."""

    def __init__(self, authority: trustme.CA) -> None:
        self.behaviour = MerchantBehaviour()
        super().__init__(authority, host_names=HOST_NAMES)

    def answer(self, request: ApiRequest) -> Answer:
        behaviour = self.behaviour
        target = request.path + (f"?{request.query}" if request.query else "")
        behaviour.received.append(MerchantRequest(request.method, target, request.headers, request.body))
        if behaviour.drop:
            return None
        if behaviour.delay_seconds:
            time.sleep(behaviour.delay_seconds)
        headers = {"Content-Type": behaviour.content_type}
        if behaviour.location:
            headers["Location"] = behaviour.location
        return behaviour.status, behaviour.body, headers

    def url(self, path: str = "/postbacks/verotel.php", host: str = "127.0.0.1") -> str:
        return f"https://{host}:{self.port}{path}"
