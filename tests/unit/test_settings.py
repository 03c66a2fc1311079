"""Settings: every setting read from the environment, and a bad one fails at start naming itself."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from postback_relay.networks.trafficstars import DEFAULT_URL as DEFAULT_TRAFFICSTARS_URL
from postback_relay.settings import ALL_VARIABLES, Settings, SettingsError
from postback_relay_dev.template import load_template

BASE = {"SECRET_ID": "relay/secret", "TABLE_NAME": "conversions"}


def settings(**overrides: str) -> Settings:
    return Settings.from_env({**BASE, **overrides})


def test_defaults_match_the_documented_contract() -> None:
    s = settings()
    assert s.trafficstars.url == DEFAULT_TRAFFICSTARS_URL == "https://tsyndicate.com/api/v1/cpa/action"
    assert s.click_id_metadata_key == "click_id"
    assert s.account_currency == "USD"
    assert s.fx_rates == {}
    assert s.value_policy.kind == "amount" and s.value_policy.out_of_range == "clamp"
    assert s.retention_days == 90
    assert s.signature_tolerance_seconds == 300
    assert (
        s.trafficstars.connect_timeout_seconds + s.trafficstars.read_timeout_seconds < 5
    )  # well under what senders wait
    assert s.forward_test_events is False


@pytest.mark.parametrize("missing", ["SECRET_ID", "TABLE_NAME"])
def test_a_missing_required_setting_is_named(missing: str) -> None:
    env = {k: v for k, v in BASE.items() if k != missing}
    with pytest.raises(SettingsError, match=missing):
        Settings.from_env(env)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("VALUE_POLICY", "everything"),
        ("VALUE_OUT_OF_RANGE", "wrap"),
        ("ACCOUNT_CURRENCY", "dollars"),
        ("FX_RATES", "EUR=1.1"),
        ("FX_RATES", '{"EUR": -1}'),
        ("FX_RATES", '["EUR"]'),
        ("FORWARD_TEST_EVENTS", "maybe"),
        ("RETENTION_DAYS", "0"),
        ("RETENTION_DAYS", "1.5"),
        ("TRAFFICSTARS_READ_TIMEOUT", "soon"),
        ("SECRET_MAX_AGE_SECONDS", "-5"),
        ("MAX_BODY_BYTES", "10"),
        ("TRAFFICSTARS_URL", "https://tsyndicate.com/api/v1/cpa/action?key=x"),
        ("CLICK_ID_METADATA_KEY", "  "),
        ("POSTBACK_APPROVED_STATUSES", "approved,refunded"),
        ("POSTBACK_APPROVED_STATUSES", "Chargeback"),
        ("POSTBACK_APPROVED_STATUSES", "sale,,paid"),
        ("POSTBACK_APPROVED_STATUSES", "sale,pay ment"),
    ],
)
def test_an_invalid_setting_is_named(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        settings(**{name: value})


def test_value_policy_fixed_and_percent_need_their_number() -> None:
    with pytest.raises(SettingsError, match="VALUE_FIXED"):
        settings(VALUE_POLICY="fixed")
    with pytest.raises(SettingsError, match="VALUE_PERCENT"):
        settings(VALUE_POLICY="percent")
    assert settings(VALUE_POLICY="fixed", VALUE_FIXED="12.5").value_policy.fixed == Decimal("12.5")
    assert settings(VALUE_POLICY="percent", VALUE_PERCENT="30").value_policy.percent == Decimal("30")


def test_fx_rates_are_decimals_keyed_by_upper_case_code() -> None:
    assert settings(FX_RATES='{"eur": "1.08", "JPY": 0.0067}').fx_rates == {
        "EUR": Decimal("1.08"),
        "JPY": Decimal("0.0067"),
    }


@pytest.mark.parametrize(
    "url", ["http://tsyndicate.com/api/v1/cpa/action", "http://127.0.0.1:8443/api/v1/cpa/action", "ftp://x/y"]
)
def test_plain_http_upstream_is_refused_outside_local_mode(url: str) -> None:
    with pytest.raises(SettingsError, match="TRAFFICSTARS_URL must use https"):
        settings(TRAFFICSTARS_URL=url)


def test_plain_http_is_allowed_only_for_loopback_in_local_mode() -> None:
    assert settings(TRAFFICSTARS_URL="http://127.0.0.1:8443/x", LOCAL_MODE="true").trafficstars.url.startswith("http:")
    assert settings(TRAFFICSTARS_URL="http://localhost:1/x", LOCAL_MODE="1").local_mode
    with pytest.raises(SettingsError, match="TRAFFICSTARS_URL"):
        settings(TRAFFICSTARS_URL="http://tsyndicate.com/api/v1/cpa/action", LOCAL_MODE="true")


def test_the_handler_module_fails_at_import_naming_the_setting() -> None:
    import subprocess
    import sys

    env = {"PATH": "/usr/bin:/bin", "TABLE_NAME": "t", "AWS_DEFAULT_REGION": "us-east-1"}
    result = subprocess.run(
        [sys.executable, "-c", "import postback_relay.handlers.http"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "SECRET_ID is required" in result.stderr


def test_the_postback_uses_the_path_form_with_nothing_query_only_by_default() -> None:
    options = settings().trafficstars.options
    assert (options.form, dict(options.goal_ids), options.price, options.allow_duplicates) == (
        "path",
        {},
        "none",
        False,
    )
    template_defaults = {"TRAFFICSTARS_URL_FORM": "path", "TRAFFICSTARS_GOAL_PURCHASE": "", "TRAFFICSTARS_PRICE": ""}
    assert settings(**template_defaults, TRAFFICSTARS_ALLOW_DUPLICATES="false").trafficstars.options == options


def test_the_query_form_reads_goals_price_and_duplicates() -> None:
    options = settings(
        TRAFFICSTARS_URL_FORM="query",
        TRAFFICSTARS_GOAL_PURCHASE="1101",
        TRAFFICSTARS_GOAL_LEAD="0",
        TRAFFICSTARS_PRICE="2.50",
        TRAFFICSTARS_ALLOW_DUPLICATES="true",
    ).trafficstars.options
    assert (options.form, dict(options.goal_ids)) == ("query", {"purchase": "1101", "lead": "0"})
    assert (options.price, options.fixed_price, options.allow_duplicates) == ("fixed", Decimal("2.50"), True)
    assert settings(TRAFFICSTARS_URL_FORM="query", TRAFFICSTARS_PRICE="value").trafficstars.options.price == "value"
    assert settings(TRAFFICSTARS_URL_FORM="query").trafficstars.options.price == "none"  # never revenue by default


@pytest.mark.parametrize(
    "name",
    ["TRAFFICSTARS_GOAL_PURCHASE", "TRAFFICSTARS_GOAL_RENEWAL", "TRAFFICSTARS_PRICE", "TRAFFICSTARS_ALLOW_DUPLICATES"],
)
def test_query_only_settings_with_the_path_form_are_refused_with_the_way_out(name: str) -> None:
    value = "true" if name == "TRAFFICSTARS_ALLOW_DUPLICATES" else "7"
    with pytest.raises(SettingsError, match=f"{name}.*TRAFFICSTARS_URL_FORM=query"):
        settings(**{name: value})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TRAFFICSTARS_URL_FORM", "json"),
        ("TRAFFICSTARS_GOAL_PURCHASE", "purchase"),
        ("TRAFFICSTARS_GOAL_LEAD", "-1"),
        ("TRAFFICSTARS_PRICE", "cheap"),
        ("TRAFFICSTARS_PRICE", "0"),
        ("TRAFFICSTARS_PRICE", "250"),
        ("TRAFFICSTARS_ALLOW_DUPLICATES", "maybe"),
    ],
)
def test_an_invalid_query_form_setting_is_named(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        settings(**{"TRAFFICSTARS_URL_FORM": "query", name: value})


def test_the_approved_tracker_statuses_default_to_the_documented_set() -> None:
    expected = {"approved", "approve", "confirmed", "sale", "rebill", "completed", "paid", "1"}
    assert settings().postback_approved_statuses == expected
    assert Settings(secret_id="s", table_name="t").postback_approved_statuses == expected


def test_the_approved_tracker_statuses_are_read_case_folded_and_may_be_none() -> None:
    assert settings(POSTBACK_APPROVED_STATUSES=" Sale , LEAD,2").postback_approved_statuses == {"sale", "lead", "2"}
    assert settings(POSTBACK_APPROVED_STATUSES="").postback_approved_statuses == frozenset()
    assert settings(POSTBACK_APPROVED_STATUSES=" ").postback_approved_statuses == frozenset()


class TestTheSettingsTable:
    """settings.VARIABLES (with the network's) is where a setting is declared; the dataclass's defaults, the
    template's parameters and the README's settings table are held to it."""

    def test_the_defaults_of_the_dataclass_are_the_tables(self) -> None:
        assert Settings.from_env({"SECRET_ID": "s", "TABLE_NAME": "t"}) == Settings(secret_id="s", table_name="t")

    def test_each_variable_is_declared_once(self) -> None:
        names = [variable.name for variable in ALL_VARIABLES]
        assert len(names) == len(set(names))

    def test_the_template_sets_each_parameter_variable_from_its_parameter_with_the_tables_default(self) -> None:
        template = load_template()
        environment = template["Globals"]["Function"]["Environment"]["Variables"]
        for variable in ALL_VARIABLES:
            if (
                variable.parameter is None or variable.name == "SECRET_ID"
            ):  # SECRET_ID: the stack's own secret or SecretArn
                continue
            assert environment[variable.name] == {"Ref": variable.parameter}, variable.name
            default = str(template["Parameters"][variable.parameter].get("Default", ""))
            assert default.lower() == variable.default.lower(), variable.name
        parameters = template["Parameters"]
        set_by_parameter = {
            name for name, value in environment.items() if isinstance(value, dict) and value.get("Ref") in parameters
        } - {"POWERTOOLS_LOG_LEVEL"}  # powertools' own
        assert set_by_parameter <= {variable.name for variable in ALL_VARIABLES if variable.parameter}

    def test_the_readme_lists_every_variable_with_its_parameter_and_default(self) -> None:
        rows = _readme_settings_rows()
        for variable in ALL_VARIABLES:
            row = next((r for r in rows if f"`{variable.name}`" in r[0] or _shortened(variable.name, r[0])), None)
            assert row is not None, f"{variable.name} is not in the README's settings table"
            if variable.parameter:
                assert f"`{variable.parameter}`" in row[1], variable.name
            if variable.default:
                assert f"`{variable.default}`" in row[2] or variable.default in row[2], (variable.name, row[2])

    def test_the_readme_marks_exactly_the_per_tenant_settings(self) -> None:
        rows = _readme_settings_rows()
        for variable in ALL_VARIABLES:
            row = next(r for r in rows if f"`{variable.name}`" in r[0] or _shortened(variable.name, r[0]))
            assert ("**per tenant**" in row[3]) == variable.per_tenant, variable.name


def _readme_settings_rows() -> list[list[str]]:
    """The README's `## Settings` table: (variable, parameter, default, meaning) cells."""
    text = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    return [
        [cell.strip() for cell in line.strip("|").split("|")] for line in section.splitlines() if line.startswith("| `")
    ]


def _shortened(name: str, cell: str) -> bool:
    """A row listing several variables by their shared prefix (`TRAFFICSTARS_GOAL_PURCHASE` / `_RENEWAL`)."""
    return any(name.endswith(part.strip("` ")) and part.strip("` ").startswith("_") for part in cell.split("/"))
