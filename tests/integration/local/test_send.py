"""`make send` (python -m postback_relay_dev.send) when the relay is not running or not trusted: one line
that says what to do, exit status 2, no traceback."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import trustme

from postback_relay_dev import send
from postback_relay_dev.sandbox import TrafficStarsSandbox

EVENT = Path(__file__).resolve().parents[3] / "events" / "stripe" / "checkout.session.completed.json"


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


def test_an_untrusted_certificate_is_one_line_saying_so(
    sandbox: TrafficStarsSandbox, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An HTTPS relay whose authority is not trusted is answering: "start `make run`" would send the reader the
    wrong way."""
    stranger = tmp_path / "another-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(stranger))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(stranger))
    url = sandbox.base_url.split("/api/")[0]  # a real HTTPS server on loopback, signed by another authority
    assert send.main([str(EVENT), "--url", url]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"certificate verification failed at {url}: ") and "make run" not in err
