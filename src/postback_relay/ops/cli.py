"""postback-relay: the operator's commands, against a deployed stack or the local run (`make run`).

  status CLICK_ID|ORDER_ID   a conversion's record and every attempt at its postback
  recent                     a table of recent conversions (--status, --source, --since, --json)
  send-test CLICK_ID         one postback to TrafficStars, to check the key and a click id
  sign SOURCE EVENT_FILE     sign a sample event with the configured secret and POST it to the relay
  replay dlq|records         re-send conversions from the dead-letter queue or the table (--dry-run)
  check                      is the deployment able to relay? secret, table, queues, TrafficStars URL, alarms

Every command takes --stack/--region/--profile (a deployed stack; the default stack is samconfig.toml's)
or --local, and --json, before or after the command. The TrafficStars key and the signing secrets are never
printed.
Exit status: 0 done, 1 not found / not accepted / a check failed, 2 a problem to fix (the message says how),
141 the output's reader went away (`| head`)."""

from __future__ import annotations

import argparse
import base64
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from postback_relay.networks.trafficstars import redact
from postback_relay.ops.delivery import Delivery
from postback_relay.ops.deployment import Deployment, OperatorError, explain, resolve

Command = Callable[[argparse.Namespace, Deployment], int]

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
ANSWER_MEANING = {
    "ok": "TrafficStars accepted it: the key and the click id work (it counts as a conversion of that click)",
    "invalid_key": "TrafficStars does not know this key: copy the S2S key from TrafficStars into trafficstars_key",
    "invalid_code": "TrafficStars does not know this click id: take one from a real ad click ({click_id} in the URL)",
    "price": "TrafficStars refused the value: it takes 0.01 to 200.00",
    "https_required": "TrafficStars wants HTTPS: the TrafficStars URL must start with https://",
    "timeout": "TrafficStars did not answer in time: try again (the relay retries such answers itself)",
    "connection_error": "TrafficStars could not be reached: check the network, or try again later",
    "certificate_error": "the certificate of the TrafficStars URL failed verification: check the URL's host and "
    "the trusted authorities (REQUESTS_CA_BUNDLE; with --local, the CA `make run` wrote)",
}


def main(argv: Sequence[str] | None = None) -> int:
    """Console-script entry point. A reader that goes away (`postback-relay recent | head`) ends the command
    quietly with 141, as a shell reports a command ended by SIGPIPE, instead of a BrokenPipeError traceback."""
    try:
        code = _run(argv)
        sys.stdout.flush()  # inside the try: a closed pipe can fail the last buffered write too
    except BrokenPipeError:
        # What the Python documentation advises (library/signal, "Note on SIGPIPE"): point stdout at devnull
        # so the interpreter's own flush at exit cannot raise again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    return code


def _run(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    command: Command | None = getattr(args, "command", None)
    if command is None:
        parser.print_help()
        return 2
    target = "the local run" if args.local else f"stack {args.stack or '(default)'}"
    try:
        deployment = resolve(local=args.local, stack=args.stack, region=args.region, profile=args.profile)
        target = deployment.label
        return command(args, deployment)
    except OperatorError as exc:
        return _problem(exc)
    except Exception as exc:  # SDK and HTTP errors an operator can fix are explained; the others are raised
        explained = explain(exc, target) or _explain_http(exc, args)
        if explained is None:
            raise
        return _problem(explained)


def _shared_options(default: Any = None) -> argparse.ArgumentParser:
    """A parent parser with the target options and --json; ``default`` is every option's default."""
    common = argparse.ArgumentParser(add_help=False, argument_default=default)
    target = common.add_argument_group("where (a deployed stack, or --local)")
    target.add_argument(
        "--stack",
        help="the stack `sam deploy` created (default: $POSTBACK_RELAY_STACK, samconfig.toml's stack_name, "
        "else postback-relay)",
    )
    target.add_argument("--region", help="its region (default: AWS_REGION, the profile's, samconfig.toml's)")
    target.add_argument("--profile", help="AWS profile to use (default: AWS_PROFILE or the default credentials)")
    target.add_argument(
        "--local",
        action="store_true",
        help="the local run of `make run` instead (moto on MOTO_PORT, sandbox on SANDBOX_PORT, relay on PORT)",
    )
    common.add_argument("--json", action="store_true", help="print JSON instead of text")
    return common


def build_parser() -> argparse.ArgumentParser:
    """Every command, each with --help and the shared target options."""
    # The shared options are accepted before the command (`postback-relay --local check`) and after it
    # (`postback-relay check --local`). The top-level parser holds their defaults; each command's copy has none
    # (SUPPRESS), since a command's default would otherwise overwrite what was given before the command.
    parser = argparse.ArgumentParser(
        prog="postback-relay",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[_shared_options()],
    )
    common = _shared_options(argparse.SUPPRESS)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    status = commands.add_parser(
        "status",
        parents=[common],
        help="a conversion's record and every attempt",
        description="Show the record of a conversion and every attempt at its postback (the key redacted). "
        "REFERENCE is a click id (every conversion of that click, newest first), a purchase id "
        "(a Stripe PaymentIntent pi_… or invoice in_…) or a record key (stripe#pi_…).",
    )
    status.add_argument("reference", metavar="CLICK_ID|ORDER_ID")
    status.set_defaults(command=cmd_status)

    recent = commands.add_parser(
        "recent",
        parents=[common],
        help="a table of recent conversions",
        description="List recent conversions, newest first, a page at a time (--limit; the footer prints the "
        "command for the next page). Reads the table with a Scan: see README, Operating it.",
    )
    recent.add_argument("--status", action="append", default=[], help="only this status (repeat or comma-separate)")
    recent.add_argument("--source", action="append", default=[], help="only this source (repeat or comma-separate)")
    recent.add_argument("--since", default="24h", help="received since: 30m, 24h, 7d, 2w or a date (default 24h)")
    recent.add_argument("--before", help="received before this time (the next page's cursor)")
    recent.add_argument("--limit", type=_positive_int, default=20, help="rows per page (default 20)")
    recent.set_defaults(command=cmd_recent)

    send_test = commands.add_parser(
        "send-test",
        parents=[common],
        help="one postback to TrafficStars",
        description="Send one postback for CLICK_ID through the relay's own TrafficStars client, with the key "
        "in the deployment's secret, and say what TrafficStars answered. With a click id from a real ad click "
        "TrafficStars counts it as a conversion (its lead_code is the same every time for one click id).",
    )
    send_test.add_argument("click_id", metavar="CLICK_ID")
    send_test.add_argument("--value", type=_value, help="the value to send, e.g. 12.50 (default: none)")
    send_test.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for TrafficStars (10)")
    send_test.add_argument("--yes", action="store_true", help="do not ask before sending to a real TrafficStars")
    send_test.set_defaults(command=cmd_send_test)

    sign = commands.add_parser(
        "sign",
        parents=[common],
        help="sign a sample event and POST it to the relay",
        description="Sign EVENT_FILE with SOURCE's signing secret from the deployment's secret, timestamped now, "
        "and POST it to the relay's webhook, like `stripe trigger`: an end-to-end test of a deployment. "
        "EVENT_FILE is an API Gateway event from events/ or a bare webhook body (a Stripe event JSON). "
        "The relay processes it for real: a purchase with a valid click id is forwarded to TrafficStars.",
    )
    sign.add_argument("source", metavar="SOURCE")
    sign.add_argument("event_file", metavar="EVENT_FILE", type=Path)
    sign.add_argument("--url", help="base URL of the relay (default: the stack's ApiBaseUrl, or the local run)")
    sign.set_defaults(command=cmd_sign)

    replay = commands.add_parser(
        "replay",
        parents=[common],
        help="re-send conversions (dead-letter queue, or chosen from the table)",
        description="Put conversions back on the retry queue through the same claim as every attempt, so a "
        "conversion already sent is never sent again and replaying twice sends once. `replay dlq` re-drives "
        "every conversion that exhausted its retries; `replay records` selects from the table (default: status "
        "failed). --dry-run prints what would be sent (the postback URL, key redacted) and changes nothing.",
    )
    replay.add_argument("what", choices=("dlq", "records"), help="dlq: the dead-letter queue; records: the table")
    replay.add_argument(
        "--status",
        action="append",
        default=[],
        help="records: only this status (failed, rejected, retry_pending; repeat or comma-separate; default failed)",
    )
    replay.add_argument("--since", help="records: changed since 30m, 24h, 7d or a date (default: any time)")
    replay.add_argument("--click-id", help="records: only conversions of this click id")
    replay.add_argument("--dry-run", action="store_true", help="print what would be re-sent, change nothing")
    replay.set_defaults(command=cmd_replay)

    check = commands.add_parser(
        "check",
        parents=[common],
        help="verify a deployment",
        description="Check that the secret holds the TrafficStars key and each routed source's signing secret, "
        "that the table (and its click_id index) is reachable, that the TrafficStars URL is HTTPS, and that the "
        "alarms notify a topic with a confirmed subscriber. Exit status 1 when a check fails.",
    )
    check.add_argument(
        "--source",
        action="append",
        default=[],
        help="a source you use: its missing signing secret fails the check instead of warning (repeatable)",
    )
    check.set_defaults(command=cmd_check)
    return parser


def cmd_status(args: argparse.Namespace, deployment: Deployment) -> int:
    """`status`: find the record(s), print each with its attempt log."""
    from postback_relay.aws.reads import find, is_click_id
    from postback_relay.platforms import ROUTED

    names = [source.name for source in ROUTED.values()]
    records = find(deployment.client("dynamodb"), deployment.table_name, args.reference, names)
    if args.json:
        _print_json({"reference": args.reference, "conversions": records})
    elif records:
        _print("\n\n".join(_record_text(record) for record in records))
    if not records:
        kind = "click id" if is_click_id(args.reference) else "purchase id or key"
        print(
            f"no conversion found for {kind} {args.reference!r} in {deployment.label}\n"
            "  a record's key is <source>#<purchase id>: for Stripe the PaymentIntent (pi_…) or invoice (in_…), "
            "not the Checkout Session (cs_…); `postback-relay recent` lists what arrived",
            file=sys.stderr,
        )
        return 1
    return 0


def cmd_recent(args: argparse.Namespace, deployment: Deployment) -> int:
    """`recent`: scan, filter, sort newest first, print one page and the command for the next."""
    from postback_relay.aws.reads import STATUSES, cursor_of, parse_cursor, parse_since, recent
    from postback_relay.core.record import iso
    from postback_relay.platforms import ROUTED

    statuses = _split(args.status)
    sources = _split(args.source)
    _known("--status", statuses, STATUSES)
    _known("--source", sources, tuple(source.name for source in ROUTED.values()))
    since = parse_since(args.since, time.time())
    if since is None:
        raise OperatorError(
            f"--since {args.since!r} is neither a duration nor a date", "use 30m, 24h, 7d or 2026-11-20"
        )
    before = parse_cursor(args.before) if args.before else None
    if args.before and before is None:
        moment = parse_since(args.before, time.time())
        if moment is None:
            raise OperatorError(f"--before {args.before!r} is neither a date nor a duration", "use 2026-11-20 or 2h")
        before = (iso(moment), "")
    progress = _scan_progress() if sys.stderr.isatty() and not args.json else None
    page = recent(
        deployment.client("dynamodb"),
        deployment.table_name,
        since=iso(since),
        before=before,
        statuses=statuses,
        sources=sources,
        limit=args.limit,
        progress=progress,
    )
    if progress is not None:
        print(file=sys.stderr)
    more = page.matched > len(page.records)
    cursor = cursor_of(page.records[-1]) if more and page.records else None
    if args.json:
        _print_json(
            {"conversions": page.records, "matched": page.matched, "scanned": page.scanned, "next_before": cursor}
        )
        return 0
    rows = [
        [
            _short_time(r.get("received_at")),
            str(r.get("source", "")),
            str(r.get("status", "")),
            str(r.get("purchase_id", "")),
            str(r.get("click_id", "") or "-"),
            f"{r['value']} {r.get('value_currency', '')}".strip() if r.get("value") else "-",
            str(r.get("attempts", "")),
            _clip(str(r.get("trafficstars_answer", "") or "-"), 40),
        ]
        for r in page.records
    ]
    header = ["RECEIVED (UTC)", "SOURCE", "STATUS", "PURCHASE", "CLICK ID", "VALUE", "TRIES", "LAST ANSWER"]
    if rows:
        _print(_table(header, rows))
    shown = f"{len(page.records)} of {page.matched}" if more else f"{page.matched}"
    print(
        f"{shown} conversion(s) received since {_short_time(iso(since))} UTC in {deployment.label}, "
        f"newest first ({page.scanned} records scanned)"
    )
    if cursor:
        print(f"next page: {_next_page_command(args, iso(since), cursor)}")
    return 0


def cmd_send_test(args: argparse.Namespace, deployment: Deployment) -> int:
    """`send-test`: one GET through TrafficStarsClient with the deployment's key; say what the answer means."""
    import requests

    from postback_relay.aws.secrets import TRAFFICSTARS_KEY, SecretKeyMissing
    from postback_relay.core.conversion import lead_code
    from postback_relay.networks.trafficstars import Postback, TrafficStarsClient
    from postback_relay.ops.checks import trafficstars_url_check

    url_check = trafficstars_url_check(deployment.trafficstars_url, deployment.local)
    if url_check.level == "FAIL":
        raise OperatorError(url_check.detail, url_check.fix)
    click_id = args.click_id.strip()
    try:
        key = deployment.secrets().trafficstars_key
    except SecretKeyMissing:
        raise OperatorError(
            f"the secret {deployment.secret_id} has no {TRAFFICSTARS_KEY}",
            "add the S2S key from TrafficStars (write the whole JSON, keeping the other keys): "
            f"aws secretsmanager put-secret-value --secret-id {deployment.secret_id} --secret-string '{{...}}'",
        ) from None
    if not deployment.local and not args.yes and not _confirm(click_id, deployment.trafficstars_url):
        print("nothing sent", file=sys.stderr)
        return 1
    session = requests.Session()
    if deployment.ca_bundle:  # the local sandbox's own authority, whatever the environment's bundle says
        session.verify = deployment.ca_bundle
        session.trust_env = False
    client = TrafficStarsClient(deployment.trafficstars_url, min(5.0, args.timeout), args.timeout, session)
    postback = Postback(click_id, lead_code(f"send-test#{click_id}"), args.value)
    answer = client.send(postback, key)
    meaning = ANSWER_MEANING.get(answer.reason) or (
        "TrafficStars did not confirm it: try again later" if answer.kind == "retryable" else "TrafficStars refused it"
    )
    url = client.redacted_url(postback)
    if args.json:
        _print_json(
            {
                "url": url,
                "accepted": answer.kind == "ok",
                "kind": answer.kind,
                "reason": answer.reason,
                "http_status": answer.http_status,
                "message": answer.message,
                "duration_ms": answer.duration_ms,
                "meaning": meaning,
            }
        )
    else:
        status = answer.http_status if answer.http_status is not None else "no answer"
        _print(f"GET {url}\n-> {status} {answer.message} ({answer.duration_ms:.0f} ms)\n{meaning}")
    return 0 if answer.kind == "ok" else 1


def cmd_sign(args: argparse.Namespace, deployment: Deployment) -> int:
    """`sign`: the event signed now with the deployment's secret for SOURCE, POSTed to the relay."""
    from postback_relay.platforms import ROUTED

    if args.source not in ROUTED:
        raise OperatorError(f"there is no source named {args.source!r}", f"use one of: {', '.join(ROUTED)}")
    delivery = _load_event(args.event_file, args.source)
    field = ROUTED[args.source].secret_field
    signing = deployment.secrets().signing_secrets(field)
    if not signing:
        raise OperatorError(
            f"the secret {deployment.secret_id} has no {field}, so {args.source} webhooks cannot be signed "
            "(and the relay refuses them)",
            f"add {field} (write the whole JSON, keeping the other keys): aws secretsmanager put-secret-value "
            f"--secret-id {deployment.secret_id} --secret-string '{{...}}'",
        )
    base_url = args.url or deployment.api_base_url
    if not base_url:
        raise OperatorError(f"{deployment.label} has no ApiBaseUrl output", "pass --url https://…")
    signed = delivery.signed(signing[0])  # the first is the current one while a secret is being rolled
    response = signed.post(base_url)
    try:
        answer: Any = response.json()
    except ValueError:
        answer = response.text
    method = signed.method
    url = base_url.rstrip("/") + signed.path  # the query (a tracker's postback) is not shown: no token
    if args.json:
        _print_json(
            {
                "method": method,
                "url": url,
                "signed_with": field,
                "http_status": response.status_code,
                "answer": answer,
            }
        )
    else:
        _print(f"{method} {url} (signed with {field})\n-> {response.status_code} {json.dumps(answer)}")
    return 0 if response.ok else 1


def cmd_replay(args: argparse.Namespace, deployment: Deployment) -> int:
    """`replay`: re-queue conversions for the retry worker, with progress on stderr, then the report."""
    from postback_relay.aws.queue import RetryQueue
    from postback_relay.aws.reads import parse_since
    from postback_relay.aws.store import ConversionStore
    from postback_relay.core.record import iso
    from postback_relay.ops.replay import REPLAYABLE, redrive_dead_letters, replay_records

    statuses = _split(args.status) or ["failed"]
    _known("--status", statuses, REPLAYABLE)
    if args.what == "dlq" and (args.status or args.since or args.click_id):
        raise OperatorError("--status, --since and --click-id select records", "use them with `replay records`")
    since = None
    if args.since:
        moment = parse_since(args.since, time.time())
        if moment is None:
            raise OperatorError(f"--since {args.since!r} is neither a duration nor a date", "use 24h, 7d or 2026-11-20")
        since = iso(moment)
    retry_url, dead_letter_url = deployment.queue_urls()
    sqs = deployment.client("sqs")
    store = ConversionStore(deployment.client("dynamodb"), deployment.table_name, retention_days=90)  # unused here
    queue = RetryQueue(sqs, retry_url, dead_letter_url)
    progress = _replay_progress() if sys.stderr.isatty() or not args.json else None
    if args.what == "dlq":
        report = redrive_dead_letters(sqs, store, queue, args.dry_run, progress)
    else:
        report = replay_records(store, queue, statuses, since, args.click_id, args.dry_run, progress)
    if progress is not None:
        print(file=sys.stderr)
    if args.json:
        _print_json({"target": deployment.label, "dry_run": args.dry_run, **report.as_dict()})
        return 0
    verb = "would re-send" if args.dry_run else "re-queued"
    lines = [f"{verb} {len(report.queued)} conversion(s) in {deployment.label}"]
    lines += [f"  {pk}  {report.postbacks.get(pk, '')}" for pk in report.queued]
    if report.skipped:
        lines.append(f"skipped {len(report.skipped)}:")
        lines += [f"  {pk}  {why}" for pk, why in report.skipped.items()]
    if report.deferred:
        lines.append(f"reopened, not queued {len(report.deferred)}:")
        lines += [f"  {pk}  {why}" for pk, why in report.deferred.items()]
    if not args.dry_run and report.queued:
        lines.append(
            "the retry worker sends them within a minute: `postback-relay recent --since 1h` shows how it went"
        )
    _print("\n".join(lines))
    return 0


def cmd_check(args: argparse.Namespace, deployment: Deployment) -> int:
    """`check`: every verdict, then the fixes; exit 1 if any check failed."""
    from postback_relay.ops import checks
    from postback_relay.platforms import ROUTED

    required = _split(args.source)
    _known("--source", required, tuple(ROUTED))
    verdicts = checks.run(deployment, required)
    failed = any(v.level == "FAIL" for v in verdicts)
    if args.json:
        _print_json(
            {
                "target": deployment.label,
                "ok": not failed,
                "checks": [{"name": v.name, "level": v.level, "detail": v.detail, "fix": v.fix} for v in verdicts],
            }
        )
        return 1 if failed else 0
    lines = [f"check: {deployment.label}"]
    for verdict in verdicts:
        lines.append(f"  {verdict.level:<4}  {verdict.name:<22} {verdict.detail}")
        if verdict.fix:
            lines.append(f"  {'':<4}  {'':<22} fix: {verdict.fix}")
    problems = sum(v.level != "OK" for v in verdicts)
    lines.append("all good" if problems == 0 else f"{problems} to look at ({'failed' if failed else 'warnings only'})")
    _print("\n".join(lines))
    return 1 if failed else 0


def _record_text(record: dict[str, Any]) -> str:
    attempts = record.get("attempt_log") or []
    fields = [name for name in RECORD_ORDER if name in record]
    fields += sorted(name for name in record if name not in RECORD_ORDER and name not in ("pk", "attempt_log"))
    width = max(len(name) for name in fields) if fields else 0
    lines = [f"conversion {record.get('pk')}"]
    lines += [f"  {name:<{width}}  {_plain(record[name])}" for name in fields]
    lines.append(f"attempts ({len(attempts)})")
    if attempts:
        rows = [
            [
                str(number),
                _short_time(a.get("at")),
                str(a.get("outcome", "")),
                str(a.get("http_status") if a.get("http_status") is not None else "-"),
                f"{float(a.get('duration_ms') or 0):.0f}",
                str(a.get("correlation_id") or "-"),
                _clip(str(a.get("message", "")), 60),
            ]
            for number, a in enumerate(attempts, start=1)
        ]
        table = _table(["#", "AT (UTC)", "OUTCOME", "HTTP", "MS", "CORRELATION ID", "TRAFFICSTARS SAID"], rows)
        lines += [f"  {line}" for line in table.splitlines()]
    return "\n".join(lines)


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in [header, *rows]
    )


def _plain(value: Any) -> str:
    if isinstance(value, set | frozenset | list | tuple):
        return ", ".join(sorted(str(v) for v in value))
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _print(text: str) -> None:
    print(redact(text))


def _print_json(document: Any) -> None:
    print(redact(json.dumps(document, indent=2, sort_keys=True, default=_jsonable)))


def _problem(error: OperatorError) -> int:
    print(f"postback-relay: {redact(error.problem)}\n  fix: {redact(error.fix)}", file=sys.stderr)
    return 2


def _explain_http(exc: Exception, args: argparse.Namespace) -> OperatorError | None:
    """A relay or TrafficStars URL that does not answer (sign), or whose certificate is not trusted."""
    import requests

    where = getattr(args, "url", None) or "the relay"
    if isinstance(exc, requests.exceptions.SSLError):  # a ConnectionError too, but not the network's fault
        return OperatorError(
            f"certificate verification failed at {where}: {type(exc).__name__}",
            "check the URL's host and the trusted authorities (REQUESTS_CA_BUNDLE)",
        )
    if isinstance(exc, requests.ConnectionError | requests.Timeout):
        fix = "start `make run` (the same PORT)" if args.local else "check --url and the stack's ApiBaseUrl output"
        return OperatorError(f"nothing answered at {where}: {type(exc).__name__}", fix)
    return None


def _load_event(path: Path, source: str) -> Delivery:
    """The request of an API Gateway event from the file, or of a bare webhook body (its bytes kept exactly)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise OperatorError(f"cannot read {path}: {exc.strerror}", "give the path of an event file") from None
    try:
        delivery = Delivery.read(raw, source)
    except ValueError:
        raise OperatorError(f"{path} is not JSON", "use an event from events/ or a webhook body in JSON") from None
    if delivery.route != source:
        routed = delivery.route
        raise OperatorError(f"{path} is a {routed!r} event, not {source!r}", f"postback-relay sign {routed} {path}")
    return delivery


def _confirm(click_id: str, url: str) -> bool:
    if not sys.stdin.isatty():
        raise OperatorError(
            "send-test sends a real postback, which TrafficStars counts as a conversion of that click",
            "add --yes to send it",
        )
    reply = input(f"Send one postback for click {click_id} to {url}? TrafficStars counts it. [y/N] ")
    return reply.strip().lower() in ("y", "yes")


def _next_page_command(args: argparse.Namespace, since: str, cursor: str) -> str:
    """The same query from where this page ended; --since fixed so the pages do not drift."""
    parts = ["postback-relay", "recent", "--since", since, "--before", f"'{cursor}'", "--limit", str(args.limit)]
    parts += [f"--status={s}" for s in _split(args.status)] + [f"--source={s}" for s in _split(args.source)]
    if args.local:
        parts.append("--local")
    for option in ("stack", "region", "profile"):
        if getattr(args, option):
            parts += [f"--{option}", getattr(args, option)]
    return " ".join(parts)


def _replay_progress() -> Callable[[int, str], None]:
    def show(count: int, conversion_id: str) -> None:
        print(f"\rexamined {count:,} ({conversion_id})", end="", file=sys.stderr, flush=True)

    return show


def _scan_progress() -> Callable[[int], None]:
    def show(scanned: int) -> None:
        print(f"\rscanned {scanned:,} records", end="", file=sys.stderr, flush=True)

    return show


def _split(values: list[str]) -> list[str]:
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def _known(option: str, given: list[str], known: Sequence[str]) -> None:
    unknown = [value for value in given if value not in known]
    if unknown:
        raise OperatorError(f"{option} {', '.join(unknown)}: not a known value", f"use one of: {', '.join(known)}")


def _short_time(value: Any) -> str:
    """``2026-11-24T16:34:23.330+00:00`` → ``2026-11-24 16:34:23``."""
    text = str(value or "")
    return text[:19].replace("T", " ") if text else "-"


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _positive_int(text: str) -> int:
    number = int(text)
    if number < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return number


def _value(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value.is_finite() or value <= 0:
        raise argparse.ArgumentTypeError("must be a positive number, e.g. 12.50")
    return value


def _version() -> str:
    """The package's own __version__ (the one source of the version), so a checkout run without installing
    and an installed copy both answer it."""
    from postback_relay import __version__

    return __version__


if __name__ == "__main__":
    sys.exit(main())
