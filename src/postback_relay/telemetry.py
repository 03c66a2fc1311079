"""The relay's CloudWatch metrics: every name, unit and dimension set in one place, so the handlers, the
template's alarms and dashboard, and the tests agree. Written as EMF log lines through powertools.

Dimensions stay low-cardinality: ``source`` (a platform the code knows), ``outcome`` (a record status or a
refusal code) and ``reason`` (TrafficStars' answer, classified). A record also carries the roll-ups an alarm
or a percentile needs, because neither can add up the values of a dimension itself; no others, since each
combination of dimension values that receives data is billed as one custom metric."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit
from aws_lambda_powertools.metrics.exceptions import (
    MetricResolutionError,
    MetricUnitError,
    MetricValueError,
    SchemaValidationError,
)
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.exceptions import MetricNameError

from postback_relay.relay import Outcome

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

UNKNOWN_SOURCE = "unknown"  # the source of a webhook to a path no source serves (never the path itself)
DEFAULT_SERVICE = "postback-relay"
_METRIC_ERRORS = (SchemaValidationError, MetricValueError, MetricNameError, MetricUnitError, MetricResolutionError)
_NOT_A_REQUEST = frozenset({"key_missing"})  # answers made without a GET: no latency to measure

# The handlers' Metrics object carries only the cold start; application metrics are flushed per event by
# publish() below, since each event has its own dimensions. Its empty flush is therefore expected.
warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)


@dataclass(frozen=True)
class Measurement:
    """One value of one metric."""

    name: str
    unit: MetricUnit
    value: float


@dataclass(frozen=True)
class MetricRecord:
    """One EMF record: measurements sharing dimension sets. The first set is the detailed one; the others
    are its roll-ups. `service` is added to every set when the record is published."""

    dimension_sets: tuple[dict[str, str], ...]
    measurements: tuple[Measurement, ...]


def webhook_metrics(source: str, outcome: Outcome) -> list[MetricRecord]:
    """A processed webhook: one Webhooks count by outcome, and what its postback attempt (if any) measured."""
    return [_webhook(source, outcome.status), *attempt_metrics(source, outcome)]


def attempt_metrics(source: str, outcome: Outcome) -> list[MetricRecord]:
    """A postback attempt (by a webhook, or by the retry worker without one): Postbacks by outcome, the
    latency of each GET, a retry, the value sent, and TrafficStars' reason for a final rejection."""
    if not outcome.answers:
        return []
    postbacks = MetricRecord(
        ({"source": source, "outcome": outcome.status}, {"outcome": outcome.status}),  # alarms read the roll-up
        (Measurement(POSTBACKS, MetricUnit.Count, 1),),
    )
    return [postbacks, *_attempt_details(source, outcome)]


def refusal_metrics(source: str, code: str) -> list[MetricRecord]:
    """A webhook answered with an error (bad signature, oversized body, unavailable dependency, …)."""
    return [_webhook(source, code)]


def source_of(conversion_id: str) -> str:
    """The source part of a record key (``stripe#pi_…`` → ``stripe``), for attempts made from a key alone."""
    source, separator, _ = conversion_id.partition("#")
    return source if separator and source else UNKNOWN_SOURCE


def publish(records: Iterable[MetricRecord]) -> None:
    """Print each record as one EMF line. A metrics problem is logged, never raised: the webhook's answer
    and its record matter more than its measurement."""
    for record in records:
        emf = EphemeralMetrics(service=os.environ.get("POWERTOOLS_SERVICE_NAME") or DEFAULT_SERVICE)
        service = str(emf.service)
        try:
            detailed, *rollups = record.dimension_sets
            for name, value in detailed.items():
                emf.add_dimension(name=name, value=value)
            for rollup in rollups:
                emf.add_dimensions(service=service, **rollup)
            for measurement in record.measurements:
                emf.add_metric(name=measurement.name, unit=measurement.unit, value=measurement.value)
            emf.flush_metrics()
        except _METRIC_ERRORS as exc:
            logger.warning("metrics not published", extra={"error": f"{type(exc).__name__}: {exc}"})


def _webhook(source: str, outcome: str) -> MetricRecord:
    """Webhooks by source and outcome, and the total the postbacks-silent alarm compares with."""
    return MetricRecord(({"source": source, "outcome": outcome}, {}), (Measurement(WEBHOOKS, MetricUnit.Count, 1),))


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
