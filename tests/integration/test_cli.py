"""The operator CLI against real parts on loopback (issue 6): `--local` finds what `make run` starts (moto on
MOTO_PORT, the relay behind the API front on PORT, the HTTPS TrafficStars sandbox), and `--stack` reads a
CloudFormation stack's outputs and parameters, here from moto. Output is checked as an operator reads it."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
import trustme
from aws_lambda_powertools.utilities import parameters

import postback_relay
from postback_relay.aws.queue import RetryQueue
from postback_relay.ops import checks, cli
from postback_relay.platforms import ROUTED
from postback_relay.runtime import reset_runtime
from postback_relay_dev import defaults
from postback_relay_dev.front import LocalApi
from postback_relay_dev.resources import create_table, put_secret
from postback_relay_dev.sandbox import TrafficStarsSandbox
from postback_relay_dev.template import http_routes, load_template
from tests.support.aws import Aws
from tests.support.constants import TEST_KEY, TEST_STRIPE_SECRET
from tests.support.helpers import CLICK_ID, Invoker, Result, checkout_session, stripe_event

EVENTS = Path(__file__).resolve().parents[2] / "events"
CHECKOUT_EVENT = EVENTS / "stripe" / "checkout.session.completed.json"
CHECKOUT_CLICK = "c86b8a88b91228911e723b93c65a5900bb49bc99"  # the click id in that sample event
CHECKOUT_KEY = "stripe#pi_3QlocalDemo0001"


@dataclass
class LocalRun:
    base_url: str
    secret_arn: str
    aws: Aws
    relay_logs: io.StringIO
    relay_env: pytest.MonkeyPatch

    def put_secret(self, values: dict[str, Any]) -> None:
        put_secret(self.aws.secretsmanager, defaults.SECRET_ID, values)

    def record(self, pk: str) -> dict[str, Any] | None:
        from boto3.dynamodb.types import TypeDeserializer

        item = self.aws.dynamodb.get_item(TableName=defaults.TABLE_NAME, Key={"pk": {"S": pk}}).get("Item")
        return {k: TypeDeserializer().deserialize(v) for k, v in item.items()} if item else None

    def fast_retries(self) -> None:
        """Retries due at once (the relay's settings are read again on the next request)."""
        self.relay_env.setenv("RETRY_BASE_DELAY_SECONDS", "0.01")
        self.relay_env.setenv("RETRY_MAX_DELAY_SECONDS", "0.02")
        reset_runtime()

    def put_item(self, **fields: str) -> None:
        self.aws.dynamodb.put_item(TableName=defaults.TABLE_NAME, Item={k: {"S": v} for k, v in fields.items()})


@pytest.fixture
def local_run(aws: Aws, sandbox: TrafficStarsSandbox, relay_env: pytest.MonkeyPatch) -> Iterator[LocalRun]:
    """What `make run` starts, in this process: the relay on the local names behind the API front, moto and
    the sandbox. The CLI's --local finds them through MOTO_PORT and PORT, as it finds `make run`'s."""
    from postback_relay.handlers.http import logger

    create_table(aws.dynamodb, defaults.TABLE_NAME)
    secret_arn = put_secret(
        aws.secretsmanager,
        defaults.SECRET_ID,
        {"trafficstars_key": TEST_KEY, "stripe_webhook_secret": TEST_STRIPE_SECRET},
    )
    relay_env.setenv("TABLE_NAME", defaults.TABLE_NAME)
    relay_env.setenv("SECRET_ID", defaults.SECRET_ID)
    relay_env.setenv("POWERTOOLS_METRICS_DISABLED", "true")  # as `make run` does
    relay_env.setenv("MOTO_PORT", str(urlsplit(aws.server.endpoint).port))
    parameters.clear_caches()
    reset_runtime()
    api = LocalApi(http_routes(load_template())).start()
    relay_env.setenv("PORT", str(urlsplit(api.base_url).port))
    handler = logger.registered_handler
    assert isinstance(handler, logging.StreamHandler)
    relay_logs = io.StringIO()
    previous = handler.setStream(relay_logs)  # the relay's logs stay out of the CLI's output, as in two terminals
    yield LocalRun(api.base_url, secret_arn, aws, relay_logs, relay_env)
    handler.setStream(previous)
    api.stop()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> Result:
    capsys.readouterr()
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    for secret in (TEST_KEY, TEST_STRIPE_SECRET):
        assert secret not in out + err  # never printed, whatever the command
    return Result(code, out, err)


def purchase(payment_intent: str, click_id: str | None = CLICK_ID) -> bytes:
    return stripe_event(
        "checkout.session.completed", checkout_session(payment_intent=payment_intent, click_id=click_id)
    )


class TestHelp:
    @pytest.mark.parametrize("command", ["status", "recent", "send-test", "sign", "replay", "check"])
    def test_every_command_has_help_with_the_target_options(
        self, capsys: pytest.CaptureFixture[str], command: str
    ) -> None:
        with pytest.raises(SystemExit) as exit_:
            cli.main([command, "--help"])
        assert exit_.value.code == 0
        out = capsys.readouterr().out
        assert f"usage: postback-relay {command}" in out
        assert all(option in out for option in ("--stack", "--region", "--profile", "--local", "--json"))

    @pytest.mark.parametrize(
        "argv",
        [
            ["--local", "--json", "recent"],
            ["recent", "--local", "--json"],
            ["--local", "recent", "--json"],
            ["--json", "recent", "--local"],
        ],
    )
    def test_the_shared_options_work_before_or_after_the_command(self, argv: list[str]) -> None:
        args = cli.build_parser().parse_args(argv)
        assert (args.command, args.local, args.json, args.stack) == (cli.recent.run, True, True, None)

    def test_an_option_after_the_command_wins_over_the_same_before_it(self) -> None:
        argv = ["--stack", "before", "--region", "eu-west-1", "check", "--stack", "after"]
        args = cli.build_parser().parse_args(argv)
        assert (args.stack, args.region, args.local, args.json) == ("after", "eu-west-1", False, False)

    def test_the_overview_lists_every_command(self, capsys: pytest.CaptureFixture[str]) -> None:
        with pytest.raises(SystemExit):
            cli.main(["--help"])
        out = capsys.readouterr().out
        assert all(command in out for command in ("status", "recent", "send-test", "sign", "replay", "check"))

    def test_the_console_script_is_declared(self) -> None:
        import tomllib

        pyproject = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
        assert pyproject["project"]["scripts"]["postback-relay"] == "postback_relay.ops.cli:main"


class TestSign:
    def test_a_sample_event_is_signed_with_the_configured_secret_and_relayed(
        self, local_run: LocalRun, sandbox: TrafficStarsSandbox, capsys: pytest.CaptureFixture[str]
    ) -> None:
        local_run.put_secret({"trafficstars_key": TEST_KEY, "stripe_webhook_secret": "whsec_rotated_for_this_test"})
        result = run(capsys, "sign", "stripe", str(CHECKOUT_EVENT), "--local")
        assert result.code == 0, result.err
        assert f"POST {local_run.base_url}/webhooks/stripe (signed with stripe_webhook_secret)" in result.out
        assert '-> 200 {"status": "sent", "conversion_id": "stripe#pi_3QlocalDemo0001"}' in result.out
        assert "whsec_rotated_for_this_test" not in result.out
        [received] = sandbox.state.received
        assert received.click_id == CHECKOUT_CLICK and received.key_matched

    @pytest.mark.parametrize(
        ("source", "event", "method", "conversion_id"),
        [
            ("shopify", "shopify/orders-paid.json", "POST", "shopify#"),
            ("woocommerce", "woocommerce/order.updated-completed.json", "POST", "woocommerce#"),
            ("paddle", "paddle/transaction.completed.json", "POST", "paddle#"),
            ("lemonsqueezy", "lemonsqueezy/order_created.json", "POST", "lemonsqueezy#"),
            ("postback", "tracker/postback-purchase.json", "GET", "tracker#"),
        ],
    )
    def test_every_platforms_sample_is_signed_its_way_and_relayed(
        self,
        local_run: LocalRun,
        sandbox: TrafficStarsSandbox,
        capsys: pytest.CaptureFixture[str],
        source: str,
        event: str,
        method: str,
        conversion_id: str,
    ) -> None:
        secrets = {**defaults.secret_values(), "trafficstars_key": TEST_KEY}
        local_run.put_secret(secrets)
        route = "/postback" if source == "postback" else f"/webhooks/{source}"
        result = run(capsys, "sign", source, str(EVENTS / event), "--local")
        assert result.code == 0, result.out + result.err
        field = f"{source}_token" if source == "postback" else f"{source}_webhook_secret"
        assert f"\n{method} {local_run.base_url}{route} (signed with {field})\n-> 200 " in "\n" + result.out
        assert '"status": "sent"' in result.out and f'"conversion_id": "{conversion_id}' in result.out
        assert secrets[field] not in result.out + result.err
        [received] = sandbox.state.received
        assert received.key_matched

    def test_a_bare_webhook_body_is_wrapped_and_its_bytes_kept(
        self, local_run: LocalRun, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        body = tmp_path / "event.json"
        body.write_bytes(purchase("pi_bare"))
        result = run(capsys, "sign", "stripe", str(body), "--local", "--json")
        assert result.code == 0, result.err
        document = result.json()
        assert (document["http_status"], document["answer"]["status"]) == (200, "sent")
        assert document["answer"]["conversion_id"] == "stripe#pi_bare"

    def test_a_source_without_its_signing_secret_says_how_to_add_it(
        self, local_run: LocalRun, capsys: pytest.CaptureFixture[str]
    ) -> None:
        local_run.put_secret({"trafficstars_key": TEST_KEY})
        result = run(capsys, "sign", "stripe", str(CHECKOUT_EVENT), "--local")
        assert result.code == 2
        assert "has no stripe_webhook_secret" in result.err
        assert "fix: add stripe_webhook_secret" in result.err and "put-secret-value" in result.err

    def test_an_unknown_source_or_the_wrong_event_file_is_explained(
        self, local_run: LocalRun, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        result = run(capsys, "sign", "gumroad", str(CHECKOUT_EVENT), "--local")
        assert result.code == 2 and "no source named 'gumroad'" in result.err and "stripe" in result.err
        wrong = run(capsys, "sign", "paddle", str(CHECKOUT_EVENT), "--local")
        assert wrong.code == 2 and "is a 'stripe' event, not 'paddle'" in wrong.err
        assert "fix: postback-relay sign stripe" in wrong.err
        missing = run(capsys, "sign", "stripe", str(tmp_path / "nope.json"), "--local")
        assert missing.code == 2 and "cannot read" in missing.err

    def test_a_relay_that_does_not_answer_is_explained(
        self, local_run: LocalRun, capsys: pytest.CaptureFixture[str]
    ) -> None:
        result = run(capsys, "sign", "stripe", str(CHECKOUT_EVENT), "--local", "--url", "http://127.0.0.1:9")
        assert result.code == 2
        assert "nothing answered at http://127.0.0.1:9" in result.err and "fix:" in result.err

    def test_a_relay_whose_certificate_is_not_trusted_is_explained_as_that(
        self, local_run: LocalRun, sandbox: TrafficStarsSandbox, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        stranger = tmp_path / "another-ca.pem"
        trustme.CA().cert_pem.write_to_path(str(stranger))
        local_run.relay_env.setenv("REQUESTS_CA_BUNDLE", str(stranger))
        https_url = sandbox.base_url.split("/api/")[0]  # a real HTTPS server on loopback, another authority's
        result = run(capsys, "sign", "stripe", str(CHECKOUT_EVENT), "--local", "--url", https_url)
        assert result.code == 2
        assert f"certificate verification failed at {https_url}" in result.err
        assert "nothing answered" not in result.err and "REQUESTS_CA_BUNDLE" in result.err


class TestStatus:
    def test_by_click_id_shows_the_record_and_every_attempt_with_the_key_redacted(
        self, local_run: LocalRun, sandbox: TrafficStarsSandbox, capsys: pytest.CaptureFixture[str]
    ) -> None:
        sandbox.state.fault = lambda r: (503, "")
        local_run.fast_retries()
        run(capsys, "sign", "stripe", str(CHECKOUT_EVENT), "--local")
        sandbox.state.fault = None
        local_run.aws.drain()  # the retry worker sends it
        result = run(capsys, "status", CHECKOUT_CLICK, "--local")
        assert result.code == 0, result.err
        lines = result.out.splitlines()
        assert lines[0] == f"conversion {CHECKOUT_KEY}"
        assert any(line.split() == ["status", "sent"] for line in lines)
        assert any(line.split() == ["correlation_id", "evt_1QlocalCheckoutDone01"] for line in lines)
        assert "key=***" in result.out
        assert "attempts (2)" in result.out
        attempt_rows = [line.split() for line in lines[lines.index("attempts (2)") + 2 :]]
        assert [(row[0], row[3], row[4]) for row in attempt_rows] == [("1", "retryable", "503"), ("2", "ok", "200")]

    @pytest.mark.parametrize("reference", ["pi_3QlocalDemo0001", CHECKOUT_KEY])
    def test_by_purchase_id_or_key(
        self, local_run: LocalRun, capsys: pytest.CaptureFixture[str], reference: str
    ) -> None:
        run(capsys, "sign", "stripe", str(CHECKOUT_EVENT), "--local")
        result = run(capsys, "status", reference, "--local", "--json")
        assert result.code == 0
        [conversion] = result.json()["conversions"]
        assert (conversion["pk"], conversion["status"], conversion["attempts"]) == (CHECKOUT_KEY, "sent", 1)
        assert conversion["attempt_log"][0]["outcome"] == "ok"
        assert conversion["event_ids"] == ["evt_1QlocalCheckoutDone01"]

    def test_every_conversion_of_one_click_newest_first(
        self, local_run: LocalRun, invoke: Invoker, capsys: pytest.CaptureFixture[str]
    ) -> None:
        for payment_intent in ("pi_first", "pi_second"):
            assert invoke.stripe(purchase(payment_intent), TEST_STRIPE_SECRET).body["status"] == "sent"
        result = run(capsys, "status", CLICK_ID.upper(), "--local", "--json")
        assert [c["pk"] for c in result.json()["conversions"]] == ["stripe#pi_second", "stripe#pi_first"]

    def test_nothing_found_says_what_a_key_looks_like(
        self, local_run: LocalRun, capsys: pytest.CaptureFixture[str]
    ) -> None:
        result = run(capsys, "status", "cs_test_session", "--local")
        assert result.code == 1 and result.out == ""
        assert "no conversion found for purchase id or key 'cs_test_session'" in result.err
        assert "not the Checkout Session" in result.err


class TestRecent:
    @pytest.mark.parametrize("status", ["cancelled", "charged_back", "refunded", "retry_pending", "failed"])
    def test_every_status_a_record_can_have_is_a_filter(
        self, local_run: LocalRun, capsys: pytest.CaptureFixture[str], status: str
    ) -> None:
        local_run.put_item(pk="woocommerce#1:wc_order_k", status=status, received_at="2099-01-01T00:00:00.000+00:00")
        result = run(capsys, "recent", "--local", "--status", status, "--since", "2098-12-31", "--json")
        assert result.code == 0, result.err
        assert [c["status"] for c in result.json()["conversions"]] == [status]

    def test_a_table_newest_first_with_filters(
        self,
        local_run: LocalRun,
        invoke: Invoker,
        sandbox: TrafficStarsSandbox,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        invoke.stripe(purchase("pi_a"), TEST_STRIPE_SECRET)
        invoke.stripe(purchase("pi_b", click_id=None), TEST_STRIPE_SECRET)
        sandbox.state.fault = lambda r: (400, json.dumps({"error": {"msg": "invalid code"}}))
        invoke.stripe(purchase("pi_c"), TEST_STRIPE_SECRET)
        result = run(capsys, "recent", "--local")
        assert result.code == 0
        lines = result.out.splitlines()
        assert lines[0].split()[:4] == ["RECEIVED", "(UTC)", "SOURCE", "STATUS"]
        rows = [line.split() for line in lines[1:4]]
        assert [(row[3], row[4]) for row in rows] == [("rejected", "pi_c"), ("no_click_id", "pi_b"), ("sent", "pi_a")]
        assert "invalid code" in lines[1] and "49.00 USD" in lines[3]
        assert "3 conversion(s) received since" in result.out and "next page" not in result.out
        only = run(capsys, "recent", "--local", "--status", "sent,no_click_id", "--source", "stripe", "--json")
        assert [c["purchase_id"] for c in only.json()["conversions"]] == ["pi_b", "pi_a"]
        assert only.json()["next_before"] is None

    def test_pages_follow_the_printed_command_and_lose_nothing_on_equal_times(
        self, local_run: LocalRun, capsys: pytest.CaptureFixture[str]
    ) -> None:
        same = "2030-01-01T00:00:00.000+00:00"
        for name in ("pi_x", "pi_y", "pi_z"):
            local_run.put_item(pk=f"stripe#{name}", purchase_id=name, source="stripe", status="sent", received_at=same)
        seen: list[str] = []
        argv = ["recent", "--local", "--limit", "1", "--since", "2029-12-31"]
        for _ in range(4):
            result = run(capsys, *argv)
            seen += [line.split()[4] for line in result.out.splitlines()[1:] if line.startswith("2030")]
            follow = [line for line in result.out.splitlines() if line.startswith("next page: ")]
            if not follow:
                break
            command = follow[0].removeprefix("next page: postback-relay ").replace("'", "").split()
            argv = command
        assert seen == ["pi_z", "pi_y", "pi_x"]

    def test_since_bounds_the_window(self, local_run: LocalRun, capsys: pytest.CaptureFixture[str]) -> None:
        local_run.put_item(
            pk="stripe#pi_old",
            purchase_id="pi_old",
            source="stripe",
            status="sent",
            received_at="2020-01-01T00:00:00.000+00:00",
        )
        assert run(capsys, "recent", "--local", "--json").json()["conversions"] == []
        since = run(capsys, "recent", "--local", "--since", "2019-12-31", "--json").json()
        assert [c["pk"] for c in since["conversions"]] == ["stripe#pi_old"]

    @pytest.mark.parametrize(
        ("argv", "message"),
        [
            (["--status", "snet"], "--status snet: not a known value"),
            (["--source", "paypal"], "--source paypal: not a known value"),
            (["--since", "yesterday"], "--since 'yesterday' is neither a duration nor a date"),
        ],
    )
    def test_bad_options_are_explained(
        self, local_run: LocalRun, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
    ) -> None:
        result = run(capsys, "recent", "--local", *argv)
        assert result.code == 2 and message in result.err and "fix: use" in result.err


class TestSendTest:
    def test_one_postback_through_the_relays_client_with_the_configured_key(
        self, local_run: LocalRun, sandbox: TrafficStarsSandbox, capsys: pytest.CaptureFixture[str]
    ) -> None:
        result = run(capsys, "send-test", CLICK_ID, "--value", "12.5", "--local")
        assert result.code == 0, result.err
        lines = result.out.splitlines()
        assert lines[0].startswith(f"GET {sandbox.base_url}/{CLICK_ID}?value=12.50&lead_code=")
        assert lines[0].endswith("&key=***")
        assert lines[1].startswith("-> 200 ok")
        assert "TrafficStars accepted it" in lines[2]
        [received] = sandbox.state.received
        assert received.key_matched and received.params["value"] == "12.50"

    def test_the_same_click_gets_the_same_lead_code(
        self, local_run: LocalRun, sandbox: TrafficStarsSandbox, capsys: pytest.CaptureFixture[str]
    ) -> None:
        run(capsys, "send-test", CLICK_ID, "--local")
        run(capsys, "send-test", CLICK_ID, "--local")
        assert len({r.params["lead_code"] for r in sandbox.state.received}) == 1

    @pytest.mark.parametrize(
        ("setup", "reason", "meaning"),
        [
            ("wrong_key", "invalid_key", "does not know this key"),
            ("bad_click", "invalid_code", "does not know this click id"),
            ("down", "http_503", "did not confirm it"),
        ],
    )
    def test_what_trafficstars_said_and_what_it_means(
        self,
        local_run: LocalRun,
        sandbox: TrafficStarsSandbox,
        capsys: pytest.CaptureFixture[str],
        setup: str,
        reason: str,
        meaning: str,
    ) -> None:
        click = "not-a-click" if setup == "bad_click" else CLICK_ID
        if setup == "wrong_key":
            sandbox.state.key = "the-key-trafficstars-has-now"
        if setup == "down":
            sandbox.state.fault = lambda r: (503, "")
        result = run(capsys, "send-test", click, "--local", "--json")
        assert result.code == 1
        answer = result.json()
        assert (answer["accepted"], answer["reason"]) == (False, reason)
        assert meaning in answer["meaning"] and answer["url"].endswith("key=***")

    def test_a_certificate_no_trusted_authority_vouches_for_is_not_called_a_network_problem(
        self, local_run: LocalRun, sandbox: TrafficStarsSandbox, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        stranger = tmp_path / "another-ca.pem"
        trustme.CA().cert_pem.write_to_path(str(stranger))
        local_run.relay_env.setenv("REQUESTS_CA_BUNDLE", str(stranger))  # the sandbox's authority is not this one
        result = run(capsys, "send-test", CLICK_ID, "--local", "--json")
        answer = result.json()
        assert result.code == 1 and (answer["accepted"], answer["reason"]) == (False, "certificate_error")
        assert answer["message"].startswith("certificate verification failed")
        assert "failed verification" in answer["meaning"] and "network" not in answer["meaning"]
        assert sandbox.state.received == []

    def test_a_missing_key_is_explained(self, local_run: LocalRun, capsys: pytest.CaptureFixture[str]) -> None:
        local_run.put_secret({"stripe_webhook_secret": TEST_STRIPE_SECRET})
        result = run(capsys, "send-test", CLICK_ID, "--local")
        assert result.code == 2
        assert "has no trafficstars_key" in result.err and "put-secret-value" in result.err

    def test_a_value_must_be_a_positive_number(self, capsys: pytest.CaptureFixture[str]) -> None:
        with pytest.raises(SystemExit) as exit_:
            cli.main(["send-test", CLICK_ID, "--value", "abc", "--local"])
        assert exit_.value.code == 2 and "'abc' is not a number" in capsys.readouterr().err


@pytest.fixture
def failed(
    local_run: LocalRun, aws: Aws, sandbox: TrafficStarsSandbox, fast_retries: pytest.MonkeyPatch, invoke: Invoker
) -> list[str]:
    """Two conversions that exhausted a one-second retry window while TrafficStars was down: failed, and
    parked in the dead-letter queue by the retry worker."""
    fast_retries.setenv("RETRY_WINDOW_SECONDS", "1")
    reset_runtime()
    sandbox.state.fault = lambda r: (503, "")
    ids = [invoke.stripe(purchase(f"pi_replay_{n}"), TEST_STRIPE_SECRET).body["conversion_id"] for n in range(2)]
    time.sleep(1.1)
    aws.drain()
    assert [(local_run.record(pk) or {}).get("status") for pk in ids] == ["failed", "failed"]
    sandbox.state.fault = None
    sandbox.state.received.clear()
    fast_retries.setenv("RETRY_WINDOW_SECONDS", "259200")
    reset_runtime()
    return ids


class TestReplay:
    def test_a_dry_run_prints_each_postback_with_the_key_redacted_and_changes_nothing(
        self,
        failed: list[str],
        local_run: LocalRun,
        aws: Aws,
        sandbox: TrafficStarsSandbox,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        result = run(capsys, "replay", "dlq", "--local", "--dry-run")
        assert result.code == 0, result.err
        assert result.out.startswith("would re-send 2 conversion(s) in the local run")
        for pk in failed:
            line = next(line for line in result.out.splitlines() if pk in line)
            assert f"/{CLICK_ID}?" in line and line.endswith("key=***")
        assert "examined 2" in result.err  # progress
        aws.drain()
        assert sandbox.state.received == []
        assert [(local_run.record(pk) or {}).get("status") for pk in failed] == ["failed", "failed"]
        assert len(aws.queued(aws.dead_letter_url)) == 2

    def test_the_dead_letter_queue_replayed_twice_sends_each_conversion_once(
        self,
        failed: list[str],
        local_run: LocalRun,
        aws: Aws,
        sandbox: TrafficStarsSandbox,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        first = run(capsys, "replay", "dlq", "--local", "--json")
        assert first.code == 0 and sorted(first.json()["queued"]) == sorted(failed)
        aws.drain()
        assert [(local_run.record(pk) or {}).get("status") for pk in failed] == ["sent", "sent"]
        for pk in failed:  # parked again by mistake: a second replay must not send them again
            RetryQueue(aws.sqs, aws.retry_url, aws.dead_letter_url).dead_letter(pk, "again", 1)
        second = run(capsys, "replay", "dlq", "--local")
        assert second.code == 0 and second.out.startswith("re-queued 0 conversion(s)")
        assert f"  {failed[0]}  status is sent" in second.out
        aws.drain()
        assert len(sandbox.state.accepted()) == 2

    def test_records_are_chosen_by_status_since_and_click_id(
        self,
        failed: list[str],
        local_run: LocalRun,
        aws: Aws,
        sandbox: TrafficStarsSandbox,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        other_click = run(capsys, "replay", "records", "--local", "--click-id", "0" * 40, "--json")
        assert other_click.json()["queued"] == []
        chosen = run(
            capsys, "replay", "records", "--local", "--status", "failed", "--since", "1h", "--click-id", CLICK_ID
        )
        assert chosen.code == 0 and "re-queued 2 conversion(s)" in chosen.out
        assert "the retry worker sends them" in chosen.out
        aws.drain()
        assert sorted(r.params["lead_code"] for r in sandbox.state.accepted()) == sorted(
            str((local_run.record(pk) or {})["lead_code"]) for pk in failed
        )

    def test_bad_options_are_explained(self, local_run: LocalRun, capsys: pytest.CaptureFixture[str]) -> None:
        sent = run(capsys, "replay", "records", "--local", "--status", "sent")
        assert sent.code == 2 and "--status sent: not a known value" in sent.err and "failed" in sent.err
        mixed = run(capsys, "replay", "dlq", "--local", "--status", "failed")
        assert mixed.code == 2 and "use them with `replay records`" in mixed.err
        since = run(capsys, "replay", "records", "--local", "--since", "yesterday-ish")
        assert since.code == 2 and "neither a duration nor a date" in since.err


class TestCheckLocal:
    def test_a_healthy_local_run_passes(self, local_run: LocalRun, capsys: pytest.CaptureFixture[str]) -> None:
        local_run.put_secret({**defaults.secret_values(), "trafficstars_key": TEST_KEY})  # every source set up
        result = run(capsys, "check", "--local")
        assert result.code == 0, result.out
        assert result.out.splitlines()[-1] == "all good"
        document = run(capsys, "--local", "--json", "check").json()  # the options before the command work too
        levels = {c["name"]: c["level"] for c in document["checks"]}
        routes = list(ROUTED)
        assert levels == {
            "secret": "OK",
            **{f"source {name}": "OK" for name in routes},
            "table": "OK",
            "queues": "OK",
            "dead-letters": "OK",
            "trafficstars": "OK",
            "health": "OK",
            "alarms": "OK",
        }
        [queues] = [c for c in document["checks"] if c["name"] == "queues"]
        assert queues["detail"] == "retry queue reachable: 0 waiting, 0 delayed (backoff), 0 in flight"

    def test_sources_not_set_up_only_warn_and_say_how(
        self, local_run: LocalRun, capsys: pytest.CaptureFixture[str]
    ) -> None:
        result = run(capsys, "check", "--local")
        assert result.code == 0
        assert "  OK    source stripe" in result.out
        assert "  WARN  source shopify         shopify_webhook_secret is not in the secret" in result.out
        assert "fix: if you use shopify, add shopify_webhook_secret" in result.out
        assert "WARN  source postback        postback_token is not in the secret" in result.out
        assert result.out.splitlines()[-1] == f"{len(ROUTED) - 1} to look at (warnings only)"  # all but stripe

    def test_conversions_in_the_dead_letter_queue_warn_with_the_replay_command(
        self, local_run: LocalRun, aws: Aws, capsys: pytest.CaptureFixture[str]
    ) -> None:
        RetryQueue(aws.sqs, aws.retry_url, aws.dead_letter_url).dead_letter("stripe#pi_parked", "gave up", 40)
        document = run(capsys, "check", "--local", "--json").json()
        [parked] = [c for c in document["checks"] if c["name"] == "dead-letters"]
        assert parked["level"] == "WARN" and parked["detail"].startswith("1 conversion(s) exhausted their retries")
        assert "postback-relay replay dlq" in parked["fix"]

    def test_a_missing_key_fails_with_the_fix(self, local_run: LocalRun, capsys: pytest.CaptureFixture[str]) -> None:
        local_run.put_secret({"stripe_webhook_secret": TEST_STRIPE_SECRET})
        result = run(capsys, "check", "--local", "--json")
        assert result.code == 1
        document = result.json()
        assert document["ok"] is False
        [secret] = [c for c in document["checks"] if c["name"] == "secret"]
        assert secret["level"] == "FAIL" and "put-secret-value" in secret["fix"]

    def test_a_source_without_its_secret_warns_or_fails_when_required(
        self, local_run: LocalRun, capsys: pytest.CaptureFixture[str]
    ) -> None:
        local_run.put_secret({"trafficstars_key": TEST_KEY, "stripe_webhook_secret": TEST_STRIPE_SECRET})
        document = run(capsys, "check", "--local", "--json").json()
        assert document["ok"] is True
        local_run.put_secret({"trafficstars_key": TEST_KEY})
        document = run(capsys, "check", "--local", "--json", "--source", "stripe").json()
        levels = {c["name"]: c["level"] for c in document["checks"]}
        assert levels["source stripe"] == "FAIL" and levels["sources"] == "FAIL"

    def test_nothing_running_is_explained(
        self, relay_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        relay_env.setenv("MOTO_PORT", "9")
        result = run(capsys, "check", "--local")
        assert result.code == 2
        assert "nothing answers at the local run (moto at http://127.0.0.1:9)" in result.err
        assert "make run" in result.err


class TestVerdicts:
    """The judgements `check` makes, on the answers AWS gives (pending subscriptions, silent alarms)."""

    def test_the_trafficstars_url_must_be_https_outside_the_local_run(self) -> None:
        assert checks.trafficstars_url_check("https://tsyndicate.com/api/v1/cpa/action", False).level == "OK"
        assert checks.trafficstars_url_check("http://tsyndicate.com/api/v1/cpa/action", False).level == "FAIL"
        assert checks.trafficstars_url_check("http://127.0.0.1:8443/api/v1/cpa/action", False).level == "FAIL"
        assert checks.trafficstars_url_check("http://127.0.0.1:8443/api/v1/cpa/action", True).level == "OK"

    def test_a_stack_deployed_before_the_retry_queue_fails_the_queue_check(self) -> None:
        from postback_relay.ops.deployment import Deployment

        old = Deployment("stack relay-old in us-east-1", None, "us-east-1", "t", "s", "https://x", ("stripe",))
        [queues] = checks.queue_checks(old)
        assert queues.level == "FAIL" and "predates the retry queue" in queues.detail
        assert queues.fix == "deploy this version (sam build && sam deploy)"

    def test_subscriptions(self) -> None:
        topic = "arn:aws:sns:us-east-1:123456789012:alarms"
        confirmed = {"SubscriptionArn": f"{topic}:1", "Protocol": "email", "Endpoint": "ops@example.com"}
        pending = {"SubscriptionArn": "PendingConfirmation", "Protocol": "email", "Endpoint": "new@example.com"}
        assert checks.judge_subscriptions([confirmed, pending], topic).level == "OK"
        waiting = checks.judge_subscriptions([pending], topic)
        assert waiting.level == "FAIL" and "new@example.com" in waiting.detail and "AWS Notifications" in waiting.fix
        nobody = checks.judge_subscriptions([], topic)
        assert nobody.level == "FAIL" and "AlarmEmail=" in nobody.fix

    def test_alarms(self) -> None:
        topic = "arn:aws:sns:us-east-1:123456789012:alarms"
        quiet = {"AlarmName": "s-invalid-key", "AlarmActions": [topic], "StateValue": "OK"}
        firing = {"AlarmName": "s-api-5xx", "AlarmActions": [topic], "StateValue": "ALARM"}
        silent = {"AlarmName": "s-old", "AlarmActions": [], "StateValue": "OK"}
        assert checks.judge_alarms([quiet], topic).level == "OK"
        assert checks.judge_alarms([quiet, firing], topic).level == "WARN"
        assert "s-api-5xx" in checks.judge_alarms([quiet, firing], topic).detail
        assert checks.judge_alarms([quiet, silent], topic).level == "FAIL"
        assert checks.judge_alarms([], topic).level == "FAIL"


@dataclass
class Stack:
    name: str
    topic_arn: str


@pytest.fixture
def stack(local_run: LocalRun, aws: Aws, sandbox: TrafficStarsSandbox) -> Stack:
    """A deployed stack as the CLI sees one, in moto: outputs and parameters naming the local run's table,
    secret and API, an alarm topic with a subscriber, and alarms named after the stack."""
    session = boto3.session.Session()
    sns = session.client("sns", endpoint_url=aws.server.endpoint)
    topic = sns.create_topic(Name="relay-prod-AlarmTopic")["TopicArn"]
    sns.subscribe(TopicArn=topic, Protocol="email", Endpoint="ops@example.com")
    cloudwatch = session.client("cloudwatch", endpoint_url=aws.server.endpoint)
    for alarm in ("invalid-key", "api-5xx"):
        cloudwatch.put_metric_alarm(
            AlarmName=f"relay-prod-{alarm}",
            Namespace="PostbackRelay",
            MetricName="PostbackRejected",
            Statistic="Sum",
            Period=300,
            EvaluationPeriods=1,
            Threshold=1,
            ComparisonOperator="GreaterThanOrEqualToThreshold",
            AlarmActions=[topic],
        )
    given = {
        "SecretArn": local_run.secret_arn,
        "TrafficStarsUrl": sandbox.base_url,
        "TableName": defaults.TABLE_NAME,
        "TopicArn": topic,
        "ApiBaseUrl": local_run.base_url,
        "RetryQueueUrl": aws.retry_url,
        "DeadLetterQueueUrl": aws.dead_letter_url,
    }
    template = {
        "Parameters": {name: {"Type": "String"} for name in given},
        "Resources": {"Placeholder": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {
            "ConversionsTableName": {"Value": {"Ref": "TableName"}},
            "AlarmTopicArn": {"Value": {"Ref": "TopicArn"}},
            "ApiBaseUrl": {"Value": {"Ref": "ApiBaseUrl"}},
            "StripeWebhookUrl": {"Value": {"Fn::Sub": "${ApiBaseUrl}/webhooks/stripe"}},
            "RetryQueueUrl": {"Value": {"Ref": "RetryQueueUrl"}},
            "DeadLetterQueueUrl": {"Value": {"Ref": "DeadLetterQueueUrl"}},
        },
    }
    session.client("cloudformation", endpoint_url=aws.server.endpoint).create_stack(
        StackName="relay-prod",
        TemplateBody=json.dumps(template),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in given.items()],
    )
    return Stack("relay-prod", topic)


class TestDeployedStack:
    """--stack: everything is found from the stack's outputs and parameters (moto answers for AWS here)."""

    def test_check_reads_the_stack_secret_table_url_and_alarms(
        self, stack: Stack, capsys: pytest.CaptureFixture[str]
    ) -> None:
        result = run(capsys, "check", "--stack", stack.name, "--region", "us-east-1", "--json")
        document = result.json()
        assert document["target"] == "stack relay-prod in us-east-1"
        levels = {c["name"]: c["level"] for c in document["checks"]}
        assert levels == {
            "secret": "OK",
            "source stripe": "OK",
            "table": "OK",
            "queues": "OK",
            "dead-letters": "OK",
            "trafficstars": "OK",
            "settings": "OK",
            "health": "OK",
            "alarm topic": "OK",
            "alarms": "OK",
        }, document
        assert result.code == 0

    def test_sign_posts_to_the_stacks_api_and_status_reads_its_table(
        self, stack: Stack, sandbox: TrafficStarsSandbox, capsys: pytest.CaptureFixture[str]
    ) -> None:
        signed = run(capsys, "sign", "stripe", str(CHECKOUT_EVENT), "--stack", stack.name)
        assert signed.code == 0 and '"status": "sent"' in signed.out
        status = run(capsys, "status", CHECKOUT_CLICK, "--stack", stack.name, "--json")
        assert [c["status"] for c in status.json()["conversions"]] == ["sent"]

    def test_send_test_asks_before_sending_to_a_real_trafficstars(
        self, stack: Stack, sandbox: TrafficStarsSandbox, capsys: pytest.CaptureFixture[str]
    ) -> None:
        refused = run(capsys, "send-test", CLICK_ID, "--stack", stack.name)
        assert refused.code == 2 and "add --yes" in refused.err
        assert sandbox.state.received == []
        sent = run(capsys, "send-test", CLICK_ID, "--stack", stack.name, "--yes")
        assert sent.code == 0 and len(sandbox.state.received) == 1

    def test_a_wrong_stack_name_is_explained(self, local_run: LocalRun, capsys: pytest.CaptureFixture[str]) -> None:
        result = run(capsys, "recent", "--stack", "relay-typo", "--region", "us-east-1")
        assert result.code == 2
        assert "there is no stack named 'relay-typo' in us-east-1" in result.err
        assert "samconfig.toml" in result.err and "list-stacks" in result.err

    def test_the_default_stack_is_samconfigs(
        self, local_run: LocalRun, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.delenv("POSTBACK_RELAY_STACK", raising=False)
        result = run(capsys, "recent")  # the repository's samconfig.toml names postback-relay
        assert "there is no stack named 'postback-relay'" in result.err
        monkeypatch.setenv("POSTBACK_RELAY_STACK", "from-env")
        assert "there is no stack named 'from-env'" in run(capsys, "recent").err

    def test_no_credentials_is_explained(
        self, local_run: LocalRun, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
            monkeypatch.delenv(name, raising=False)
        for name in ("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
        monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
        monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        result = run(capsys, "check", "--stack", "relay-prod", "--region", "us-east-1")
        assert result.code == 2
        assert "no AWS credentials were found" in result.err and "aws sso login" in result.err

    def test_an_unknown_profile_is_explained(self, local_run: LocalRun, capsys: pytest.CaptureFixture[str]) -> None:
        result = run(capsys, "check", "--profile", "no-such-profile", "--region", "us-east-1")
        assert result.code == 2 and "no AWS profile named 'no-such-profile'" in result.err

    def test_a_stack_that_is_not_a_relay_is_explained(
        self, local_run: LocalRun, aws: Aws, capsys: pytest.CaptureFixture[str]
    ) -> None:
        template = {"Resources": {"Placeholder": {"Type": "AWS::SNS::Topic"}}}
        boto3.client("cloudformation", endpoint_url=aws.server.endpoint).create_stack(
            StackName="something-else", TemplateBody=json.dumps(template)
        )
        result = run(capsys, "status", "pi_1", "--stack", "something-else")
        assert result.code == 2 and "is not a postback-relay stack" in result.err


class TestTargets:
    def test_the_local_run_uses_make_runs_ports_and_sandbox_authority(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        from postback_relay.ops.deployment import local_deployment

        monkeypatch.delenv("TRAFFICSTARS_URL", raising=False)
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")  # a system bundle
        monkeypatch.setenv("LOCAL_STATE_DIR", str(tmp_path))
        monkeypatch.setenv("MOTO_PORT", "5205")
        monkeypatch.setenv("SANDBOX_PORT", "8643")
        monkeypatch.setenv("PORT", "3200")
        (tmp_path / "tls").mkdir()
        (tmp_path / "tls" / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
        target = local_deployment()
        assert target.endpoint_url == "http://127.0.0.1:5205" and target.api_base_url == "http://127.0.0.1:3200"
        assert target.trafficstars_url == "https://127.0.0.1:8643/api/v1/cpa/action"
        assert target.ca_bundle == str(tmp_path / "tls" / "ca.pem")  # the sandbox's, not the system's
        assert (target.table_name, target.secret_id, target.sources) == (
            defaults.TABLE_NAME,
            defaults.SECRET_ID,
            tuple(ROUTED),
        )

    def test_the_default_stack_name_comes_from_samconfig(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
        from postback_relay.ops.deployment import default_stack_name

        monkeypatch.delenv("POSTBACK_RELAY_STACK", raising=False)
        assert default_stack_name(tmp_path) == "postback-relay"
        (tmp_path / "samconfig.toml").write_text(
            'version = 0.1\n[default.global.parameters]\nstack_name = "shop-relay"\n'
            '[default.deploy.parameters]\nregion = "eu-west-1"\n'
        )
        assert default_stack_name(tmp_path) == "shop-relay"

    @pytest.mark.parametrize(
        ("text", "seconds_ago"), [("30m", 1800), ("24h", 86400), ("7d", 7 * 86400), ("2w", 14 * 86400)]
    )
    def test_durations(self, text: str, seconds_ago: int) -> None:
        from postback_relay.aws.reads import parse_since

        assert parse_since(text, 1_000_000_000.0) == 1_000_000_000.0 - seconds_ago

    def test_dates_are_utc_unless_they_say_otherwise(self) -> None:
        from postback_relay.aws.reads import parse_since

        assert parse_since("2026-01-01", 0) == 1767225600.0
        assert parse_since("2026-01-01T01:00:00+01:00", 0) == 1767225600.0
        assert parse_since("last tuesday", 0) is None


def _installed_copy(tmp_path: Path) -> Path:
    """The package as `pip install .` leaves it: src/postback_relay alone, no template.yaml two levels up."""
    import shutil

    site = tmp_path / "site-packages"
    package = Path(postback_relay.__file__).parent
    shutil.copytree(package, site / "postback_relay", ignore=shutil.ignore_patterns("__pycache__"))
    return site


def _cli_process(site: Path, cwd: Path, argv: list[str], **kwargs: Any) -> Any:
    """The console script in a fresh interpreter that imports the copy and has no PyYAML (`pip install .`
    does not install the dev requirements)."""
    import os
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['yaml'] = None\n"  # `import yaml` now fails as it does without PyYAML
        "from postback_relay.ops.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    return subprocess.run([sys.executable, "-c", code, *argv], cwd=cwd, env=env, check=False, **kwargs)


class TestInstalledPackage:
    """The CLI as a user who ran `pip install .` gets it, in a subprocess against the local run."""

    def test_local_mode_needs_neither_the_template_nor_pyyaml(self, local_run: LocalRun, tmp_path: Path) -> None:
        site = _installed_copy(tmp_path)
        result = _cli_process(site, tmp_path, ["check", "--local", "--json"], capture_output=True, text=True)
        assert "yaml" not in result.stderr and "Traceback" not in result.stderr, result.stderr
        document = json.loads(result.stdout)
        assert document["target"].startswith("the local run")
        routed = {c["name"].removeprefix("source ") for c in document["checks"] if c["name"].startswith("source ")}
        sources = [
            r.path
            for r in http_routes(load_template())
            if (r.path.startswith("/webhooks/") or r.path == "/postback") and "{" not in r.path
        ]
        assert routed == {path.rsplit("/", 1)[-1] for path in sources}  # not /health, not /click.js

    def test_a_reader_that_goes_away_ends_the_command_quietly(self, local_run: LocalRun, tmp_path: Path) -> None:
        import os

        for number in range(200):  # more than a pipe holds is not needed: the reader is gone before the first write
            local_run.put_item(pk=f"stripe#pi_{number}", purchase_id=f"pi_{number}", source="stripe", status="sent")
        reader, writer = os.pipe()
        os.close(reader)  # `| head` that has already read its lines and exited
        try:
            result = _cli_process(
                _installed_copy(tmp_path),
                tmp_path,
                ["recent", "--local", "--since", "7d"],
                stdout=writer,
                stderr=-1,
                text=True,
            )
        finally:
            os.close(writer)
        assert result.stderr == ""
        assert result.returncode == 141


def test_a_stack_that_made_its_own_secret_is_read_through_its_secret_arn_output(
    local_run: LocalRun, aws: Aws, capsys: pytest.CaptureFixture[str]
) -> None:
    """A stack deployed with SecretArn empty (the default): the secret is the one the SecretArn output names."""
    local_run.put_secret({"trafficstars_key": "PLACEHOLDER: paste the S2S key from TrafficStars"})
    given = {"SecretArn": "", "MadeSecret": local_run.secret_arn, "TableName": defaults.TABLE_NAME}
    template = {
        "Parameters": {name: {"Type": "String"} for name in given},
        "Resources": {"Placeholder": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {
            "ConversionsTableName": {"Value": {"Ref": "TableName"}},
            "SecretArn": {"Value": {"Ref": "MadeSecret"}},
        },
    }
    boto3.session.Session().client("cloudformation", endpoint_url=aws.server.endpoint).create_stack(
        StackName="relay-new",
        TemplateBody=json.dumps(template),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in given.items()],
    )
    document = run(capsys, "check", "--stack", "relay-new", "--region", "us-east-1", "--json").json()
    [secret] = [c for c in document["checks"] if c["name"] == "secret"]
    assert secret["level"] == "FAIL" and "still the stack's placeholder" in secret["detail"]
