"""The Lambda handler: routes, powertools decorators, and the one place where a domain error or an outcome
becomes an HTTP status.

Handler: postback_relay.handlers.http.lambda_handler (HTTP API, payload format 2.0)."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from postback_relay import web
from postback_relay.core.forwarding import Forwarded
from postback_relay.core.inbound import InboundRequest
from postback_relay.core.outcome import (
    BadRequest,
    Forbidden,
    Outcome,
    PayloadTooLarge,
    RelayError,
    SourceNotConfigured,
    Unauthorized,
    Unavailable,
    UnknownTenant,
)
from postback_relay.core.tenant import DEFAULT_TENANT, is_slug
from postback_relay.handlers import telemetry
from postback_relay.handlers.routing import APPLICATION_JSON, Response, Router
from postback_relay.handlers.tracing import make_tracer
from postback_relay.platforms import BILLERS, POSTBACK_SOURCE, SHARED, SOURCES
from postback_relay.platforms.checks import RequestSource
from postback_relay.runtime import get_runtime, load_settings

logger = Logger()
tracer = make_tracer()  # no X-Ray SDK import when tracing is off
metrics = Metrics()
app = Router()  # powertools' APIGatewayHttpResolver, minus its import and per-request cost: see routing.py

# What each refusal is answered with. An unconfigured source is a 404, as for any path nothing serves, so a
# scanner cannot trip the 5xx alarms; an unavailable dependency a 503, so the sender delivers again.
ERROR_STATUS: dict[type[RelayError], int] = {
    Unauthorized: 401,
    Forbidden: 403,
    BadRequest: 400,
    PayloadTooLarge: 413,
    SourceNotConfigured: 404,
    UnknownTenant: 404,
    Unavailable: 503,
}

# The outcome's status beside a platform's own text answer (Verotel's `OK`), for the operator and the tests: the
# platform reads only the body.
STATUS_HEADER = "X-Postback-Relay-Status"
# Forward mode: what came of passing the request on (answered, http_5xx, timeout, …), beside the merchant's answer.
FORWARD_HEADER = "X-Postback-Relay-Forward"

load_settings()  # fail at start, naming the setting, rather than on the first webhook


@app.get("/health")
def health() -> dict[str, str]:
    """Liveness: answers without touching AWS or TrafficStars."""
    return {"status": "ok"}


@app.get("/click.js")
def click_script() -> Response[str]:
    """The landing-page script (postback_relay/web/click.js), for merchants who load it from the relay."""
    return Response(200, body=web.click_script().decode("utf-8"), headers=web.click_script_headers())


@app.post("/webhooks/<source_name>")
def webhook(source_name: str) -> Response[str]:
    """Every platform's webhook: verify, record, forward."""
    return _webhook(DEFAULT_TENANT, source_name)


@app.post("/webhooks/<tenant>/<source_name>")
def tenant_webhook(tenant: str, source_name: str) -> Response[str]:
    """A tenant's webhook (README "Tenants"), or a shared route's (`_connect/stripe`, `_app/shopify`):
    verified with that tenant's secret (a shared route's with the platform-wide one), recorded under it."""
    shared = SHARED.get(f"{tenant}/{source_name}")
    if shared is not None:
        _serving(shared.name, DEFAULT_TENANT)  # the event's tenant is known once it is verified
        runtime = get_runtime()
        request = _inbound(source_name, runtime.settings.max_body_bytes)
        outcome = runtime.relay.handle_shared(shared, request.body, request.headers, runtime.tenants.find, request)
        return _answer(shared.name, outcome, "webhook handled")
    return _webhook(tenant, source_name)


@app.get("/webhooks/<source_name>")
def biller_get(source_name: str) -> Response[str]:
    """The billers that notify with a GET (Verotel; Segpay, whichever method it uses)."""
    return _webhook(DEFAULT_TENANT, source_name, "GET")


@app.get("/webhooks/<tenant>/<source_name>")
def tenant_biller_get(tenant: str, source_name: str) -> Response[str]:
    """A tenant's route of a biller that notifies with a GET."""
    return _webhook(tenant, source_name, "GET")


def _webhook(tenant: str, source_name: str, method: str = "POST") -> Response[str]:
    """Verify, record and forward a delivery to ``tenant``'s route of a platform."""
    biller = BILLERS.get(source_name)
    if biller is not None and method in biller.methods:
        return _biller(tenant, biller)
    source = SOURCES.get(source_name) if method == "POST" else None
    if source is None:
        telemetry.publish(telemetry.refusal_metrics(telemetry.UNKNOWN_SOURCE, "unknown_source"))
        return _json(404, {"error": "unknown_source", "message": f"no webhook source named {source_name!r}"})
    _serving(source.name, tenant)
    relay = get_runtime().tenants.serving(tenant, source_name)
    request = _inbound(source_name, relay.settings.max_body_bytes)
    outcome = relay.handle(source, request.body, request.headers, request)
    return _answer(source.name, outcome, "webhook handled")


def _biller(tenant: str, biller: RequestSource) -> Response[str]:
    """A biller's notification, read whole (query, body, source address) and answered as the platform
    expects: its own success text where it has one, a JSON error for a refusal."""
    _serving(biller.name, tenant)
    relay = get_runtime().tenants.serving(tenant, biller.name)
    outcome = relay.receive(biller, _inbound(biller.name, relay.settings.max_body_bytes))
    return _answer(biller.name, outcome, "webhook handled", relay.settings.success_text(biller))


@app.get("/postback")
def postback() -> Response[str]:
    """Trackers' and affiliate networks' S2S postback: a GET whose query string is the conversion."""
    return _postback(DEFAULT_TENANT)


@app.get("/postback/<tenant>")
def tenant_postback(tenant: str) -> Response[str]:
    """A tenant's S2S postback, authenticated by that tenant's token."""
    return _postback(tenant)


def _postback(tenant: str) -> Response[str]:
    _serving(POSTBACK_SOURCE.name, tenant)
    relay = get_runtime().tenants.serving(tenant, "postback")
    request = _inbound("postback", relay.settings.max_body_bytes)
    outcome = relay.handle_query(POSTBACK_SOURCE, request.raw_query, request.headers, request)
    return _answer(POSTBACK_SOURCE.name, outcome, "postback handled")


@app.exception_handler(RelayError)
def relay_error(error: RelayError) -> Response[str]:
    """Refusals and unavailable dependencies: a JSON error the sender (or its operator) can read."""
    http_status = error_status(error)
    log = logger.error if http_status >= 500 else logger.warning
    log("webhook refused", extra={"error": error.code, "reason": str(error), "http_status": http_status})
    source = str(app.context.get("source", telemetry.UNKNOWN_SOURCE))
    looks_signed = isinstance(error, SourceNotConfigured) and error.looks_signed
    tenant = str(app.context.get("tenant", DEFAULT_TENANT))
    if isinstance(error, UnknownTenant) or not is_slug(tenant):
        tenant = DEFAULT_TENANT  # a name no tenant has is no dimension value: anyone can put one in a path
    telemetry.publish(telemetry.refusal_metrics(source, error.code, looks_signed, tenant))
    _annotate_trace(source, error.code, logger.get_correlation_id(), None)
    _count_forward(source, error.forwarded, tenant)
    merchant = _merchant_answer(error.forwarded, error.code) if http_status < 500 else None
    return merchant or _json(http_status, {"error": error.code, "message": str(error)})


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """API Gateway HTTP API entry point."""
    return app.resolve(event, context)


def _serving(source_name: str, tenant: str | None = None) -> None:
    """Name the source (and the tenant) in every log line of this request, and for relay_error should it
    refuse. A tenant's name is logged only once it is a well-formed name (a path is anyone's text)."""
    logger.append_keys(source=source_name)
    app.append_context(source=source_name)
    if tenant is not None:
        named = tenant if is_slug(tenant) else "(not a tenant name)"
        logger.append_keys(tenant=named)
        app.append_context(tenant=named)


def _answer(source_name: str, outcome: Outcome, message: str, success_text: str | None = None) -> Response[str]:
    """A processed request's metrics, trace annotations and summary log line, then its answer: the merchant's in
    forward mode, else the platform's own ``success_text`` (Verotel's `OK`) for a settled outcome, else JSON.
    Never the platform's success word before the event is durable (a 503 asks again)."""
    telemetry.publish(telemetry.webhook_metrics(source_name, outcome, outcome.tenant))
    _annotate_trace(source_name, outcome.status, outcome.event_id, outcome.conversion_id)
    if outcome.conversion_id:
        logger.append_keys(conversion_id=outcome.conversion_id)
    http_status = outcome_status(outcome)
    logger.info(message, extra={"status": outcome.status, "http_status": http_status})
    _count_forward(source_name, outcome.forwarded, outcome.tenant)
    if http_status < 500:  # the relay's own 503 always stands: the platform must deliver again
        merchant = _merchant_answer(outcome.forwarded, outcome.status)
        if merchant is not None:
            return merchant
    if success_text is not None and http_status == 200:
        return Response(200, "text/plain; charset=utf-8", success_text, {STATUS_HEADER: outcome.status})
    return _json(http_status, outcome.body)


def _count_forward(source: str, forwarded: Forwarded | None, tenant: str) -> None:
    if forwarded is not None:
        answer = forwarded.answer
        telemetry.publish(telemetry.forward_metrics(source, answer.reason, answer.duration_ms, tenant))


def _merchant_answer(forwarded: Forwarded | None, status: str) -> Response[str] | None:
    """Forward mode: the merchant endpoint's answer as the platform's (its status, content type and body),
    unless the merchant failed and FORWARD_ON_FAILURE=answer; None when the relay's own answer goes."""
    if forwarded is None or not forwarded.replaces:
        return None
    answer = forwarded.answer
    headers = {STATUS_HEADER: status, FORWARD_HEADER: answer.reason}
    body: Any = answer.body
    try:
        body = answer.body.decode("utf-8")
    except UnicodeDecodeError:
        pass  # sent base64-encoded (routing.Response), as the merchant wrote it
    return Response(answer.status, answer.content_type or None, body, headers)


def outcome_status(outcome: Outcome) -> int:
    """200 for a settled outcome (the sender need not deliver again), 503 when the conversion is durable but
    its outcome or its retry could not be written down: the redelivery is a noted duplicate that makes sure."""
    return 503 if outcome.redeliver else 200


def error_status(error: RelayError) -> int:
    """The status of a refusal: its class's, or its nearest base class's; 500 for anything unforeseen."""
    for kind in type(error).__mro__:
        if kind in ERROR_STATUS:
            return ERROR_STATUS[kind]
    return 500


def _inbound(route: str, limit: int) -> InboundRequest:
    """The request as it reached ``route``: method, raw query, exact body, headers and source address."""
    event = app.current_event
    return InboundRequest(
        method=event.http_method.upper(),
        raw_query=event.raw_query_string,
        body=_raw_body(limit),
        headers=event.headers,
        source_ip=event.source_ip,
        route=route,
    )


def _raw_body(limit: int) -> bytes:
    """The exact bytes the platform signed: base64-decoded where API Gateway encoded them."""
    event = app.current_event
    body = event.body or ""
    if len(body) > limit * 4 // 3 + 4:
        raise PayloadTooLarge(f"body is larger than {limit} bytes")
    if not event.is_base64_encoded:
        return body.encode("utf-8")
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest("body is marked base64 but does not decode") from None


def _annotate_trace(source: str, outcome: str, correlation_id: str | None, conversion_id: str | None) -> None:
    """Indexed X-Ray annotations, so a trace is found by the event id a platform's dashboard shows."""
    tracer.put_annotation(key="source", value=source)
    tracer.put_annotation(key="outcome", value=outcome)
    if correlation_id:
        tracer.put_annotation(key="correlation_id", value=correlation_id)
    if conversion_id:
        tracer.put_annotation(key="conversion_id", value=conversion_id)


def _json(status: int, body: dict[str, Any]) -> Response[str]:
    return Response(status_code=status, content_type=APPLICATION_JSON, body=json.dumps(body))
