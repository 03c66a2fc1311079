"""Shared fixtures: real parts on loopback. moto server for DynamoDB and Secrets Manager, an HTTPS
TrafficStars sandbox, and the real Lambda handler invoked in-process with payload-2.0 events."""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.support.operator_env import OPERATOR_ENVIRONMENT  # noqa: F401 - captured before the update below

# The handler validates its settings at import, so the environment is set before any test imports it.
# Nothing here can reach AWS: every client points at the moto server on 127.0.0.1.
os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",  # replaced by the moto server's address below
        "SECRET_ID": "postback-relay/test",
        "TABLE_NAME": "conversions-test",
        "TRAFFICSTARS_URL": "https://127.0.0.1:9/api/v1/cpa/action",  # replaced by the sandbox's address
        "LOCAL_MODE": "true",
        "SECRET_REFRESH_MIN_INTERVAL_SECONDS": "0",
        "POWERTOOLS_SERVICE_NAME": "postback-relay",
        "POWERTOOLS_METRICS_NAMESPACE": "PostbackRelay",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_DEV": "false",
    }
)
for _name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
    os.environ.pop(_name, None)

import boto3  # noqa: E402
import pytest  # noqa: E402
import trustme  # noqa: E402
from aws_lambda_powertools.utilities import parameters  # noqa: E402

from postback_relay.runtime import reset_runtime  # noqa: E402
from postback_relay_dev.moto_server import SerializedMotoServer  # noqa: E402
from postback_relay_dev.resources import create_queues, create_table, put_secret  # noqa: E402
from postback_relay_dev.sandbox import TrafficStarsSandbox  # noqa: E402
from tests.support.aws import Aws  # noqa: E402
from tests.support.constants import FAULT_FIGURES, TEST_KEY, TEST_SOURCE_SECRETS, TEST_STRIPE_SECRET  # noqa: E402
from tests.support.helpers import Invoker  # noqa: E402

BASE_ENV = dict(os.environ)
logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto server's access log


@pytest.fixture(scope="session")
def moto_server() -> Iterator[SerializedMotoServer]:
    server = SerializedMotoServer().start()
    os.environ["AWS_ENDPOINT_URL"] = server.endpoint
    BASE_ENV["AWS_ENDPOINT_URL"] = server.endpoint
    yield server
    server.stop()


@pytest.fixture(scope="session")
def authority() -> trustme.CA:
    """The certificate authority of the sandbox's HTTPS certificate (the one `make run` makes too)."""
    return trustme.CA()


@pytest.fixture(scope="session")
def ca_file(authority: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The authority's certificate as a REQUESTS_CA_BUNDLE file: what the relay trusts in these tests."""
    path = tmp_path_factory.mktemp("tls") / "ca.pem"
    authority.cert_pem.write_to_path(str(path))
    return path


class _CurrentStdout:
    """Writes to whatever sys.stdout is at the moment: pytest swaps it per test (capfd, capsys)."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


@pytest.fixture(scope="session", autouse=True)
def handler_logs_follow_the_capture() -> None:
    """powertools' Logger keeps the sys.stdout it finds when the handler is imported, which would be one
    test's (closed) capture stream; pointed at the current sys.stdout, every test sees its own log lines."""
    from postback_relay.handlers.http import logger

    handler = logger.registered_handler
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(_CurrentStdout())  # type: ignore[arg-type]  # a stream in all but name


@pytest.fixture(scope="session")
def sandbox_server(authority: trustme.CA) -> Iterator[TrafficStarsSandbox]:
    sandbox = TrafficStarsSandbox(TEST_KEY, authority).start()
    yield sandbox
    sandbox.stop()


@pytest.fixture
def aws(moto_server: SerializedMotoServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Aws]:
    moto_server.reset()
    session = boto3.session.Session()
    dynamodb = session.client("dynamodb", endpoint_url=moto_server.endpoint)
    secretsmanager = session.client("secretsmanager", endpoint_url=moto_server.endpoint)
    sqs = session.client("sqs", endpoint_url=moto_server.endpoint)
    create_table(dynamodb, os.environ["TABLE_NAME"])
    retry_url, dead_letter_url = create_queues(sqs, "conversions-test")
    put_secret(
        secretsmanager,
        os.environ["SECRET_ID"],
        {"trafficstars_key": TEST_KEY, "stripe_webhook_secret": TEST_STRIPE_SECRET, **TEST_SOURCE_SECRETS},
    )
    moto_server.calls.clear()
    moto_server.requests.clear()
    yield Aws(
        moto_server,
        dynamodb,
        secretsmanager,
        sqs,
        os.environ["TABLE_NAME"],
        os.environ["SECRET_ID"],
        retry_url,
        dead_letter_url,
    )
    moto_server.fault = None


@pytest.fixture
def sandbox(sandbox_server: TrafficStarsSandbox) -> Iterator[TrafficStarsSandbox]:
    sandbox_server.state.reset()
    yield sandbox_server
    sandbox_server.state.reset()


@pytest.fixture
def relay_env(
    aws: Aws, sandbox: TrafficStarsSandbox, ca_file: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[pytest.MonkeyPatch]:
    """The relay's environment pointed at moto and the sandbox; tests may monkeypatch more settings."""
    monkeypatch.setenv("TRAFFICSTARS_URL", sandbox.base_url)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca_file))
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws.server.endpoint)
    monkeypatch.setenv("RETRY_QUEUE_URL", aws.retry_url)
    monkeypatch.setenv("DEAD_LETTER_QUEUE_URL", aws.dead_letter_url)
    parameters.clear_caches()
    reset_runtime()
    yield monkeypatch
    parameters.clear_caches()
    reset_runtime()


@pytest.fixture
def fast_retries(relay_env: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """Retries due at once and a sweep without grace, so a test can drain the queue without waiting."""
    relay_env.setenv("RETRY_BASE_DELAY_SECONDS", "0.01")
    relay_env.setenv("RETRY_MAX_DELAY_SECONDS", "0.02")
    relay_env.setenv("SWEEP_GRACE_SECONDS", "0")
    reset_runtime()
    return relay_env


@pytest.fixture
def invoke(relay_env: pytest.MonkeyPatch) -> Invoker:
    """Calls the real Lambda handler with a payload-2.0 event; settings are (re)read on the first call."""
    return Invoker()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The fault suite's figures, in the test output."""
    if FAULT_FIGURES:
        terminalreporter.section("fault suite figures")
        for line in FAULT_FIGURES:
            terminalreporter.write_line(line)


def pytest_report_header() -> list[str]:
    return [f"postback-relay tests: moto server and TrafficStars sandbox on 127.0.0.1 ({Path.cwd().name})"]


def loads(text: str) -> Any:
    return json.loads(text)
