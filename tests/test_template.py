"""template.yaml: what a deployment gets. cfn-lint, sam validate --lint and sam build run in `make test`."""

from __future__ import annotations

from typing import Any

import pytest

from postback_relay.local.template import load_template


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


def resources(template: dict[str, Any], kind: str) -> dict[str, Any]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == kind}


def test_one_python_arm64_function_with_tracing_and_powertools(template: dict[str, Any]) -> None:
    function_globals = template["Globals"]["Function"]
    runtime = function_globals["Runtime"]
    assert runtime.startswith("python3.") and int(runtime.split(".")[1]) >= 12
    assert function_globals["Architectures"] == ["arm64"]
    assert function_globals["Tracing"] == "Active"
    env = function_globals["Environment"]["Variables"]
    assert {"POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE", "SECRET_ID", "TABLE_NAME"} <= set(env)
    [function] = resources(template, "AWS::Serverless::Function").values()
    assert function["Properties"]["CodeUri"] == "src/"
    assert function["Properties"]["LoggingConfig"]["LogGroup"] == {"Ref": "WebhookLogGroup"}


def test_every_function_has_its_own_log_group_with_retention(template: dict[str, Any]) -> None:
    groups = resources(template, "AWS::Logs::LogGroup")
    assert all(g["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"} for g in groups.values())
    for function in resources(template, "AWS::Serverless::Function").values():
        assert function["Properties"]["LoggingConfig"]["LogGroup"]["Ref"] in groups


def test_the_table_is_on_demand_with_ttl_and_point_in_time_recovery(template: dict[str, Any]) -> None:
    [table] = resources(template, "AWS::DynamoDB::Table").values()
    properties = table["Properties"]
    assert properties["BillingMode"] == "PAY_PER_REQUEST"
    assert properties["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert properties["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True


def test_the_secret_is_a_parameter_and_the_policies_are_least_privilege(template: dict[str, Any]) -> None:
    assert "Default" not in template["Parameters"]["SecretArn"]
    [function] = resources(template, "AWS::Serverless::Function").values()
    policies = function["Properties"]["Policies"]
    assert {"AWSSecretsManagerGetSecretValuePolicy": {"SecretArn": {"Ref": "SecretArn"}}} in policies
    statements = [s for p in policies if "Statement" in p for s in p["Statement"]]
    assert all(s["Resource"] == {"GetAtt": "ConversionsTable.Arn"} for s in statements)
    assert all(not a.endswith("*") for s in statements for a in s["Action"])


def test_http_api_routes_and_outputs(template: dict[str, Any]) -> None:
    [function] = resources(template, "AWS::Serverless::Function").values()
    events = function["Properties"]["Events"].values()
    assert all(e["Type"] == "HttpApi" and e["Properties"]["PayloadFormatVersion"] == "2.0" for e in events)
    assert "/webhooks/stripe" in template["Outputs"]["StripeWebhookUrl"]["Value"]["Sub"]
