"""The relay's CloudWatch metrics: every name, unit and dimension set in one place, so the handlers, the
template's alarms and dashboard, and the tests agree. Written as EMF log lines through powertools.

Dimensions stay low-cardinality: ``source`` (a platform the code knows), ``outcome`` (a record status or a
refusal code) and ``reason`` (TrafficStars' answer, classified). A record also carries the roll-ups an alarm
or a percentile needs, because neither can add up the values of a dimension itself; no others, since each
combination of dimension values that receives data is billed as one custom metric."""

from __future__ import annotations

import json
import math
import os
import re
import time
import warnings
from collections.abc import Iterable
from typing import Any, NamedTuple

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit

from postback_relay.core.outcome import Outcome
from postback_relay.core.tenant import DEFAULT_TENANT
from postback_relay.core.tenant import source_of as platform_of

logger = Logger(child=True)

# Metric names (namespace: POWERTOOLS_METRICS_NAMESPACE; every record has the `service` dimension).
WEBHOOKS = "Webhooks"  # every webhook delivery, by source and outcome (sent, duplicate, invalid_signature, …)
POSTBACKS = "Postbacks"  # every attempt at a postback, by source and outcome (sent, rejected, retry_pending, …)
POSTBACK_REJECTED = "PostbackRejected"  # final rejections by TrafficStars, by source and reason (invalid_key, …)
POSTBACK_LATENCY = "PostbackLatency"  # milliseconds per GET to TrafficStars, by source
RETRIES = "Retries"  # attempts after a conversion's first (a sender's redelivery or the retry worker)
VALUE_SENT = "ValueSent"  # the value of sent postbacks, in the account currency
COLD_START = "ColdStart"  # powertools' own, by function_name
SWEPT = "SweptConversions"  # conversions the sweep re-queued (lost message, crashed sender, long backoff)
# Deliveries shaped and signed like a platform's, to the route of a platform whose secret is missing: a real
# misconfiguration (its own alarm), told apart from a scanner's request, which only counts in Webhooks.
UNCONFIGURED = "UnconfiguredSourceDeliveries"
# Forward mode: requests passed on to a merchant's endpoint, by source and outcome (answered, http_5xx, timeout,
# connection_error, …), and how long the merchant took. The failures' roll-up is what ForwardFailuresAlarm reads.
FORWARDS = "Forwards"
FORWARD_FAILURES = "ForwardFailures"
FORWARD_LATENCY = "ForwardLatency"
# Reconciliation, by source: purchases recovered from a platform's API (webhooks that never arrived; for a
# report-only platform, the orders reported as never seen), runs that met an error, and runs whose read-only
# key the platform refused. Each has its roll-up for its alarm.
RECONCILE_RECOVERED = "ReconcileRecovered"
RECONCILE_ERRORS = "ReconcileErrors"
RECONCILE_REFUSED = "ReconcileCredentialsRefused"

UNKNOWN_SOURCE = "unknown"  # the source of a webhook to a path no source serves (never the path itself)
DEFAULT_SERVICE = "postback-relay"
DEFAULT_NAMESPACE = "PostbackRelay"
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,254}")  # metric and dimension names: ours, fixed in this module
_VALUE = re.compile(r"[ -~]{1,1024}")  # a dimension value CloudWatch takes: printable ASCII, 1-1024 characters
_NOT_A_REQUEST = frozenset({"key_missing"})  # answers made without a GET: no latency to measure

# The handlers' Metrics object carries only the cold start; application metrics are flushed per event by
# publish() below, since each event has its own dimensions. Its empty flush is therefore expected.
warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)


class Measurement(NamedTuple):
    """One value of one metric."""

    name: str
    unit: MetricUnit
    value: float


class MetricRecord(NamedTuple):
    """One EMF record: measurements sharing dimension sets. The first set is the detailed one; the others
    are its roll-ups. `service` is added to every set when the record is published."""

    dimension_sets: tuple[dict[str, str], ...]
    measurements: tuple[Measurement, ...]


def webhook_metrics(source: str, outcome: Outcome, tenant: str = DEFAULT_TENANT) -> list[MetricRecord]:
    """A processed webhook: one Webhooks count by outcome, and what its postback attempt (if any) measured."""
    return [_webhook(source, outcome.status, tenant), *attempt_metrics(source, outcome, tenant)]


def attempt_metrics(source: str, outcome: Outcome, tenant: str = DEFAULT_TENANT) -> list[MetricRecord]:
    """A postback attempt (by a webhook, or by the retry worker without one): Postbacks by outcome, the
    latency of each GET, a retry, the value sent, and TrafficStars' reason for a final rejection."""
    if not outcome.answers:
        return []
    postbacks = MetricRecord(
        ({"source": source, "outcome": outcome.status}, {"outcome": outcome.status}, *_by_tenant(tenant)),
        (Measurement(POSTBACKS, MetricUnit.Count, 1),),  # alarms read the {outcome} roll-up
    )
    return [postbacks, *_attempt_details(source, outcome)]


def refusal_metrics(
    source: str, code: str, looks_signed: bool = False, tenant: str = DEFAULT_TENANT
) -> list[MetricRecord]:
    """A webhook answered with an error (bad signature, oversized body, unavailable dependency, …);
    ``looks_signed`` for a well-formed, signed-looking delivery to a source without its secret. ``tenant``
    only once it names a tenant that exists (an unknown one is anyone's text)."""
    records = [_webhook(source, code, tenant)]
    if looks_signed:
        records.append(MetricRecord(({"source": source}, {}), (Measurement(UNCONFIGURED, MetricUnit.Count, 1),)))
    return records


def forward_metrics(source: str, reason: str, duration_ms: float, tenant: str = DEFAULT_TENANT) -> list[MetricRecord]:
    """One forward: Forwards by outcome, its latency, and a ForwardFailures count when the merchant gave no
    answer or a 5xx (the merchant's own problem, but one its platform's retries or the relay's answer hide)."""
    measurements = [Measurement(FORWARDS, MetricUnit.Count, 1)]
    records = [MetricRecord(({"source": source, "outcome": reason}, *_by_tenant(tenant)), tuple(measurements))]
    details = [Measurement(FORWARD_LATENCY, MetricUnit.Milliseconds, duration_ms)]
    if reason != "answered":
        details.append(Measurement(FORWARD_FAILURES, MetricUnit.Count, 1))
    records.append(MetricRecord(({"source": source}, {}), tuple(details)))
    return records


def reconcile_metrics(
    source: str, recovered: int, errors: int, refused: bool, tenant: str = DEFAULT_TENANT
) -> list[MetricRecord]:
    """One platform's reconcile run: what it recovered, whether it met an error, whether the key was refused."""
    measurements = (
        Measurement(RECONCILE_RECOVERED, MetricUnit.Count, recovered),
        Measurement(RECONCILE_ERRORS, MetricUnit.Count, errors),
        Measurement(RECONCILE_REFUSED, MetricUnit.Count, 1 if refused else 0),
    )
    return [MetricRecord(({"source": source}, {}, *_by_tenant(tenant)), measurements)]


def source_of(conversion_id: str) -> str:
    """The source part of a record key (``stripe#pi_…``, ``acme/stripe#pi_…`` → ``stripe``), for attempts
    made from a key alone."""
    return platform_of(conversion_id) or UNKNOWN_SOURCE


def publish(records: Iterable[MetricRecord]) -> None:
    """Print the records as one EMF line: one directive per record, sharing the line's dimension values
    (a webhook's records agree on `source` and `outcome`). powertools' EphemeralMetrics writes one line per
    record and costs ~0.1 ms of a ~1.2 ms webhook doing so (bench/RESULTS.md); this writes the same records.
    Honours POWERTOOLS_METRICS_DISABLED, POWERTOOLS_METRICS_NAMESPACE and POWERTOOLS_SERVICE_NAME. A
    metrics problem is logged, never raised: the webhook's answer and its record matter more."""
    if os.environ.get("POWERTOOLS_METRICS_DISABLED", "").lower() in ("1", "true", "yes", "on"):
        return
    service = os.environ.get("POWERTOOLS_SERVICE_NAME") or DEFAULT_SERVICE
    namespace = os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or DEFAULT_NAMESPACE
    lines: list[dict[str, Any]] = []
    for record in records:
        try:
            values, directive = _directive(record, service, namespace)
        except ValueError as exc:
            logger.warning("metrics not published", extra={"error": str(exc)})
            continue
        line = next((line for line in lines if _fits(line, values)), None)
        if line is None:
            line = {"_aws": {"Timestamp": int(time.time() * 1000), "CloudWatchMetrics": []}}
            lines.append(line)
        line["_aws"]["CloudWatchMetrics"].append(directive)
        line.update(values)
    for line in lines:
        print(json.dumps(line, separators=(",", ":")), flush=True)


def _directive(record: MetricRecord, service: str, namespace: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A record's EMF directive and the values it puts at the top level of the line; ValueError if invalid."""
    values: dict[str, Any] = {"service": service}
    for dimensions in record.dimension_sets:
        for name, value in dimensions.items():
            if not _NAME.fullmatch(name) or not isinstance(value, str) or not _VALUE.fullmatch(value):
                raise ValueError(f"dimension {name!r}={value!r} is not one CloudWatch takes")
            values[name] = value
    if not record.dimension_sets or not record.measurements:
        raise ValueError("a metric record needs a dimension set and a measurement")
    metrics: dict[str, MetricUnit] = {}
    for measurement in record.measurements:
        if not _NAME.fullmatch(measurement.name) or not math.isfinite(measurement.value):
            raise ValueError(f"metric {measurement.name!r}={measurement.value!r} is not one CloudWatch takes")
        if measurement.name in values and not isinstance(values[measurement.name], list):
            raise ValueError(f"metric {measurement.name!r} has the name of a dimension")
        values.setdefault(measurement.name, []).append(float(measurement.value))
        metrics[measurement.name] = measurement.unit
    directive = {
        "Namespace": namespace,
        "Dimensions": [[*dimensions, "service"] for dimensions in record.dimension_sets],
        "Metrics": [{"Name": name, "Unit": unit.value} for name, unit in metrics.items()],
    }
    return values, directive


def _fits(line: dict[str, Any], values: dict[str, Any]) -> bool:
    """Whether a record's values can join a line: the same value for every dimension both use, and none of
    its metrics already there (each metric belongs to one directive of a line)."""
    for name, value in values.items():
        if name in line and (isinstance(value, list) or line[name] != value):
            return False
    return True


def _webhook(source: str, outcome: str, tenant: str = DEFAULT_TENANT) -> MetricRecord:
    """Webhooks by source and outcome, and the total the postbacks-silent alarm compares with."""
    sets = ({"source": source, "outcome": outcome}, {}, *_by_tenant(tenant))
    return MetricRecord(sets, (Measurement(WEBHOOKS, MetricUnit.Count, 1),))


def _by_tenant(tenant: str) -> tuple[dict[str, str], ...]:
    """A named tenant's own count: one metric per tenant (and per metric: Webhooks, Postbacks), never per
    tenant and outcome, so a hundred tenants cost two hundred custom metrics, not thousands. The default
    tenant's figures are the roll-ups' minus the named tenants' (its metrics are as before tenants existed)."""
    return () if tenant == DEFAULT_TENANT else ({"tenant": tenant},)


def _attempt_details(source: str, outcome: Outcome) -> list[MetricRecord]:
    details = [
        Measurement(POSTBACK_LATENCY, MetricUnit.Milliseconds, answer.duration_ms)
        for answer in outcome.answers
        if answer.reason not in _NOT_A_REQUEST
    ]
    if outcome.attempt > 1:
        details.append(Measurement(RETRIES, MetricUnit.Count, 1))
    if outcome.status == "sent" and outcome.value is not None:
        details.append(Measurement(VALUE_SENT, MetricUnit.NoUnit, float(outcome.value)))
    records = [MetricRecord(({"source": source}, {}), tuple(details))] if details else []
    if outcome.status == "rejected":
        reason = outcome.answers[-1].reason
        rejected = (Measurement(POSTBACK_REJECTED, MetricUnit.Count, 1),)
        records.append(MetricRecord(({"source": source, "reason": reason}, {"reason": reason}), rejected))
    return records
