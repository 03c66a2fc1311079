"""The scheduled reconciliation (EventBridge Scheduler, every ReconcileSchedule): a handler only; the work is
postback_relay.relay.reconcile_schedule's.

Handler: postback_relay.handlers.reconcile.reconcile_handler."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.typing import LambdaContext

from postback_relay.handlers import telemetry
from postback_relay.runtime import get_runtime, load_settings

if TYPE_CHECKING:
    pass

logger = Logger()
metrics = Metrics()

load_settings()  # fail at start, naming the setting


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics(capture_cold_start_metric=True)
def reconcile_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Reconcile every tenant's configured platforms from where the last run stopped; one metrics record per
    platform (ReconcileRecovered, ReconcileErrors, ReconcileCredentialsRefused) and a summary as the result."""
    from postback_relay.relay.reconcile_schedule import reconcile_all

    runtime = get_runtime()
    runs = reconcile_all(
        runtime.tenants,
        runtime.reconcile_states,
        context.aws_request_id,
        time.time(),
        lambda: context.get_remaining_time_in_millis() / 1000,
    )
    for run in runs:
        if run.result in ("busy", "idle"):
            continue
        tally = run.tally
        recovered = sum(tally.recovered.values()) + len(tally.unseen) if tally else 0  # unseen: report-only
        errors = len(tally.errors) if tally and tally.errors else int(run.failed)
        refused = bool(tally and tally.credentials_refused)
        telemetry.publish(telemetry.reconcile_metrics(run.source, recovered, errors, refused, run.tenant))
        if run.failed:
            logger.warning(
                "reconcile failed",
                extra={"tenant": run.tenant, "source": run.source, "errors": tally.errors if tally else [run.message]},
            )
    return {
        "runs": [
            {
                "tenant": run.tenant,
                "source": run.source,
                "result": run.result,
                **(run.tally.as_dict() if run.tally else {}),
            }
            for run in runs
        ]
    }
