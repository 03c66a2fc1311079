"""`postback-relay replay dlq` and `postback-relay replay records`: re-send conversions from the dead-letter
queue or chosen from the table, through the same claim as every attempt (the work is postback_relay.ops.replay's)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from postback_relay.ops.cli.command import Command, moment_of, require_known, split_values
from postback_relay.ops.cli.output import end_progress, print_json, print_text, show_progress
from postback_relay.ops.deployment import Deployment, OperatorError

if TYPE_CHECKING:
    from postback_relay.ops.replay import ReplayReport


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """What to replay, the selection of records, and --dry-run."""
    parser.add_argument("what", choices=("dlq", "records"), help="dlq: the dead-letter queue; records: the table")
    parser.add_argument(
        "--status",
        action="append",
        default=[],
        help="records: only this status (failed, rejected, retry_pending; repeat or comma-separate; default failed)",
    )
    parser.add_argument("--since", help="records: changed since 30m, 24h, 7d or a date (default: any time)")
    parser.add_argument("--click-id", help="records: only conversions of this click id")
    parser.add_argument("--dry-run", action="store_true", help="print what would be re-sent, change nothing")


def run(args: argparse.Namespace, deployment: Deployment) -> int:
    """`replay`: re-queue conversions for the retry worker, with progress on stderr, then the report."""
    from postback_relay.aws.queue import RetryQueue
    from postback_relay.aws.store import ConversionStore
    from postback_relay.ops.replay import redrive_dead_letters, replay_records

    statuses, since = _selection(args)
    retry_url, dead_letter_url = deployment.queue_urls()
    sqs = deployment.client("sqs")
    store = ConversionStore(deployment.client("dynamodb"), deployment.table_name)  # reads and claims only
    queue = RetryQueue(sqs, retry_url, dead_letter_url)
    progress = _replay_progress if sys.stderr.isatty() or not args.json else None
    if args.what == "dlq":
        report = redrive_dead_letters(sqs, store, queue, args.dry_run, progress)
    else:
        report = replay_records(store, queue, statuses, since, args.click_id, args.dry_run, progress)
    if progress is not None:
        end_progress()
    if args.json:
        print_json({"target": deployment.label, "dry_run": args.dry_run, **report.as_dict()})
    else:
        print_text("\n".join(_report_lines(report, deployment.label, args.dry_run)))
    return 0


def _selection(args: argparse.Namespace) -> tuple[list[str], str | None]:
    """The statuses (default failed) and the ISO time of --since, checked; the record options refused with dlq."""
    from postback_relay.core.record import iso
    from postback_relay.ops.replay import REPLAYABLE

    statuses = split_values(args.status) or ["failed"]
    require_known("--status", statuses, REPLAYABLE)
    if args.what == "dlq" and (args.status or args.since or args.click_id):
        raise OperatorError("--status, --since and --click-id select records", "use them with `replay records`")
    since = iso(moment_of("--since", args.since, "use 24h, 7d or 2026-11-20")) if args.since else None
    return statuses, since


def _report_lines(report: ReplayReport, label: str, dry_run: bool) -> list[str]:
    """What was (or would be) queued, skipped and deferred, and where to watch the retry worker send it."""
    verb = "would re-send" if dry_run else "re-queued"
    lines = [f"{verb} {len(report.queued)} conversion(s) in {label}"]
    lines += [f"  {pk}  {report.postbacks.get(pk, '')}" for pk in report.queued]
    if report.skipped:
        lines.append(f"skipped {len(report.skipped)}:")
        lines += [f"  {pk}  {why}" for pk, why in report.skipped.items()]
    if report.deferred:
        lines.append(f"reopened, not queued {len(report.deferred)}:")
        lines += [f"  {pk}  {why}" for pk, why in report.deferred.items()]
    if not dry_run and report.queued:
        lines.append(
            "the retry worker sends them within a minute: `postback-relay recent --since 1h` shows how it went"
        )
    return lines


def _replay_progress(count: int, conversion_id: str) -> None:
    show_progress(f"examined {count:,} ({conversion_id})")


COMMAND = Command(
    name="replay",
    help="re-send conversions (dead-letter queue, or chosen from the table)",
    description="Put conversions back on the retry queue through the same claim as every attempt, so a "
    "conversion already sent is never sent again and replaying twice sends once. `replay dlq` re-drives "
    "every conversion that exhausted its retries; `replay records` selects from the table (default: status "
    "failed). --dry-run prints what would be sent (the postback URL, key redacted) and changes nothing.",
    add_arguments=add_arguments,
    run=run,
)
