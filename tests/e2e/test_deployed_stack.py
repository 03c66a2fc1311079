"""End to end against a deployed stack, skipped unless one is named: AWS_SAM_STACK_NAME=<stack> (with the
operator's AWS credentials and region, as for `postback-relay`) and `make test` or `pytest tests/e2e`.

What it proves that nothing local can: the stack's API, functions, table and secret are wired as deployed. A
test-mode Stripe purchase is signed with the stack's own secret and POSTed to its API (`postback-relay sign`),
then found in its table (`postback-relay status`). Test mode is recorded and not forwarded (unless the stack
sets ForwardTestEvents), so TrafficStars is not called and no conversion is counted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.support.helpers import checkout_session, stripe_event
from tests.support.operator_env import OPERATOR_ENVIRONMENT

STACK = OPERATOR_ENVIRONMENT.get("AWS_SAM_STACK_NAME", "")
SRC = Path(__file__).resolve().parents[2] / "src"

pytestmark = pytest.mark.skipif(not STACK, reason="no deployed stack named (AWS_SAM_STACK_NAME)")


def _cli(*argv: str) -> Any:
    """`postback-relay … --stack STACK --json` with the operator's own environment; its JSON answer."""
    environment = {**OPERATOR_ENVIRONMENT, "PYTHONPATH": os.pathsep.join([str(SRC), *sys.path])}
    result = subprocess.run(
        [sys.executable, "-m", "postback_relay.ops.cli", *argv, "--stack", STACK, "--json"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode in (0, 1), result.stderr
    return json.loads(result.stdout)


def test_a_signed_test_mode_purchase_is_answered_and_recorded_by_the_stack(tmp_path: Path) -> None:
    purchase = f"pi_e2e_{uuid.uuid4().hex[:16]}"
    body = tmp_path / "checkout.session.completed.json"
    body.write_bytes(
        stripe_event("checkout.session.completed", checkout_session(payment_intent=purchase), livemode=False)
    )

    signed = _cli("sign", "stripe", str(body))
    assert signed["http_status"] == 200, signed
    assert signed["answer"]["conversion_id"] == f"stripe#{purchase}"

    found = _cli("status", f"stripe#{purchase}")
    [record] = found["conversions"]
    assert record["livemode"] is False and record["status"] in ("test_mode", "sent", "rejected", "retry_pending")


def test_a_tenant_added_by_the_cli_is_served_by_the_stack_without_a_deploy(tmp_path: Path) -> None:
    """`tenant add` against the stack, a test-mode purchase signed with the tenant's own secret to its route,
    the record under the tenant, then `tenant remove --purge`: the stack is not redeployed at any point."""
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    secrets = tmp_path / "secrets.json"
    secrets.write_text(json.dumps({"stripe_webhook_secret": f"whsec_e2e_{uuid.uuid4().hex}"}), encoding="utf-8")
    added = _cli("tenant", "add", name, "--source", "stripe", "--secrets-file", str(secrets))
    assert added["tenant"]["name"] == name, added
    try:
        purchase = f"pi_e2e_{uuid.uuid4().hex[:16]}"
        body = tmp_path / "checkout.session.completed.json"
        body.write_bytes(
            stripe_event("checkout.session.completed", checkout_session(payment_intent=purchase), livemode=False)
        )
        signed = _cli("sign", "stripe", str(body), "--tenant", name)
        assert signed["http_status"] == 200, signed
        assert signed["answer"]["conversion_id"] == f"{name}/stripe#{purchase}"
        [record] = _cli("status", purchase, "--tenant", name)["conversions"]
        assert record["tenant"] == name and record["livemode"] is False
    finally:
        _cli("tenant", "remove", name, "--purge")
