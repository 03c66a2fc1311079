"""`postback-relay recent`: a table of recent conversions, newest first, a page at a time."""

from __future__ import annotations

import argparse
import sys
from typing import Any, NamedTuple

from postback_relay.ops.cli.command import Command, moment_of, require_known, split_values
from postback_relay.ops.cli.output import (
    clip,
    end_progress,
    print_json,
    print_text,
    short_time,
    show_progress,
    table,
)
from postback_relay.ops.deployment import Deployment, OperatorError

HEADER = ["RECEIVED (UTC)", "SOURCE", "STATUS", "PURCHASE", "CLICK ID", "VALUE", "TRIES", "LAST ANSWER"]


class Query(NamedTuple):
    """What the options ask for, checked: the filters, and the page's window as the table's times."""

    statuses: list[str]
    sources: list[str]
    tenant: str | None  # one tenant's records only (None: every tenant's)
    since: str  # ISO time
    before: tuple[str, str] | None  # a cursor: (received_at, pk)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The filters and the page."""
    parser.add_argument("--status", action="append", default=[], help="only this status (repeat or comma-separate)")
    parser.add_argument("--source", action="append", default=[], help="only this source (repeat or comma-separate)")
    parser.add_argument(
        "--tenant", help="only this tenant's conversions (`default`: the deployment's own, before tenants)"
    )
    parser.add_argument("--since", default="24h", help="received since: 30m, 24h, 7d, 2w or a date (default 24h)")
    parser.add_argument("--before", help="received before this time (the next page's cursor)")
    parser.add_argument("--limit", type=_positive_int, default=20, help="rows per page (default 20)")


def run(args: argparse.Namespace, deployment: Deployment) -> int:
    """`recent`: scan, filter, sort newest first, print one page and the command for the next."""
    from postback_relay.aws.reads import cursor_of, recent

    query = _query(args)
    progress = _scan_progress if sys.stderr.isatty() and not args.json else None
    page = recent(
        deployment.client("dynamodb"),
        deployment.table_name,
        since=query.since,
        before=query.before,
        statuses=query.statuses,
        sources=query.sources,
        tenant=query.tenant,
        limit=args.limit,
        progress=progress,
    )
    if progress is not None:
        end_progress()
    more = page.matched > len(page.records)
    cursor = cursor_of(page.records[-1]) if more and page.records else None
    if args.json:
        print_json(
            {"conversions": page.records, "matched": page.matched, "scanned": page.scanned, "next_before": cursor}
        )
        return 0
    if page.records:
        print_text(table(HEADER, [_row(record) for record in page.records]))
    shown = f"{len(page.records)} of {page.matched}" if more else f"{page.matched}"
    print(
        f"{shown} conversion(s) received since {short_time(query.since)} UTC"
        f"{f' of tenant {query.tenant}' if query.tenant else ''} in {deployment.label}, "
        f"newest first ({page.scanned} records scanned)"
    )
    if cursor:
        print(f"next page: {_next_page_command(args, query.since, cursor)}")
    return 0


def _query(args: argparse.Namespace) -> Query:
    """The options checked against the known statuses and sources, the times parsed."""
    from postback_relay.aws.reads import STATUSES, parse_cursor
    from postback_relay.core.record import iso
    from postback_relay.core.tenant import is_slug
    from postback_relay.platforms import ROUTED

    statuses = split_values(args.status)
    sources = split_values(args.source)
    require_known("--status", statuses, STATUSES)
    require_known("--source", sources, tuple(source.name for source in ROUTED.values()))
    tenant = args.tenant
    if tenant is not None and not is_slug(tenant):
        raise OperatorError(
            f"--tenant {tenant!r} cannot name a tenant",
            "use a tenant's name (lower-case letters, digits and hyphens; `postback-relay tenant list`), or default",
        )
    since = moment_of("--since", args.since, "use 30m, 24h, 7d or 2026-11-20")
    before = parse_cursor(args.before) if args.before else None
    if args.before and before is None:
        moment = moment_of("--before", args.before, "use 2026-11-20 or 2h", kinds="a date nor a duration")
        before = (iso(moment), "")
    return Query(statuses, sources, tenant, iso(since), before)


def _row(record: dict[str, Any]) -> list[str]:
    return [
        short_time(record.get("received_at")),
        str(record.get("source", "")),
        str(record.get("status", "")),
        str(record.get("purchase_id", "")),
        str(record.get("click_id", "") or "-"),
        f"{record['value']} {record.get('value_currency', '')}".strip() if record.get("value") else "-",
        str(record.get("attempts", "")),
        clip(str(record.get("trafficstars_answer", "") or "-"), 40),
    ]


def _next_page_command(args: argparse.Namespace, since: str, cursor: str) -> str:
    """The same query from where this page ended; --since fixed so the pages do not drift."""
    parts = ["postback-relay", "recent", "--since", since, "--before", f"'{cursor}'", "--limit", str(args.limit)]
    parts += [f"--status={s}" for s in split_values(args.status)]
    parts += [f"--source={s}" for s in split_values(args.source)]
    if args.tenant:
        parts += ["--tenant", args.tenant]
    if args.local:
        parts.append("--local")
    for option in ("stack", "region", "profile"):
        if getattr(args, option):
            parts += [f"--{option}", getattr(args, option)]
    return " ".join(parts)


def _scan_progress(scanned: int) -> None:
    show_progress(f"scanned {scanned:,} records")


def _positive_int(text: str) -> int:
    number = int(text)
    if number < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return number


COMMAND = Command(
    name="recent",
    help="a table of recent conversions",
    description="List recent conversions, newest first, a page at a time (--limit; the footer prints the "
    "command for the next page). Reads the table with a Scan: see README, Operating it.",
    add_arguments=add_arguments,
    run=run,
)
