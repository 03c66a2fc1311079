"""`postback-relay check`: is the deployment able to relay? The verdicts are postback_relay.ops.checks'."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TYPE_CHECKING

from postback_relay.ops.cli.command import Command, require_known, split_values
from postback_relay.ops.cli.output import print_json, print_text
from postback_relay.ops.deployment import Deployment, OperatorError

if TYPE_CHECKING:
    from postback_relay.ops.checks import Check


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The sources whose signing secret must be there."""
    parser.add_argument(
        "--source",
        action="append",
        default=[],
        help="a source you use: its missing signing secret fails the check instead of warning (repeatable)",
    )
    parser.add_argument(
        "--tenant",
        metavar="NAME",
        help="check this tenant instead: its configuration, settings and secret (`check` alone checks the "
        "deployment everyone shares)",
    )


def run(args: argparse.Namespace, deployment: Deployment) -> int:
    """`check`: every verdict, then the fixes; exit 1 if any check failed."""
    from postback_relay.ops import checks
    from postback_relay.platforms import ROUTED

    required = split_values(args.source)
    require_known("--source", required, tuple(ROUTED))
    label = deployment.label
    if args.tenant is not None:
        verdicts = _tenant_verdicts(args.tenant, deployment)
        label = f"tenant {args.tenant} in {deployment.label}"
    else:
        verdicts = checks.run(deployment, required)
    failed = any(v.level == "FAIL" for v in verdicts)
    if args.json:
        print_json(
            {
                "target": label,
                "ok": not failed,
                "checks": [{"name": v.name, "level": v.level, "detail": v.detail, "fix": v.fix} for v in verdicts],
            }
        )
    else:
        print_text("\n".join(_lines(verdicts, label, failed)))
    return 1 if failed else 0


def _tenant_verdicts(name: str, deployment: Deployment) -> list[Check]:
    """`check --tenant`: a tenant's own verdicts (ops/tenants.py), once its name could be one. Only the
    tenant's parts: the table, queues and alarms it shares are the deployment's `check`."""
    from postback_relay.core.tenant import DEFAULT_TENANT, is_slug
    from postback_relay.ops import tenants

    if name == DEFAULT_TENANT:
        raise OperatorError(
            "the default tenant is the deployment's own configuration", "run `postback-relay check` without --tenant"
        )
    if not is_slug(name):
        raise OperatorError(
            f"--tenant {name!r} cannot name a tenant", "use a tenant's name (`postback-relay tenant list`)"
        )
    return tenants.checks(deployment, name)


def _lines(verdicts: Sequence[Check], label: str, failed: bool) -> list[str]:
    """One line a verdict with its fix under it, and the count of what to look at."""
    lines = [f"check: {label}"]
    for verdict in verdicts:
        lines.append(f"  {verdict.level:<4}  {verdict.name:<22} {verdict.detail}")
        if verdict.fix:
            lines.append(f"  {'':<4}  {'':<22} fix: {verdict.fix}")
    problems = sum(v.level != "OK" for v in verdicts)
    lines.append("all good" if problems == 0 else f"{problems} to look at ({'failed' if failed else 'warnings only'})")
    return lines


COMMAND = Command(
    name="check",
    help="verify a deployment",
    description="Check that the secret holds the TrafficStars key and each routed source's signing secret, "
    "that the table (and its click_id index) is reachable, that the TrafficStars URL is HTTPS, and that the "
    "alarms notify a topic with a confirmed subscriber. Exit status 1 when a check fails.",
    add_arguments=add_arguments,
    run=run,
)
