"""postback-relay: the operator's commands, against a deployed stack or the local run (`make run`).

  status CLICK_ID|ORDER_ID   a conversion's record and every attempt at its postback
  recent                     a table of recent conversions (--status, --source, --tenant, --since, --json)
  send-test CLICK_ID         one postback to TrafficStars, to check the key and a click id
  sign SOURCE EVENT_FILE     sign a sample event with the configured secret and POST it to the relay
  replay dlq|records         re-send conversions from the dead-letter queue or the table (--dry-run)
  reconcile --source S --since 7d
                             recover the purchases a platform never delivered, from its API (--dry-run)
  check                      is the deployment able to relay? secret, table, queues, TrafficStars URL, alarms
                             (--tenant NAME: that tenant's configuration, settings and secret)
  tenant add|show|list|set|remove
                             several shops and TrafficStars accounts in one deployment: a tenant's
                             configuration, its secret (created with placeholders) and its URLs

Every command takes --stack/--region/--profile (a deployed stack; the default stack is samconfig.toml's)
or --local, and --json, before or after the command. The TrafficStars key and the signing secrets are never
printed.
Exit status: 0 done, 1 not found / not accepted / a check failed, 2 a problem to fix (the message says how),
141 the output's reader went away (`| head`)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

from postback_relay.ops.cli import check, recent, reconcile, replay, send_test, sign, status, tenant
from postback_relay.ops.cli.command import Command, Run
from postback_relay.ops.cli.output import problem
from postback_relay.ops.deployment import OperatorError, explain, resolve

# In the order the overview lists them.
COMMANDS: tuple[Command, ...] = (
    status.COMMAND,
    recent.COMMAND,
    send_test.COMMAND,
    sign.COMMAND,
    replay.COMMAND,
    reconcile.COMMAND,
    check.COMMAND,
    tenant.COMMAND,
)


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
    command: Run | None = getattr(args, "command", None)
    if command is None:
        parser.print_help()
        return 2
    target = "the local run" if args.local else f"stack {args.stack or '(default)'}"
    try:
        deployment = resolve(local=args.local, stack=args.stack, region=args.region, profile=args.profile)
        target = deployment.label
        return command(args, deployment)
    except OperatorError as exc:
        return problem(exc)
    except Exception as exc:  # SDK and HTTP errors an operator can fix are explained; the others are raised
        explained = explain(exc, target) or _explain_http(exc, args)
        if explained is None:
            raise
        return problem(explained)


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
    for command in COMMANDS:
        subparser = commands.add_parser(
            command.name, parents=[common], help=command.help, description=command.description
        )
        command.add_arguments(subparser)
        subparser.set_defaults(command=command.run)
    return parser


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


def _version() -> str:
    """The package's own __version__ (the one source of the version), so a checkout run without installing
    and an installed copy both answer it."""
    from postback_relay import __version__

    return __version__
