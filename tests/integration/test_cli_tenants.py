"""The operator's tenant commands against moto (issue 14): `tenant add|show|list|set|remove`, `check --tenant`
and `recent --tenant`, on the local run's names (--local). What they write is read back from the table and
Secrets Manager as the relay reads it, and the relay itself is given the tenant's webhooks, so a command that
writes what the relay cannot serve fails here. No secret value ever appears in a command's output."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from postback_relay.aws.tenants import TenantDirectory
from postback_relay.core.tenant import TenantConfig
from postback_relay.ops import cli
from postback_relay.ops.cli import tenant as tenant_command
from postback_relay.ops.deployment import OperatorError, local_deployment
from postback_relay.runtime import reset_runtime
from postback_relay_dev import defaults
from postback_relay_dev.resources import create_table
from tests.support.aws import Aws
from tests.support.constants import TEST_KEY, TEST_STRIPE_SECRET
from tests.support.helpers import Invoker, Result, checkout_session, stripe_event, stripe_signature

PREFIX = defaults.TENANT_SECRET_PREFIX
API = "http://127.0.0.1:3999"  # the local run's API front, as --local derives it from PORT
ACME_KEY = "acme-trafficstars-canary-91c2"
ACME_STRIPE = "whsec_acme_canary_5d1e"
ACME_TOKEN = "acme-token-canary-0b7f"
CANARIES = [TEST_KEY, TEST_STRIPE_SECRET, ACME_KEY, ACME_STRIPE, ACME_TOKEN]


@dataclass
class Local:
    """The local run's table and secrets in moto, as `make run` names them, and the relay pointed at them."""

    aws: Aws
    tmp_path: Path
    canaries: list[str] = field(default_factory=lambda: list(CANARIES))

    def config(self, name: str) -> TenantConfig | None:
        return TenantDirectory(self.aws.dynamodb, defaults.TABLE_NAME, 0).get(name, force=True)

    def item(self, pk: str) -> dict[str, Any] | None:
        from boto3.dynamodb.types import TypeDeserializer

        raw = self.aws.dynamodb.get_item(TableName=defaults.TABLE_NAME, Key={"pk": {"S": pk}}).get("Item")
        return {k: TypeDeserializer().deserialize(v) for k, v in raw.items()} if raw else None

    def secret(self, name: str) -> dict[str, Any]:
        raw = self.aws.secretsmanager.get_secret_value(SecretId=PREFIX + name)["SecretString"]
        document: dict[str, Any] = json.loads(raw)
        return document

    def paste(self, name: str, **values: str) -> None:
        """What the operator does after `tenant add`: the real values into the tenant's secret."""
        self.aws.secretsmanager.put_secret_value(
            SecretId=PREFIX + name, SecretString=json.dumps({**self.secret(name), **values})
        )

    def tenant_secrets(self) -> list[str]:
        listed = self.aws.secretsmanager.list_secrets(IncludePlannedDeletion=True)["SecretList"]
        return sorted(s["Name"] for s in listed if s["Name"].startswith(PREFIX))

    def secrets_file(self, values: dict[str, Any]) -> str:
        path = self.tmp_path / "secrets.json"
        path.write_text(json.dumps(values), encoding="utf-8")
        return str(path)

    def put_conversion(self, pk: str, **fields: Any) -> None:
        item: dict[str, Any] = {"pk": {"S": pk}}
        for name, value in fields.items():
            item[name] = {"N": str(value)} if isinstance(value, int | float) else {"S": str(value)}
        self.aws.dynamodb.put_item(TableName=defaults.TABLE_NAME, Item=item)


@pytest.fixture
def local(aws: Aws, relay_env: pytest.MonkeyPatch, tmp_path: Path) -> Local:
    """--local finds moto through MOTO_PORT; the relay reads the same table and tenant secret prefix, so a
    tenant the CLI adds is one the relay serves."""
    create_table(aws.dynamodb, defaults.TABLE_NAME)
    relay_env.setenv("MOTO_PORT", str(urlsplit(aws.server.endpoint).port))
    relay_env.setenv("PORT", "3999")
    relay_env.setenv("TABLE_NAME", defaults.TABLE_NAME)
    relay_env.setenv("TENANT_SECRET_PREFIX", PREFIX)
    relay_env.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    reset_runtime()
    return Local(aws, tmp_path)


def run(capsys: pytest.CaptureFixture[str], local: Local, *argv: str) -> Result:
    capsys.readouterr()
    code = cli.main([*argv, "--local"])
    out, err = capsys.readouterr()
    for secret in local.canaries:
        assert secret not in out + err  # never printed, whatever the command
    return Result(code, out, err)


def add_acme(capsys: pytest.CaptureFixture[str], local: Local, *extra: str, secrets: bool = True) -> Result:
    """Tenant acme, selling through Stripe, with its real key and signing secret from a file."""
    options = [
        "--secrets-file",
        local.secrets_file({"trafficstars_key": ACME_KEY, "stripe_webhook_secret": ACME_STRIPE}),
    ]
    result = run(capsys, local, "tenant", "add", "acme", "--source", "stripe", *(options if secrets else []), *extra)
    assert result.code == 0, result.err
    return result


def purchase(payment_intent: str) -> bytes:
    return stripe_event("checkout.session.completed", checkout_session(payment_intent=payment_intent))


class TestHelp:
    @pytest.mark.parametrize("action", ["add", "show", "list", "set", "remove"])
    def test_every_action_has_help_with_the_target_options(
        self, capsys: pytest.CaptureFixture[str], action: str
    ) -> None:
        with pytest.raises(SystemExit) as exit_:
            cli.main(["tenant", action, "--help"])
        assert exit_.value.code == 0
        out = capsys.readouterr().out
        assert f"usage: postback-relay tenant {action}" in out
        assert all(option in out for option in ("--stack", "--region", "--profile", "--local", "--json"))

    def test_the_overview_lists_the_tenant_command(self, capsys: pytest.CaptureFixture[str]) -> None:
        with pytest.raises(SystemExit):
            cli.main(["--help"])
        assert "tenant add|show|list|set|remove" in capsys.readouterr().out

    def test_the_target_options_work_after_the_action(self) -> None:
        args = cli.build_parser().parse_args(["tenant", "list", "--local", "--json"])
        assert (args.local, args.json, args.action) == (True, True, "list")


class TestAdd:
    def test_creates_its_secret_with_a_generated_token_and_placeholders_saves_it_and_prints_its_urls(
        self, local: Local, capsys: pytest.CaptureFixture[str]
    ) -> None:
        result = run(
            capsys,
            local,
            "tenant",
            "add",
            "acme",
            "--source",
            "stripe,postback",
            "--set",
            "ACCOUNT_CURRENCY=EUR",
            "--stripe-account",
            "acct_1Acme",
        )
        assert result.code == 0, result.err
        stored = local.secret("acme")
        assert sorted(stored) == ["postback_token", "stripe_webhook_secret", "trafficstars_key"]
        assert stored["trafficstars_key"].startswith("PLACEHOLDER")
        assert stored["stripe_webhook_secret"].startswith("PLACEHOLDER")
        token = stored["postback_token"]
        assert len(token) >= 43 and not token.startswith("PLACEHOLDER")
        assert token not in result.out + result.err
        tags = local.aws.secretsmanager.describe_secret(SecretId=PREFIX + "acme")["Tags"]
        assert {"Key": "tenant", "Value": "acme"} in tags
        config = local.config("acme")
        assert config is not None and config.enabled
        assert (config.sources, dict(config.settings), config.stripe_accounts) == (
            frozenset({"stripe", "postback"}),
            {"ACCOUNT_CURRENCY": "EUR"},
            ("acct_1Acme",),
        )
        assert config.updated_at.startswith("20")
        assert local.item("tenant_lookup#stripe_account#acct_1Acme") == {
            "pk": "tenant_lookup#stripe_account#acct_1Acme",
            "kind": "tenant_lookup",
            "tenant": "acme",
        }
        assert f"stripe           POST {API}/webhooks/acme/stripe" in result.out
        assert f"GET  {API}/postback/acme?token=<postback_token in secret {PREFIX}acme>" in result.out
        assert f"POST {API}/webhooks/_connect/stripe" in result.out and "acct_1Acme" in result.out
        assert "to paste: trafficstars_key, stripe_webhook_secret" in result.out
        assert f"aws secretsmanager get-secret-value --secret-id {PREFIX}acme" in result.out

    def test_values_from_the_secrets_file_are_stored_as_given_and_never_printed(
        self, local: Local, capsys: pytest.CaptureFixture[str]
    ) -> None:
        values = {"trafficstars_key": ACME_KEY, "stripe_webhook_secret": ACME_STRIPE, "postback_token": ACME_TOKEN}
        argv = ["tenant", "add", "acme", "--source", "stripe", "--source", "postback", "--json"]
        result = run(capsys, local, *argv, "--secrets-file", local.secrets_file(values))
        assert result.code == 0, result.err
        assert local.secret("acme") == values
        document = result.json()
        assert document["secret"] == {
            "name": f"{PREFIX}acme",
            "keys": {"trafficstars_key": "set", "postback_token": "set", "stripe_webhook_secret": "set"},
            "unreadable": None,
        }
        assert document["placeholders"] == []
        assert {link["source"]: link["url"] for link in document["urls"]} == {
            "postback": f"{API}/postback/acme?token=<postback_token in secret {PREFIX}acme>",
            "stripe": f"{API}/webhooks/acme/stripe",
        }

    def test_the_tenant_it_adds_is_served_by_the_relay_with_its_own_secret(
        self, local: Local, invoke: Invoker, capsys: pytest.CaptureFixture[str]
    ) -> None:
        add_acme(capsys, local)
        body = purchase("pi_acme_served")
        path = "/webhooks/acme/stripe"
        refused = invoke(body, {"Stripe-Signature": stripe_signature(body, TEST_STRIPE_SECRET)}, path=path)
        assert refused.status == 401  # the default tenant's secret does not sign acme's webhooks
        served = invoke(body, {"Stripe-Signature": stripe_signature(body, ACME_STRIPE)}, path=path)
        assert served.status == 200, served.body
        record = local.item("acme/stripe#pi_acme_served")
        assert record is not None and record["tenant"] == "acme"

    @pytest.mark.parametrize(
        ("argv", "message"),
        [
            (["acme", "--source", "stripe", "--set", "ACCOUNT_CURRENCY=dollars"], "ACCOUNT_CURRENCY must be"),
            (["acme", "--source", "stripe", "--set", "TABLE_NAME=other"], "TABLE_NAME: not a tenant setting"),
            (["acme", "--source", "stripe", "--set", "FX_RATES"], "--set 'FX_RATES' is not VARIABLE=VALUE"),
            (["Acme!", "--source", "stripe"], "'Acme!' cannot name a tenant"),
            (["default", "--source", "stripe"], "the tenant default is the deployment's own configuration"),
            (["acme", "--source", "paypal"], "--source paypal: not a known value"),
            (["acme", "--source", "stripe", "--stripe-account", "12345"], "'12345' is not a Stripe account id"),
        ],
    )
    def test_a_bad_name_setting_source_or_account_is_refused_and_nothing_is_written(
        self, local: Local, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
    ) -> None:
        result = run(capsys, local, "tenant", "add", *argv)
        assert result.code == 2
        assert message in result.err and "fix: " in result.err
        assert local.tenant_secrets() == []
        assert [item["pk"] for item in local.aws.dynamodb.scan(TableName=defaults.TABLE_NAME)["Items"]] == []

    def test_a_secrets_file_with_a_key_its_sources_do_not_use_is_refused(
        self, local: Local, capsys: pytest.CaptureFixture[str]
    ) -> None:
        path = local.secrets_file({"trafficstars_key": ACME_KEY, "shopify_webhook_secret": ACME_STRIPE})
        result = run(capsys, local, "tenant", "add", "acme", "--source", "stripe", "--secrets-file", path)
        assert result.code == 2 and "shopify_webhook_secret is not a key this tenant's sources use" in result.err
        assert local.tenant_secrets() == [] and local.config("acme") is None

    def test_an_existing_tenant_is_not_added_again_and_its_secret_is_kept(
        self, local: Local, capsys: pytest.CaptureFixture[str]
    ) -> None:
        add_acme(capsys, local)
        again = run(capsys, local, "tenant", "add", "acme", "--source", "shopify")
        assert again.code == 2 and "tenant acme exists already" in again.err and "tenant set acme" in again.err
        assert local.secret("acme") == {"trafficstars_key": ACME_KEY, "stripe_webhook_secret": ACME_STRIPE}
        config = local.config("acme")
        assert config is not None and config.sources == {"stripe"}

    def test_a_stripe_account_another_tenant_holds_is_refused_and_leaves_no_half_tenant(
        self, local: Local, capsys: pytest.CaptureFixture[str]
    ) -> None:
        add_acme(capsys, local, "--stripe-account", "acct_1Shared")
        result = run(capsys, local, "tenant", "add", "globex", "--source", "stripe", "--stripe-account", "acct_1Shared")
        assert result.code == 1
        assert "stripe_account acct_1Shared belongs to another tenant" in result.err
        assert local.config("globex") is None
        assert local.tenant_secrets() == [f"{PREFIX}acme"]  # globex's was deleted at once, not scheduled
        assert local.item("tenant_lookup#stripe_account#acct_1Shared") is not None
        assert local.item("tenant_lookup#stripe_account#acct_1Shared")["tenant"] == "acme"  # type: ignore[index]


class TestListAndShow:
    def test_list_is_a_table_by_name_and_json(self, local: Local, capsys: pytest.CaptureFixture[str]) -> None:
        run(capsys, local, "tenant", "add", "globex", "--source", "shopify,woocommerce")
        add_acme(capsys, local)
        result = run(capsys, local, "tenant", "list")
        assert result.code == 0
        lines = result.out.splitlines()
        assert lines[0].split() == ["NAME", "ENABLED", "SOURCES", "UPDATED", "(UTC)"]
        assert [line.split()[:3] for line in lines[1:3]] == [
            ["acme", "yes", "stripe"],
            ["globex", "yes", "shopify,"],
        ]
        assert "shopify, woocommerce" in lines[2]
        assert lines[3].startswith("2 tenant(s) in the local run")
        document = run(capsys, local, "tenant", "list", "--json").json()
        assert [(t["name"], t["sources"]) for t in document["tenants"]] == [
            ("acme", ["stripe"]),
            ("globex", ["shopify", "woocommerce"]),
        ]

    def test_no_tenants_is_an_empty_list(self, local: Local, capsys: pytest.CaptureFixture[str]) -> None:
        result = run(capsys, local, "tenant", "list")
        assert result.code == 0 and result.out.startswith("0 tenant(s)")

    def test_show_says_which_keys_are_set_or_placeholders_never_their_values(
        self, local: Local, capsys: pytest.CaptureFixture[str]
    ) -> None:
        run(capsys, local, "tenant", "add", "acme", "--source", "stripe", "--set", "ACCOUNT_CURRENCY=EUR")
        local.paste("acme", stripe_webhook_secret=ACME_STRIPE)
        result = run(capsys, local, "tenant", "show", "acme")
        assert result.code == 0
        assert result.out.splitlines()[0] == "tenant acme in the local run (moto at " + local.aws.server.endpoint + ")"
        assert "  ACCOUNT_CURRENCY EUR" in result.out
        assert "  trafficstars_key             placeholder" in result.out
        assert "  stripe_webhook_secret        set" in result.out
        assert "to paste: trafficstars_key:" in result.out
        keys = run(capsys, local, "tenant", "show", "acme", "--json").json()["secret"]["keys"]
        assert keys == {"trafficstars_key": "placeholder", "stripe_webhook_secret": "set"}

    def test_show_of_no_such_tenant_says_how_to_list_them(
        self, local: Local, capsys: pytest.CaptureFixture[str]
    ) -> None:
        result = run(capsys, local, "tenant", "show", "nobody")
        assert result.code == 1 and "no tenant named nobody" in result.err and "tenant list" in result.err


class TestSet:
    def test_a_change_is_applied_and_a_source_added_gets_its_placeholder(
        self, local: Local, capsys: pytest.CaptureFixture[str]
    ) -> None:
        add_acme(capsys, local, "--set", "ACCOUNT_CURRENCY=EUR", "--set", "CLICK_ID_METADATA_KEY=ts_click")
        before = local.config("acme")
        time.sleep(0.002)  # updated_at has milliseconds
        argv = ["tenant", "set", "acme", "--source", "woocommerce", "--set", "ACCOUNT_CURRENCY=GBP"]
        result = run(capsys, local, *argv, "--unset", "CLICK_ID_METADATA_KEY", "--stripe-account", "acct_1Acme")
        assert result.code == 0, result.err
        config = local.config("acme")
        assert config is not None and before is not None
        assert config.sources == {"stripe", "woocommerce"}
        assert dict(config.settings) == {"ACCOUNT_CURRENCY": "GBP"}
        assert config.stripe_accounts == ("acct_1Acme",) and config.updated_at > before.updated_at
        stored = local.secret("acme")
        assert (stored["trafficstars_key"], stored["stripe_webhook_secret"]) == (ACME_KEY, ACME_STRIPE)  # kept
        assert stored["woocommerce_webhook_secret"].startswith("PLACEHOLDER")
        assert f"POST {API}/webhooks/acme/woocommerce" in result.out
        assert "to paste: woocommerce_webhook_secret" in result.out

    def test_disable_and_enable(self, local: Local, capsys: pytest.CaptureFixture[str]) -> None:
        add_acme(capsys, local)
        assert run(capsys, local, "tenant", "set", "acme", "--disable").code == 0
        assert local.config("acme").enabled is False  # type: ignore[union-attr]
        assert run(capsys, local, "tenant", "set", "acme", "--enable").code == 0
        assert local.config("acme").enabled is True  # type: ignore[union-attr]

    def test_a_stripe_account_another_tenant_holds_is_refused_and_nothing_changes(
        self, local: Local, capsys: pytest.CaptureFixture[str]
    ) -> None:
        run(capsys, local, "tenant", "add", "globex", "--source", "stripe", "--stripe-account", "acct_1Globex")
        add_acme(capsys, local)
        before = local.config("acme")
        result = run(
            capsys, local, "tenant", "set", "acme", "--stripe-account", "acct_1Globex", "--set", "ACCOUNT_CURRENCY=EUR"
        )
        assert result.code == 1
        assert "tenant acme was not changed: stripe_account acct_1Globex belongs to another tenant" in result.err
        assert local.config("acme") == before
        assert local.item("tenant_lookup#stripe_account#acct_1Globex")["tenant"] == "globex"  # type: ignore[index]

    @pytest.mark.parametrize(
        ("argv", "code", "message"),
        [
            (["--set", "VALUE_POLICY=fixed"], 2, "VALUE_FIXED is required when VALUE_POLICY is fixed"),
            (["--remove-source", "stripe"], 2, "tenant acme would sell through no source"),
            (["--source", "paypal"], 2, "--source paypal: not a known value"),
        ],
    )
    def test_an_invalid_change_is_refused_and_nothing_changes(
        self, local: Local, capsys: pytest.CaptureFixture[str], argv: list[str], code: int, message: str
    ) -> None:
        add_acme(capsys, local)
        before = local.config("acme")
        result = run(capsys, local, "tenant", "set", "acme", *argv)
        assert result.code == code and message in result.err
        assert local.config("acme") == before

    def test_a_tenant_that_changed_since_it_was_read_is_not_overwritten(
        self, local: Local, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        add_acme(capsys, local)
        directory = TenantDirectory(local.aws.dynamodb, defaults.TABLE_NAME, 0)
        read = directory.get("acme", force=True)
        assert read is not None
        original_save = TenantDirectory.save

        def someone_else_first(self: TenantDirectory, config: TenantConfig, previous: TenantConfig | None) -> None:
            # Between the command's read and its write, another operator changes the tenant.
            original_save(directory, replace(read, settings={"ACCOUNT_CURRENCY": "JPY"}, updated_at="2099"), read)
            original_save(self, config, previous)

        monkeypatch.setattr(TenantDirectory, "save", someone_else_first)
        result = run(capsys, local, "tenant", "set", "acme", "--set", "ACCOUNT_CURRENCY=EUR")
        assert result.code == 1 and "changed since it was read" in result.err
        monkeypatch.undo()
        assert dict(local.config("acme").settings) == {"ACCOUNT_CURRENCY": "JPY"}  # type: ignore[union-attr]


class TestRemove:
    def test_remove_disables_it_and_the_relay_refuses_its_webhooks(
        self, local: Local, invoke: Invoker, capsys: pytest.CaptureFixture[str]
    ) -> None:
        add_acme(capsys, local)
        result = run(capsys, local, "tenant", "remove", "acme")
        assert result.code == 0 and "404 unknown_tenant" in result.out
        config = local.config("acme")
        assert config is not None and config.enabled is False
        assert local.secret("acme")["trafficstars_key"] == ACME_KEY  # kept: waiting conversions still need it
        reset_runtime()  # a new container: the relay reads the configuration afresh
        body = purchase("pi_after_removal")
        reply = invoke(body, {"Stripe-Signature": stripe_signature(body, ACME_STRIPE)}, path="/webhooks/acme/stripe")
        assert reply.status == 404 and reply.body.get("error") == "unknown_tenant", reply.body

    def test_purge_is_refused_while_a_conversion_of_the_tenant_waits_and_done_once_none_does(
        self, local: Local, capsys: pytest.CaptureFixture[str]
    ) -> None:
        add_acme(capsys, local, "--stripe-account", "acct_1Acme")
        local.put_conversion("acme/stripe#pi_waiting", status="retry_pending", due_shard="due", due_at=1.0)
        local.put_conversion("globex/stripe#pi_other", status="retry_pending", due_shard="due", due_at=2.0)
        local.put_conversion("stripe#pi_default", status="retry_pending", due_shard="due", due_at=3.0)
        local.put_conversion("acme/stripe#pi_sent", status="sent")  # final: not in the due index
        refused = run(capsys, local, "tenant", "remove", "acme", "--purge")
        assert refused.code == 1
        assert "not purged: 1 conversion(s) of tenant acme still wait to be sent (acme/stripe#pi_waiting)" in (
            refused.err
        )
        config = local.config("acme")
        assert config is not None and config.enabled is False  # disabled, so no new one arrives meanwhile
        assert "DeletedDate" not in local.aws.secretsmanager.describe_secret(SecretId=PREFIX + "acme")
        local.put_conversion("acme/stripe#pi_waiting", status="sent")  # sent: it left the due index
        done = run(capsys, local, "tenant", "remove", "acme", "--purge", "--recovery-days", "10", "--json")
        assert done.code == 0, done.err
        assert done.json() == {
            "tenant": "acme",
            "enabled": False,
            "purged": True,
            "secret": f"{PREFIX}acme",
            "secret_deletion_days": 10,
            "target": local_deployment().label,
        }
        assert local.config("acme") is None
        assert local.item("tenant_lookup#stripe_account#acct_1Acme") is None
        assert "DeletedDate" in local.aws.secretsmanager.describe_secret(SecretId=PREFIX + "acme")
        assert local.item("acme/stripe#pi_sent") is not None  # its records stay, and expire as any do

    @pytest.mark.parametrize("days", ["6", "31", "seven"])
    def test_the_recovery_window_is_what_secrets_manager_allows(
        self, capsys: pytest.CaptureFixture[str], days: str
    ) -> None:
        with pytest.raises(SystemExit) as exit_:
            cli.main(["tenant", "remove", "acme", "--purge", "--recovery-days", days, "--local"])
        assert exit_.value.code == 2 and "--recovery-days" in capsys.readouterr().err


class TestCheckTenant:
    def test_a_tenant_with_its_key_and_secrets_passes(self, local: Local, capsys: pytest.CaptureFixture[str]) -> None:
        add_acme(capsys, local)
        run(capsys, local, "tenant", "set", "acme", "--source", "postback")  # its token is generated
        result = run(capsys, local, "check", "--tenant", "acme")
        assert result.code == 0, result.out
        assert result.out.splitlines()[0] == f"check: tenant acme in {local_deployment().label}"
        assert result.out.splitlines()[-1] == "all good"
        document = run(capsys, local, "check", "--tenant", "acme", "--json").json()
        assert {c["name"]: c["level"] for c in document["checks"]} == {
            "tenant": "OK",
            "settings": "OK",
            "secret": "OK",
            "source postback": "OK",
            "source stripe": "OK",
        }

    def test_placeholders_fail_with_where_to_paste_them(self, local: Local, capsys: pytest.CaptureFixture[str]) -> None:
        add_acme(capsys, local, secrets=False)
        result = run(capsys, local, "check", "--tenant", "acme", "--json")
        assert result.code == 1
        verdicts = {c["name"]: c for c in result.json()["checks"]}
        assert verdicts["secret"]["level"] == "FAIL"
        assert verdicts["secret"]["detail"].startswith("trafficstars_key is still a placeholder")
        assert verdicts["source stripe"]["level"] == "FAIL"
        assert f"--secret-id {PREFIX}acme" in verdicts["source stripe"]["fix"]

    def test_a_disabled_or_unknown_tenant_fails(self, local: Local, capsys: pytest.CaptureFixture[str]) -> None:
        add_acme(capsys, local)
        run(capsys, local, "tenant", "remove", "acme")
        disabled = run(capsys, local, "check", "--tenant", "acme", "--json")
        assert disabled.code == 1
        [verdict] = [c for c in disabled.json()["checks"] if c["name"] == "tenant"]
        assert verdict["level"] == "FAIL" and "tenant set acme --enable" in verdict["fix"]
        unknown = run(capsys, local, "check", "--tenant", "nobody")
        assert unknown.code == 1 and "FAIL  tenant                 no tenant named nobody" in unknown.out

    def test_a_setting_stored_invalid_fails(self, local: Local, capsys: pytest.CaptureFixture[str]) -> None:
        add_acme(capsys, local)
        config = local.config("acme")
        assert config is not None
        bad = replace(config, settings={"ACCOUNT_CURRENCY": "euros"}, updated_at="2099")
        TenantDirectory(local.aws.dynamodb, defaults.TABLE_NAME, 0).save(bad, config)  # written by hand, say
        document = run(capsys, local, "check", "--tenant", "acme", "--json").json()
        [settings] = [c for c in document["checks"] if c["name"] == "settings"]
        assert settings["level"] == "FAIL" and "ACCOUNT_CURRENCY" in settings["detail"]


class TestRecentTenant:
    def test_only_that_tenants_conversions_and_default_is_the_deployments_own(
        self, local: Local, invoke: Invoker, capsys: pytest.CaptureFixture[str]
    ) -> None:
        add_acme(capsys, local)
        run(capsys, local, "tenant", "add", "globex", "--source", "stripe")
        for tenant, intent, secret in (("acme", "pi_acme", ACME_STRIPE), ("", "pi_default", TEST_STRIPE_SECRET)):
            body = purchase(intent)
            path = f"/webhooks/{tenant}/stripe" if tenant else "/webhooks/stripe"
            assert invoke(body, {"Stripe-Signature": stripe_signature(body, secret)}, path=path).status == 200

        def keys(*argv: str) -> list[str]:
            result = run(capsys, local, "recent", "--json", *argv)
            assert result.code == 0, result.err
            return sorted(c["pk"] for c in result.json()["conversions"])

        assert keys("--tenant", "acme") == ["acme/stripe#pi_acme"]
        assert keys("--tenant", "default") == ["stripe#pi_default"]
        assert keys("--tenant", "globex") == []
        assert keys() == ["acme/stripe#pi_acme", "stripe#pi_default"]
        text = run(capsys, local, "recent", "--tenant", "acme")
        assert "1 conversion(s) received since" in text.out and "of tenant acme" in text.out

    def test_status_finds_a_tenants_purchase_id_under_that_tenant(
        self, local: Local, invoke: Invoker, capsys: pytest.CaptureFixture[str]
    ) -> None:
        add_acme(capsys, local)
        body = purchase("pi_same")
        signed = {"Stripe-Signature": stripe_signature(body, ACME_STRIPE)}
        assert invoke(body, signed, path="/webhooks/acme/stripe").status == 200
        found = run(capsys, local, "status", "pi_same", "--tenant", "acme", "--json")
        assert [c["pk"] for c in found.json()["conversions"]] == ["acme/stripe#pi_same"]
        assert run(capsys, local, "status", "pi_same").code == 1  # the default tenant has no such purchase
        by_key = run(capsys, local, "status", "acme/stripe#pi_same", "--json")
        assert [c["pk"] for c in by_key.json()["conversions"]] == ["acme/stripe#pi_same"]

    def test_sign_signs_with_the_tenants_secret_and_posts_to_its_route(
        self, local: Local, sandbox: Any, capsys: pytest.CaptureFixture[str]
    ) -> None:
        from postback_relay_dev.front import LocalApi
        from postback_relay_dev.template import http_routes, load_template

        add_acme(capsys, local)
        event = local.tmp_path / "event.json"
        event.write_bytes(purchase("pi_signed"))
        api = LocalApi(http_routes(load_template())).start()
        try:
            result = run(
                capsys, local, "sign", "stripe", str(event), "--tenant", "acme", "--url", api.base_url, "--json"
            )
        finally:
            api.stop()
        assert result.code == 0, result.err
        answer = json.loads(result.out[result.out.index("{\n") :])  # after the relay's own log lines (in-process)
        assert answer["url"].endswith("/webhooks/acme/stripe") and answer["http_status"] == 200
        assert answer["answer"]["conversion_id"] == "acme/stripe#pi_signed"
        assert run(capsys, local, "sign", "stripe", str(event), "--tenant", "Nope").code == 2

    def test_the_next_page_keeps_the_tenant(self, local: Local, capsys: pytest.CaptureFixture[str]) -> None:
        for intent in ("pi_1", "pi_2"):
            local.put_conversion(
                f"acme/stripe#{intent}", tenant="acme", status="sent", received_at="2099-01-01T00:00:00.000+00:00"
            )
        result = run(capsys, local, "recent", "--tenant", "acme", "--since", "2098-12-31", "--limit", "1")
        [follow] = [line for line in result.out.splitlines() if line.startswith("next page: ")]
        assert "--tenant acme" in follow

    def test_a_name_no_tenant_can_have_is_refused(self, local: Local, capsys: pytest.CaptureFixture[str]) -> None:
        result = run(capsys, local, "recent", "--tenant", "Not A Slug")
        assert result.code == 2 and "--tenant 'Not A Slug' cannot name a tenant" in result.err


class TestStackBeforeTenants:
    @pytest.mark.parametrize(
        "argv",
        [
            ["tenant", "add", "acme", "--source", "stripe"],
            ["tenant", "show", "acme"],
            ["tenant", "list"],
            ["tenant", "set", "acme", "--disable"],
            ["tenant", "remove", "acme"],
        ],
    )
    def test_every_action_says_to_redeploy(
        self, local: Local, capsys: pytest.CaptureFixture[str], argv: list[str]
    ) -> None:
        args = cli.build_parser().parse_args(argv)
        deployment = replace(local_deployment(), tenant_secret_prefix=None)
        with pytest.raises(OperatorError) as error:
            tenant_command.run(args, deployment)
        assert "deployed before tenants existed" in error.value.problem
        assert "redeploy with this release" in error.value.fix
        assert local.tenant_secrets() == []
