"""Test helpers: Stripe signatures made as Stripe makes them, Stripe event bodies, and an invoker of the
real handler. Kept independent of the code under test (the relay has its own verifier)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from postback_relay_dev.apigw import LocalContext, build_event

CLICK_ID = "c86b8a88b91228911e723b93c65a5900bb49bc99"


def stripe_signature(body: bytes, secret: str, timestamp: int | None = None, extra_v1: list[str] | None = None) -> str:
    """The Stripe-Signature header: t=…,v1=hex(HMAC-SHA256(secret, "{t}.{body}")) [,v1=…]."""
    t = int(time.time()) if timestamp is None else timestamp
    signature = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    parts = [f"t={t}", *[f"v1={s}" for s in extra_v1 or []], f"v1={signature}"]
    return ",".join(parts)


def stripe_event(event_type: str, obj: dict[str, Any], *, livemode: bool = True, event_id: str | None = None) -> bytes:
    """A Stripe event envelope around ``obj``, as Stripe serialises it."""
    event = {
        "id": event_id or f"evt_{uuid.uuid4().hex[:24]}",
        "object": "event",
        "api_version": "2026-10-28.endive",
        "created": int(time.time()),
        "data": {"object": obj},
        "livemode": livemode,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
    }
    return json.dumps(event, indent=2).encode()


def checkout_session(
    *,
    payment_intent: str | None = "pi_test_0001",
    click_id: str | None = CLICK_ID,
    in_metadata: bool = False,
    amount: int = 4900,
    currency: str = "usd",
    payment_status: str = "paid",
    invoice: str | None = None,
    session_id: str = "cs_test_0001",
) -> dict[str, Any]:
    metadata = {"click_id": click_id} if in_metadata and click_id else {}
    return {
        "id": session_id,
        "object": "checkout.session",
        "amount_total": amount,
        "currency": currency,
        "client_reference_id": None if in_metadata else click_id,
        "invoice": invoice,
        "livemode": True,
        "metadata": metadata,
        "mode": "subscription" if invoice else "payment",
        "payment_intent": payment_intent,
        "payment_status": payment_status,
        "status": "complete",
    }


def payment_intent(
    *,
    pi: str = "pi_test_0001",
    click_id: str | None = None,
    amount: int = 4900,
    currency: str = "usd",
    invoice: str | None = None,
) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "id": pi,
        "object": "payment_intent",
        "amount": amount,
        "amount_received": amount,
        "currency": currency,
        "metadata": {"click_id": click_id} if click_id else {},
        "status": "succeeded",
    }
    if invoice:
        obj["invoice"] = invoice
    return obj


def invoice(
    *,
    invoice_id: str = "in_test_0001",
    click_id: str | None = CLICK_ID,
    basil: bool = True,
    amount: int = 1900,
    currency: str = "usd",
    billing_reason: str = "subscription_cycle",
) -> dict[str, Any]:
    sub_metadata = {"click_id": click_id} if click_id else {}
    obj: dict[str, Any] = {
        "id": invoice_id,
        "object": "invoice",
        "amount_paid": amount,
        "currency": currency,
        "billing_reason": billing_reason,
        "metadata": {},
        "status": "paid",
    }
    if basil:
        obj["parent"] = {
            "type": "subscription_details",
            "subscription_details": {"metadata": sub_metadata, "subscription": "sub_test_0001"},
        }
    else:
        obj["subscription"] = "sub_test_0001"
        obj["subscription_details"] = {"metadata": sub_metadata}
    return obj


def charge_refunded(*, pi: str = "pi_test_0001", full: bool = True, amount: int = 4900) -> dict[str, Any]:
    return {
        "id": "ch_test_0001",
        "object": "charge",
        "amount": amount,
        "amount_refunded": amount if full else amount // 2,
        "currency": "usd",
        "payment_intent": pi,
        "refunded": full,
    }


@dataclass
class Result:
    """What an operator CLI command ended with, and what it printed."""

    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@dataclass
class Reply:
    status: int
    body: dict[str, Any]  # the JSON answer ({} for a platform's own text answer: see ``text``)
    headers: dict[str, str]
    text: str = ""  # the answer's body as sent


class Invoker:
    """Builds an API Gateway HTTP API event and calls postback_relay.handlers.http.lambda_handler with it."""

    def __call__(
        self,
        body: bytes,
        headers: dict[str, str] | None = None,
        *,
        path: str = "/webhooks/stripe",
        method: str = "POST",
        content_type: str = "application/json; charset=utf-8",
        query: str = "",
        source_ip: str = "127.0.0.1",
    ) -> Reply:
        from postback_relay.handlers.http import lambda_handler

        all_headers = {"Content-Type": content_type, "User-Agent": "Stripe/1.0", **(headers or {})}
        event = build_event(
            method, path, list(all_headers.items()), body, query, route_key=f"{method} {path}", source_ip=source_ip
        )
        result = lambda_handler(event, LocalContext())
        text = result.get("body") or ""
        response_headers = dict(result.get("headers") or {})
        is_json = response_headers.get("Content-Type", "application/json").startswith("application/json")
        answer = json.loads(text or "{}") if is_json else {}
        return Reply(int(result["statusCode"]), answer, response_headers, text)

    def stripe(self, body: bytes, secret: str, timestamp: int | None = None) -> Reply:
        """POST ``body`` to /webhooks/stripe signed with ``secret``."""
        return self(body, {"Stripe-Signature": stripe_signature(body, secret, timestamp)})


def context() -> LocalContext:
    return LocalContext()


# RFC 4231, test case 2: HMAC-SHA256 with key "Jefe" over "what do ya want for nothing?". A published answer,
# so the base64 and hex verifiers are checked against a value no code of ours computed.
RFC4231_KEY = "Jefe"
RFC4231_DATA = b"what do ya want for nothing?"
RFC4231_HEX = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
RFC4231_BASE64 = "W9zBRr9gdU5qBCQmCJV1x1oAPwidJzmDnexYuWTsOEM="

EVENTS = Path(__file__).resolve().parents[2] / "events"


def samples(platform: str) -> list[Path]:
    """The sample API Gateway events of one platform (events/<platform>/*.json)."""
    return sorted((EVENTS / platform).glob("*.json"))


def run_sample(path: Path) -> tuple[int, dict[str, Any], dict[str, Any]]:
    """Re-sign a sample event with the local secret (or its environment override) and run it through the
    real handler: (HTTP status, answer body, the event as sent)."""
    from postback_relay.handlers.http import lambda_handler
    from postback_relay_dev.send import resign

    event = resign(json.loads(path.read_text(encoding="utf-8")))
    result = lambda_handler(event, LocalContext())
    try:
        answer = json.loads(result["body"])
    except ValueError:  # a platform's own text answer (Verotel's OK)
        answer = {"text": result["body"]}
    return int(result["statusCode"]), answer, event
