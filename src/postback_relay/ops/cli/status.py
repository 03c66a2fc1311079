"""`postback-relay status CLICK_ID|ORDER_ID`: a conversion's record and every attempt at its postback."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from postback_relay.ops.cli.command import Command
from postback_relay.ops.cli.output import clip, plain, print_json, print_text, short_time, table
from postback_relay.ops.deployment import Deployment

# The fields `status` shows first, in this order; the others follow alphabetically.
RECORD_ORDER = (
    "status",
    "source",
    "purchase_id",
    "click_id",
    "raw_click_id",
    "value",
    "value_currency",
    "value_note",
    "amount",
    "currency",
    "lead_code",
    "attempts",
    "deliveries",
    "trafficstars_http_status",
    "trafficstars_answer",
    "trafficstars_reason",
    "received_at",
    "last_attempt_at",
    "sent_at",
    "updated_at",
    "correlation_id",
    "first_event_id",
    "event_ids",
    "event_types",
    "livemode",
    "postback_url",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The reference to look up."""
    parser.add_argument("reference", metavar="CLICK_ID|ORDER_ID")
    parser.add_argument(
        "--tenant",
        metavar="NAME",
        default="default",
        help="whose purchase id it is (default: the default tenant's); a click id or a key finds any tenant's",
    )


def run(args: argparse.Namespace, deployment: Deployment) -> int:
    """`status`: find the record(s), print each with its attempt log."""
    from postback_relay.aws.reads import find
    from postback_relay.core.tenant import scope
    from postback_relay.networks.trafficstars import CLICK_ID_PATTERN
    from postback_relay.platforms import ROUTED

    names = [scope(args.tenant, source.name) for source in ROUTED.values()]
    records = find(deployment.client("dynamodb"), deployment.table_name, args.reference, names, CLICK_ID_PATTERN)
    if args.json:
        print_json({"reference": args.reference, "conversions": records})
    elif records:
        print_text("\n\n".join(_record_text(record) for record in records))
    if not records:
        kind = "click id" if CLICK_ID_PATTERN.fullmatch(args.reference.strip().lower()) else "purchase id or key"
        print(
            f"no conversion found for {kind} {args.reference!r} in {deployment.label}\n"
            "  a record's key is [<tenant>/]<source>#<purchase id>: for Stripe the PaymentIntent (pi_…) or invoice "
            "(in_…), not the Checkout Session (cs_…); a tenant's purchase id needs --tenant; `postback-relay recent` "
            "lists what arrived",
            file=sys.stderr,
        )
        return 1
    return 0


def _record_text(record: dict[str, Any]) -> str:
    attempts = record.get("attempt_log") or []
    fields = [name for name in RECORD_ORDER if name in record]
    fields += sorted(name for name in record if name not in RECORD_ORDER and name not in ("pk", "attempt_log"))
    width = max(len(name) for name in fields) if fields else 0
    lines = [f"conversion {record.get('pk')}"]
    lines += [f"  {name:<{width}}  {plain(record[name])}" for name in fields]
    lines.append(f"attempts ({len(attempts)})")
    if attempts:
        rows = [
            [
                str(number),
                short_time(a.get("at")),
                str(a.get("outcome", "")),
                str(a.get("http_status") if a.get("http_status") is not None else "-"),
                f"{float(a.get('duration_ms') or 0):.0f}",
                str(a.get("correlation_id") or "-"),
                clip(str(a.get("message", "")), 60),
            ]
            for number, a in enumerate(attempts, start=1)
        ]
        attempt_table = table(["#", "AT (UTC)", "OUTCOME", "HTTP", "MS", "CORRELATION ID", "TRAFFICSTARS SAID"], rows)
        lines += [f"  {line}" for line in attempt_table.splitlines()]
    return "\n".join(lines)


COMMAND = Command(
    name="status",
    help="a conversion's record and every attempt",
    description="Show the record of a conversion and every attempt at its postback (the key redacted). "
    "REFERENCE is a click id (every conversion of that click, newest first), a purchase id "
    "(a Stripe PaymentIntent pi_… or invoice in_…) or a record key (stripe#pi_…).",
    add_arguments=add_arguments,
    run=run,
)
