"""The retry worker (SQS trigger, partial batch failures) and the sweep (schedule): handlers only.

Handlers: postback_relay.handlers.retry.retry_handler and postback_relay.handlers.retry.sweep_handler."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from postback_relay.core.tenant import tenant_of
from postback_relay.handlers import telemetry
from postback_relay.handlers.tracing import make_tracer
from postback_relay.runtime import get_runtime, load_settings

logger = Logger()
tracer = make_tracer()  # no X-Ray SDK import when tracing is off
metrics = Metrics()
processor = BatchProcessor(event_type=EventType.SQS)

load_settings()  # fail at start, naming the setting


def retry_record(record: SQSRecord) -> None:
    """One queued conversion. Raising leaves the message to SQS (visibility timeout, then the DLQ)."""
    message = json.loads(record.body)
    conversion_id = message["conversion_id"]
    logger.append_keys(conversion_id=conversion_id)
    due_at = message.get("due_at")
    tenant = tenant_of(conversion_id)
    logger.append_keys(tenant=tenant)
    outcome = get_runtime().tenants.retry(conversion_id, float(due_at) if due_at is not None else None)
    if outcome is None:
        logger.info("not due or already handled")
        return
    telemetry.publish(telemetry.attempt_metrics(telemetry.source_of(conversion_id), outcome, tenant))


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics(capture_cold_start_metric=True)
def retry_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    """SQS batch: each message is one conversion key; failures are reported per message."""
    return process_partial_response(event=event, record_handler=retry_record, processor=processor, context=context)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics(capture_cold_start_metric=True)
def sweep_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, int]:
    """Scheduled: re-queue conversions stranded past their due time, stopping 10 s before the timeout."""
    count = get_runtime().relay.sweep(lambda: context.get_remaining_time_in_millis() < 10_000)
    metrics.add_metric(name=telemetry.SWEPT, unit=MetricUnit.Count, value=count)
    return {"requeued": count}
