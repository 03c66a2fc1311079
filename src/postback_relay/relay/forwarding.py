"""Forward mode, the call: a verified request passed on to the merchant's `<PLATFORM>_FORWARD_URL` in a thread of
its own, while the relay records and sends the conversion, and its answer collected once that is done
(core/forwarding.py says what is forwarded and why).

How the address rule is kept: the target's host name is resolved here, every address it resolves to must be
public (core/forwarding.is_public; any address in the local run), and the connection goes to that checked address,
with TLS verified against the host name (SNI and certificate) and a Host header naming it. Resolving once and
connecting to what was checked leaves no second lookup for a rebinding DNS answer to change. urllib3 (requests'
own transport) is used directly because requests has no way to connect to an address chosen in advance.

Never followed: a redirect (its status is the answer). Never longer than FORWARD_TIMEOUT_SECONDS: the connect and
each read are bounded by it, and the relay stops waiting at it whatever the socket does."""

from __future__ import annotations

import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from urllib.parse import urlsplit

import requests.utils
import urllib3
from aws_lambda_powertools import Logger

from postback_relay.core.forwarding import (
    MAX_ANSWER_BYTES,
    Address,
    Forwarded,
    ForwardFailure,
    ForwardRequest,
    MerchantAnswer,
    answered,
    failure,
    forward_request,
    is_public,
    settle,
)
from postback_relay.core.inbound import InboundRequest
from postback_relay.networks.trafficstars import trusted_authorities

logger = Logger(child=True)

Resolver = Callable[[str, int], list[Address]]
WAIT_MARGIN_SECONDS = 0.25  # beyond the timeout, for a thread that is already returning its answer


def resolve(host: str, port: int) -> list[Address]:
    """Every address ``host`` resolves to, in the resolver's order (an IP literal is itself)."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses: list[Address] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


class PendingForward:
    """One forward in flight: ``answer()`` waits for it, at most until its deadline."""

    def __init__(
        self, future: Future[MerchantAnswer], timeout: float, started: float, on_failure: ForwardFailure
    ) -> None:
        self._future = future
        self._deadline = started + timeout + WAIT_MARGIN_SECONDS
        self._timeout = timeout
        self._on_failure = on_failure

    def result(self) -> Forwarded:
        """The merchant's answer (a timeout failure when it has not come by the deadline), settled: whether the
        platform gets it (core/forwarding.settle)."""
        try:
            answer = self._future.result(timeout=max(0.0, self._deadline - time.monotonic()))
        except FutureTimeout:
            answer = failure("timeout", f"the merchant's endpoint did not answer within {self._timeout:g} s")
        log = logger.warning if answer.failed else logger.info
        log(
            "request forwarded",
            extra={"forward": answer.reason, "forward_status": answer.status, "forward_ms": answer.duration_ms},
        )
        return settle(answer, self._on_failure)


class Forwarder:
    """Passes verified requests on to each route's configured merchant URL (``targets``: ROUTED name → URL)."""

    def __init__(
        self,
        targets: Mapping[str, str | None],
        timeout_seconds: float,
        on_failure: ForwardFailure = "pass",
        local_mode: bool = False,
        resolver: Resolver = resolve,
    ) -> None:
        self._targets = {route: url for route, url in targets.items() if url}
        self._timeout = timeout_seconds
        self._on_failure = on_failure
        self._local_mode = local_mode
        self._resolver = resolver
        # the authorities the TrafficStars client trusts too (urllib3 needs the default bundle's path named)
        self._ca_bundle = trusted_authorities() or requests.utils.DEFAULT_CA_BUNDLE_PATH

    def forwards(self, route: str) -> bool:
        """Whether requests to ``route`` are forwarded (its `<PLATFORM>_FORWARD_URL` is set)."""
        return route in self._targets

    def start(self, request: InboundRequest) -> PendingForward | None:
        """Begin forwarding ``request`` (already verified) when its route has a target; None when it has none."""
        route = request.route
        target = self._targets.get(route)
        if target is None:
            return None
        outgoing = forward_request(target, request)
        future: Future[MerchantAnswer] = Future()
        started = time.monotonic()

        def run() -> None:
            try:
                future.set_result(self.send(outgoing))
            except BaseException as exc:  # noqa: BLE001 - the waiting request reports it; a thread cannot raise
                future.set_result(failure("connection_error", f"{type(exc).__name__}"))

        threading.Thread(target=run, name=f"forward-{route}", daemon=True).start()
        return PendingForward(future, self._timeout, started, self._on_failure)

    def send(self, outgoing: ForwardRequest) -> MerchantAnswer:
        """Make the call (in the caller's thread) and classify what came of it; never raises for the network."""
        started = time.perf_counter()
        parts = urlsplit(outgoing.url)
        host = parts.hostname or ""
        https = parts.scheme == "https"
        port = parts.port or (443 if https else 80)
        try:
            addresses = self._resolver(host, port)
        except OSError as exc:
            return failure("connection_error", f"{host} does not resolve: {exc}", _ms(started))
        allowed = [address for address in addresses if self._local_mode or is_public(address)]
        if not addresses or len(allowed) != len(addresses):
            refused = ", ".join(str(address) for address in addresses if address not in allowed)
            return failure("target_not_public", f"{host} resolves to {refused or 'nothing'}", _ms(started))
        address = str(allowed[0])
        headers = {**outgoing.headers, "Host": parts.netloc}
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        timeout = urllib3.Timeout(connect=self._timeout, read=self._timeout)
        pool: urllib3.HTTPConnectionPool
        if https:
            pool = urllib3.HTTPSConnectionPool(
                address,
                port,
                timeout=timeout,
                retries=False,
                maxsize=1,
                cert_reqs="CERT_REQUIRED",
                ca_certs=self._ca_bundle,
                server_hostname=host,
                assert_hostname=host,
            )
        else:
            pool = urllib3.HTTPConnectionPool(address, port, timeout=timeout, retries=False, maxsize=1)
        try:
            with pool:
                response = pool.urlopen(
                    outgoing.method,
                    path,
                    body=outgoing.body or None,
                    headers=headers,
                    redirect=False,
                    retries=False,
                    assert_same_host=False,
                    preload_content=False,
                )
                body = response.read(MAX_ANSWER_BYTES + 1)
                response.release_conn()
        except urllib3.exceptions.SSLError as exc:
            return failure("certificate_error", f"certificate verification failed: {exc}", _ms(started))
        except urllib3.exceptions.NewConnectionError as exc:  # a subclass of ConnectTimeoutError, so first
            return failure("connection_error", f"{type(exc).__name__}: {exc}", _ms(started))
        except (TimeoutError, urllib3.exceptions.TimeoutError) as exc:
            return failure("timeout", f"the merchant's endpoint did not answer in time: {exc}", _ms(started))
        except (urllib3.exceptions.HTTPError, OSError, ssl.SSLError) as exc:
            return failure("connection_error", f"{type(exc).__name__}: {exc}", _ms(started))
        if len(body) > MAX_ANSWER_BYTES:
            return failure("answer_too_large", f"the answer is larger than {MAX_ANSWER_BYTES} bytes", _ms(started))
        content_type = str(response.headers.get("Content-Type", ""))
        return answered(response.status, content_type, body, _ms(started))


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)
