"""The scheduled reconciliation (ReconcileFunction, every ReconcileSchedule; README "Reconciliation"): for each
tenant, and each platform whose read-only key is in that tenant's secret, the window
``[watermark − overlap, now − settle]`` (core.reconcile.scheduled_window) reconciled through the same
Reconciler as `postback-relay reconcile`.

Why a watermark, a cursor and a lease (aws/reconcile_state.py): a run covers only what the last one did not,
so an hourly schedule costs a page or two per platform; the cursor is saved after every page, so a window too
big for one Lambda run (a first run after an outage, a budget spent, an API down) is resumed by the next run
where this one stopped, never skipped past and never re-listed from its start; the lease keeps two scheduled
runs (the schedule firing while a long run still goes) off one platform at once. Correctness does not
hang on any of it: a page listed twice only finds its purchases already recorded, since every recovered
purchase is claimed under its webhook's identity."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, NamedTuple

from aws_lambda_powertools import Logger

from postback_relay.aws.reconcile_state import ReconcileStates, StateUnavailable, state_key
from postback_relay.core.outcome import Unavailable
from postback_relay.core.reconcile import Tally, Window, scheduled_window
from postback_relay.relay.orchestration import Relay
from postback_relay.relay.reconciling import PLATFORMS, KeyMissing, NotReconcilable, Reconciler, reconciler_for
from postback_relay.relay.tenants import Tenants

logger = Logger(child=True)

STOP_SECONDS = 240.0  # a run starts no page with less Lambda time than this left (a page may send 100 postbacks)
LEASE_MARGIN_SECONDS = 60.0  # a lease outlives the run's Lambda time by this much

Result = Literal["reconciled", "resumable", "failed", "busy", "idle", "not_reconcilable"]


class ScheduledRun(NamedTuple):
    """What one tenant's platform came to in one scheduled run."""

    tenant: str
    source: str
    result: Result
    window: Window | None = None
    tally: Tally | None = None
    message: str = ""  # why it failed, or why it cannot be reconciled

    @property
    def failed(self) -> bool:
        """A run that met an error (its tally's, or one before it listed anything)."""
        return self.result in ("failed", "not_reconcilable") or bool(self.tally and self.tally.errors)


def reconcile_all(
    tenants: Tenants, states: ReconcileStates, owner: str, now: float, time_left: Callable[[], float]
) -> list[ScheduledRun]:
    """Every tenant's configured platforms, in turn, while there is time (``time_left()``, in seconds): what
    is not reached is the next run's. ``owner`` names this run in the leases it takes."""
    runs: list[ScheduledRun] = []
    try:
        targets = tenants.each()
    except Unavailable as exc:  # the tenants' directory: the default tenant is still reconciled
        logger.warning("tenants not reconciled", extra={"error": str(exc)})
        targets = [(tenants.default, None)]
    for relay, sources in targets:
        for name in PLATFORMS:
            if sources is not None and name not in sources:
                continue
            # A platform whose key is not in the tenant's secret is not reconciled, which is no fault; a key
            # there with its store URL missing is one, and a secret that cannot be read fails the run and says so.
            try:
                reconciler = reconciler_for(relay, name, now)
            except KeyMissing:
                continue
            except NotReconcilable as exc:
                runs.append(ScheduledRun(relay.tenant, name, "not_reconcilable", message=str(exc)))
                continue
            except Unavailable as exc:
                runs.append(ScheduledRun(relay.tenant, name, "failed", message=str(exc)))
                continue
            if time_left() < STOP_SECONDS:
                logger.info("reconcile time spent", extra={"tenant": relay.tenant, "source": name})
                return runs
            runs.append(_reconcile(relay, name, reconciler, states, owner, now, time_left))
    return runs


def _reconcile(
    relay: Relay,
    name: str,
    reconciler: Reconciler,
    states: ReconcileStates,
    owner: str,
    now: float,
    time_left: Callable[[], float],
) -> ScheduledRun:
    tenant, key = relay.tenant, state_key(relay.tenant, name)
    try:
        place = states.lease(key, owner, now, time_left() + LEASE_MARGIN_SECONDS)
        if place is None:
            return ScheduledRun(tenant, name, "busy")
        if place.window is not None:
            window: Window | None = Window(*place.window)
        else:
            settings = relay.settings
            window = scheduled_window(
                place.watermark, now, settings.reconcile_settle_seconds, settings.reconcile_overlap_seconds
            )
        if window is None:
            states.release(key, owner, {"result": "idle"})
            return ScheduledRun(tenant, name, "idle")
        checked = window
        states.save(key, owner, checked, place.cursor)  # a run that crashes from here on is resumed
        tally = reconciler.run(
            checked,
            cursor=place.cursor,
            checkpoint=lambda done: states.save(key, owner, checked, done.cursor),
            stop=lambda: time_left() < STOP_SECONDS,
        )
        summary = _summary(checked, tally)
        if tally.cursor is None and not tally.errors:
            states.advance(key, owner, checked.until, summary)
            result: Result = "reconciled"
        else:
            states.release(key, owner, summary)
            result = "failed" if tally.errors else "resumable"
    except StateUnavailable as exc:
        logger.warning("reconcile state unavailable", extra={"tenant": tenant, "source": name, "error": str(exc)})
        return ScheduledRun(tenant, name, "failed", message=str(exc))
    logger.info("scheduled reconcile", extra={"tenant": tenant, "source": name, "result": result, **summary})
    return ScheduledRun(tenant, name, result, checked, tally)


def _summary(window: Window, tally: Tally) -> dict[str, Any]:
    """What the state item keeps of a run (numbers and error codes only: never a key, never a payload)."""
    from postback_relay.core.record import iso

    return {
        "since": iso(window.since),
        "until": iso(window.until),
        "listed": tally.listed,
        "already_recorded": tally.already_recorded,
        "recovered": sum(tally.recovered.values()),
        "sent": tally.sent,
        "pages": tally.pages,
        "errors": list(tally.error_codes),
    }
