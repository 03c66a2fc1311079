"""Every `postback-relay …` command the texts quote (alarm descriptions, outputs, the README, docstrings and
messages) is one the CLI parses: an operator pasting one from an alarm e-mail must not get a usage error."""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest

from postback_relay.ops import cli

ROOT = Path(__file__).resolve().parents[2]
TEXTS = [ROOT / "template.yaml", ROOT / "README.md", *sorted((ROOT / "src").rglob("*.py"))]
# A command is quoted in backticks or in parentheses; placeholders (CLICK_ID, ID, …) stand for values.
COMMANDS = {
    name
    for action in cli.build_parser()._actions
    if isinstance(action, argparse._SubParsersAction)
    for name in action.choices
}
QUOTED = re.compile(r"`(postback-relay [^`]+)`|\((postback-relay [a-z][^)]*)\)")


def quoted_commands() -> list[tuple[str, str]]:
    found = []
    for path in TEXTS:
        text = path.read_text(encoding="utf-8")
        for match in QUOTED.finditer(text):
            command = " ".join((match.group(1) or match.group(2)).split())
            found.append((str(path.relative_to(ROOT)), command))
    return found


def test_the_texts_quote_commands_at_all() -> None:
    files = {path for path, _ in quoted_commands()}
    assert {"template.yaml", "README.md"} <= files
    assert any("replay dlq" in command for _, command in quoted_commands())


@pytest.mark.parametrize(("where", "command"), quoted_commands())
def test_every_quoted_command_parses(where: str, command: str, capsys: pytest.CaptureFixture[str]) -> None:
    words = shlex.split(command.replace("…", "x"))[1:]
    words = [w for w in words if w not in ("|", "head")]
    if len(words) == 1 and words[0] in COMMANDS:
        return  # a bare command name names the command (its page in --help), as `git commit` would
    try:
        args = cli.build_parser().parse_args(words)
    except SystemExit as exited:
        if exited.code == 0 and words[0] in ("--version", "--help", "-h"):
            return  # it prints and exits 0, as quoted
        pytest.fail(f"{where} quotes `{command}`, which the CLI refuses: {capsys.readouterr().err.strip()}")
    assert getattr(args, "command", None) is not None, f"{where}: `{command}` names no command"


def test_no_text_spells_the_dead_letter_replay_as_an_option() -> None:
    offenders = [str(p.relative_to(ROOT)) for p in TEXTS if "replay --dlq" in p.read_text(encoding="utf-8")]
    assert offenders == []
