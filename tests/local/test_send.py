"""`make send` (python -m postback_relay.local.send) when the relay is not running: one line that says what
to do, exit status 2, no traceback."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from postback_relay.local import send

EVENT = Path(__file__).resolve().parents[2] / "events" / "stripe" / "checkout.session.completed.json"


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # nothing listens on it once the socket is closed


def test_a_refused_connection_is_one_line_naming_make_run(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    assert send.main([str(EVENT), "--url", url]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and err.startswith(f"nothing answers at {url}: start the relay with `make run`")
