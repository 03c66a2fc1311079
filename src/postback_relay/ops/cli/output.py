"""How the operator CLI prints: plain text and JSON on stdout with the TrafficStars key redacted, aligned
tables, problems with their fix on stderr, and a progress line on stderr that rewrites itself."""

from __future__ import annotations

import base64
import json
import sys
from decimal import Decimal
from typing import Any

from postback_relay.networks.trafficstars import redact
from postback_relay.ops.deployment import OperatorError


def print_text(text: str) -> None:
    """Print ``text`` on stdout with any key in it redacted."""
    print(redact(text))


def print_json(document: Any) -> None:
    """Print ``document`` as indented JSON (sorted keys; DynamoDB's Decimals and sets made JSON), redacted."""
    print(redact(json.dumps(document, indent=2, sort_keys=True, default=_jsonable)))


def problem(error: OperatorError) -> int:
    """Print what went wrong and how to fix it on stderr; 2, the exit status of a problem to fix."""
    print(f"postback-relay: {redact(error.problem)}\n  fix: {redact(error.fix)}", file=sys.stderr)
    return 2


def table(header: list[str], rows: list[list[str]]) -> str:
    """The rows under the header in columns as wide as their widest cell."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in [header, *rows]
    )


def plain(value: Any) -> str:
    """A record's value as text: a set or list sorted and comma-separated, a Decimal without an exponent."""
    if isinstance(value, set | frozenset | list | tuple):
        return ", ".join(sorted(str(v) for v in value))
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def short_time(value: Any) -> str:
    """``2026-11-24T16:34:23.330+00:00`` → ``2026-11-24 16:34:23``."""
    text = str(value or "")
    return text[:19].replace("T", " ") if text else "-"


def clip(text: str, width: int) -> str:
    """``text`` on one line, cut to ``width`` characters with an ellipsis."""
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def show_progress(text: str) -> None:
    """Rewrite the progress line on stderr (stdout keeps only the result); `end_progress` ends it."""
    print(f"\r{text}", end="", file=sys.stderr, flush=True)


def end_progress() -> None:
    """End the progress line, so what follows on stderr starts a line of its own."""
    print(file=sys.stderr)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
