"""What a command of the operator CLI is, and the option helpers several commands share: each command module
declares one `Command`, and the package's `build_parser` only lists them."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import NamedTuple

from postback_relay.ops.deployment import Deployment, OperatorError

Run = Callable[[argparse.Namespace, Deployment], int]


class Command(NamedTuple):
    """One subcommand: its name, its one-line help (the overview), its description (its own --help), the
    arguments it adds to its parser, and what runs it against the resolved deployment (the exit status)."""

    name: str
    help: str
    description: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Run


def split_values(values: list[str]) -> list[str]:
    """An option given repeatedly or comma-separated (`--status failed,rejected --status sent`), as one list."""
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def require_known(option: str, given: list[str], known: Sequence[str]) -> None:
    """Refuse values of ``option`` outside ``known``, naming the known ones."""
    unknown = [value for value in given if value not in known]
    if unknown:
        raise OperatorError(f"{option} {', '.join(unknown)}: not a known value", f"use one of: {', '.join(known)}")


def moment_of(option: str, text: str, fix: str, kinds: str = "a duration nor a date") -> float:
    """The epoch seconds ``text`` (30m, 24h, 7d, 2w or a date) names, counted back from now; an operator error
    naming ``option`` (and the examples in ``fix``) when it names none."""
    import time

    from postback_relay.aws.reads import parse_since

    moment = parse_since(text, time.time())
    if moment is None:
        raise OperatorError(f"{option} {text!r} is neither {kinds}", fix)
    return moment
