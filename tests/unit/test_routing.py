"""The relay's router answers every event exactly as powertools' APIGatewayHttpResolver, which it replaces for
speed (see routing.py), answers it: the same routes are registered on both and the responses compared."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from aws_lambda_powertools.event_handler import Response as PowertoolsResponse

from postback_relay.handlers.routing import Response, Router
from postback_relay_dev.apigw import LocalContext, build_event


class Refused(Exception):
    pass


class Gone(Refused):
    pass


def register(app: Any, response: type) -> None:
    """The same routes, on either router."""

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "amount": Decimal("49.00")}

    @app.post("/webhooks/<source_name>")
    def webhook(source_name: str) -> Any:
        event = app.current_event
        app.append_context(source=source_name)
        if source_name == "refuse":
            raise Gone("no longer here")
        if source_name == "crash":
            raise ValueError("unhandled")
        if source_name == "bytes":
            return response(status_code=200, content_type="application/octet-stream", body=b"\x00\x01")
        headers = {"X-Source": source_name, "X-Many": ["a", "b"]}
        body = {
            "source": source_name,
            "signature": event.headers.get("Stripe-Signature"),
            "lower": event.headers.get("stripe-signature"),
            "body": event.body,
            "base64": event.is_base64_encoded,
            "raw_query": event.raw_query_string,
        }
        return response(status_code=202, content_type="application/json", body=body, headers=headers)

    @app.exception_handler(Refused)
    def refused(error: Refused) -> Any:
        body = {"error": str(error), "source": app.context.get("source")}
        return response(status_code=410, content_type="application/json", body=body)


@pytest.fixture(scope="module")
def routers() -> tuple[Any, Router]:
    theirs = APIGatewayHttpResolver()
    ours = Router()
    register(theirs, PowertoolsResponse)
    register(ours, Response)
    return theirs, ours


EVENTS = [
    ("GET", "/health", b"", ""),
    ("POST", "/health", b"", ""),
    ("GET", "/nowhere", b"", ""),
    ("POST", "/webhooks/stripe", b'{"id": "evt_1"}', "a=1&a=2&b="),
    ("POST", "/webhooks/stripe/", b"{}", ""),
    ("POST", "/webhooks/a%20b", b"{}", ""),
    ("POST", "/webhooks/refuse", b"{}", ""),
    ("POST", "/webhooks/bytes", b"{}", ""),
    ("OPTIONS", "/webhooks/stripe", b"", ""),
]


@pytest.mark.parametrize(("method", "path", "body", "query"), EVENTS)
@pytest.mark.parametrize("content_type", ["application/json", "application/octet-stream"])
def test_the_router_answers_as_powertools_does(
    routers: tuple[Any, Router], method: str, path: str, body: bytes, query: str, content_type: str
) -> None:
    theirs, ours = routers
    headers = [("Content-Type", content_type), ("Stripe-Signature", "t=1,v1=ab")]
    event = build_event(method, path, headers, body, raw_query=query)
    assert ours.resolve(event, LocalContext()) == theirs.resolve(event, LocalContext())


def test_a_named_stage_is_stripped_from_the_path(routers: tuple[Any, Router]) -> None:
    theirs, ours = routers
    event = build_event("GET", "/prod/health", [])
    event["requestContext"]["stage"] = "prod"
    assert ours.resolve(event, LocalContext()) == theirs.resolve(event, LocalContext())
    assert ours.resolve(event, LocalContext())["statusCode"] == 200


def test_an_unhandled_exception_propagates(routers: tuple[Any, Router]) -> None:
    theirs, ours = routers
    event = build_event("POST", "/webhooks/crash", [], b"{}")
    for router in (theirs, ours):
        with pytest.raises(ValueError, match="unhandled"):
            router.resolve(event, LocalContext())


def test_the_context_a_route_shares_ends_with_its_request(routers: tuple[Any, Router]) -> None:
    for router in routers:
        router.resolve(build_event("POST", "/webhooks/refuse", [], b"{}"), LocalContext())
        assert router.context == {}
