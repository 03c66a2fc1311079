"""`postback-relay reconcile`: list a window's purchases from a platform's API and recover the ones the relay never
received, through the same path as their webhooks (the work is postback_relay.relay.reconciling's)."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from typing import TYPE_CHECKING, Any

from postback_relay.ops.cli.command import Command, moment_of
from postback_relay.ops.cli.output import end_progress, print_json, print_text, show_progress
from postback_relay.ops.deployment import Deployment, OperatorError, relay_environment

if TYPE_CHECKING:
    from postback_relay.core.reconcile import Tally, Window
    from postback_relay.relay.orchestration import Relay
    from postback_relay.runtime import Runtime

TIMES = "use 7d, 24h, 30m or a date such as 2026-11-20"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The platform, the window and --dry-run."""
    from postback_relay.relay.reconciling import PLATFORMS

    parser.add_argument("--source", required=True, choices=sorted(PLATFORMS), help="the platform to reconcile")
    parser.add_argument("--since", required=True, help="from 7d, 24h, 30m ago or a date")
    parser.add_argument("--until", help="to this moment (default: now less RECONCILE_SETTLE_SECONDS)")
    parser.add_argument("--dry-run", action="store_true", help="show what would be recorded and sent, change nothing")
    parser.add_argument(
        "--tenant",
        metavar="NAME",
        help="reconcile this tenant's platform, with the read-only key in its own secret (default: the "
        "deployment's own)",
    )


def run(args: argparse.Namespace, deployment: Deployment) -> int:
    """`reconcile`: the summary of one run (listed, already recorded, recovered and sent, ignored, errors)."""
    from postback_relay.core.reconcile import settled_window
    from postback_relay.env import SettingsError
    from postback_relay.relay.reconciling import NotReconcilable, reconciler_for
    from postback_relay.runtime import build_runtime
    from postback_relay.settings import Settings

    now = time.time()
    since = moment_of("--since", args.since, TIMES)
    until = moment_of("--until", args.until, TIMES) if args.until else None
    if deployment.local:
        _trust_the_local_sandbox(deployment)
    try:
        settings = Settings.from_env(relay_environment(deployment))
        window = settled_window(since, until, now, settings.reconcile_settle_seconds)
    except (SettingsError, ValueError) as exc:
        raise OperatorError(str(exc), f"choose a window that ends before now ({TIMES})") from None
    runtime = build_runtime(settings, session=deployment.session, endpoint_url=deployment.endpoint_url)
    relay, secret_id = _tenant_relay(runtime, args, deployment)
    try:
        reconciler = reconciler_for(relay, args.source, now)
    except NotReconcilable as exc:
        raise OperatorError(str(exc), f"add it to the secret {secret_id} (README: Reconciliation)") from None
    progress = _progress if sys.stderr.isatty() or not args.json else None
    tally = reconciler.run(window, args.dry_run, progress)
    if progress is not None:
        end_progress()
    if args.json:
        print_json(_document(deployment, args, window, tally))
    else:
        print_text("\n".join(_summary(deployment, args, window, tally)))
    return 1 if tally.errors else 0


def _tenant_relay(runtime: Runtime, args: argparse.Namespace, deployment: Deployment) -> tuple[Relay, str]:
    """The relay of ``--tenant`` (the default tenant's without it) and the name of the secret its keys are in."""
    from postback_relay.core.outcome import RelayError
    from postback_relay.core.tenant import DEFAULT_TENANT

    if args.tenant is None or args.tenant == DEFAULT_TENANT:
        return runtime.relay, deployment.secret_id
    try:
        relay = runtime.tenants.serving(args.tenant, args.source)
    except RelayError as exc:
        raise OperatorError(str(exc), "`postback-relay tenant list` names the tenants and their sources") from None
    return relay, f"{runtime.settings.tenant_secret_prefix}{args.tenant}"


def _trust_the_local_sandbox(deployment: Deployment) -> None:
    """The local run's TrafficStars sandbox has its own authority; a platform's real API has certifi's. With no
    REQUESTS_CA_BUNDLE of the operator's, this process trusts both (a bundle of the two, in a temporary file)."""
    if os.environ.get("REQUESTS_CA_BUNDLE") or not deployment.ca_bundle:
        return
    import requests.utils

    with open(requests.utils.DEFAULT_CA_BUNDLE_PATH, encoding="utf-8") as public:
        bundle = public.read()
    with open(deployment.ca_bundle, encoding="utf-8") as local:
        bundle += "\n" + local.read()
    handle, path = tempfile.mkstemp(prefix="postback-relay-ca-", suffix=".pem")
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        out.write(bundle)
    os.environ["REQUESTS_CA_BUNDLE"] = path


def _document(deployment: Deployment, args: argparse.Namespace, window: Window, tally: Tally) -> dict[str, Any]:
    return {
        "target": deployment.label,
        "tenant": args.tenant or "default",
        "source": args.source,
        "since": _iso(window.since),
        "until": _iso(window.until),
        "dry_run": args.dry_run,
        **tally.as_dict(),
    }


def _summary(deployment: Deployment, args: argparse.Namespace, window: Window, tally: Tally) -> list[str]:
    """A table of what the run found, then what a dry run would record (a report-only run: the purchases never
    seen, each with what the platform says of it), the notes (a report-only platform's fix among them) and the
    errors."""
    summary = tally.as_dict()
    verb = "would recover" if args.dry_run else "recovered"
    recovered = len(tally.would_record) if args.dry_run else summary["recovered"]
    found = [(verb, str(recovered)), ("  of which sent", str(tally.sent))]
    found += [(f"  of which {status}", str(n)) for status, n in sorted(tally.recovered.items()) if status != "sent"]
    found += [("reversals", str(sum(tally.reversals.values())))]
    rows = [
        ("listed", str(tally.listed)),
        ("already recorded", str(tally.already_recorded)),
        *([("never seen by the relay", str(len(tally.unseen)))] if tally.report_only else found),
        *((f"ignored: {reason}", str(n)) for reason, n in sorted(tally.ignored.items())),
        ("errors", str(len(tally.errors))),
    ]
    width = max(len(label) for label, _ in rows)
    whose = f"tenant {args.tenant}'s {args.source}" if args.tenant else args.source
    lines = [f"{whose} in {deployment.label}, {_iso(window.since)} to {_iso(window.until)}"]
    if tally.report_only:
        lines[0] += ": report only, nothing was recorded or sent"
    lines += [f"  {label.ljust(width)}  {count}" for label, count in rows]
    for shown in tally.would_record:
        lines.append(f"  would record {shown['conversion_id']} ({shown['status']})  {shown.get('postback_url') or ''}")
    for unseen in tally.unseen:
        said = "  ".join(f"{name} {value}" for name, value in unseen.items() if name != "conversion_id")
        lines.append(f"  never seen {unseen['conversion_id']}  {said}".rstrip())
    lines += [f"note: {note}" for note in tally.notes]
    lines += [f"error: {error}" for error in tally.errors]
    return lines


def _iso(moment: float) -> str:
    from postback_relay.core.record import iso

    return iso(moment)


def _progress(done: int, listed: int) -> None:
    width = 30
    filled = width * done // max(1, listed)
    show_progress(f"[{'#' * filled}{'.' * (width - filled)}] {done:,}/{listed:,}")


COMMAND = Command(
    name="reconcile",
    help="recover the purchases a platform never delivered (--dry-run)",
    description="List a window's purchases from the platform's API (its read-only key in the relay's secret) and "
    "hand each to the same path as its webhook: one already recorded is left alone, a missing one is recorded "
    "with origin reconcile and sent once with the lead_code its webhook would have had, a refund or dispute "
    "found is applied first. --dry-run changes nothing and shows what would be sent (key redacted). A "
    "report-only platform (lemonsqueezy: its API has no click id) records and sends nothing and lists the "
    "purchases the relay never saw, with the platform's fix.",
    add_arguments=add_arguments,
    run=run,
)
