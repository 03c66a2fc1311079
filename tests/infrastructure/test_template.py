"""template.yaml: what a deployment gets. cfn-lint, sam validate --lint and sam build run in `make test`."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from postback_relay_dev.template import load_template

ROOT = Path(__file__).resolve().parents[2]


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
    env = function_globals["Environment"]["Variables"]
    assert {"POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE", "SECRET_ID", "TABLE_NAME"} <= set(env)
    function = template["Resources"]["WebhookFunction"]
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
    """Which function may do what is pinned against its calls (tests/integration/test_permissions.py); here,
    the shape."""
    secret = {"If": ["CreateSecret", {"Ref": "RelaySecret"}, {"Ref": "SecretArn"}]}  # the stack's, or the one given
    for function in resources(template, "AWS::Serverless::Function").values():
        policies = function["Properties"]["Policies"]
        name = "AWSSecretsManagerGetSecretValuePolicy"
        grants = [p[name] for p in policies if name in p]
        assert grants in ([], [{"SecretArn": secret}])
        statements = [s for p in policies if "Statement" in p for s in p["Statement"]]
        table = {"GetAtt": "ConversionsTable.Arn"}
        tenant_secrets = {
            "Sub": "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:"
            "postback-relay/${AWS::StackName}/tenants/*"
        }
        due = {"Sub": "${ConversionsTable.Arn}/index/due"}
        assert all(s["Resource"] in (table, due, tenant_secrets) for s in statements)
        assert all(not a.endswith("*") for s in statements for a in s["Action"])
        # the tenants' secrets, under the one prefix tenant add writes to, may only be read
        assert all(
            s["Action"] == ["secretsmanager:GetSecretValue"] for s in statements if s["Resource"] == tenant_secrets
        )


def test_http_api_routes_and_outputs(template: dict[str, Any]) -> None:
    events = template["Resources"]["WebhookFunction"]["Properties"]["Events"].values()
    assert all(e["Type"] == "HttpApi" and e["Properties"]["PayloadFormatVersion"] == "2.0" for e in events)
    path, base = template["Outputs"]["StripeWebhookUrl"]["Value"]["Sub"]
    assert path == "${Base}/webhooks/stripe"
    assert base["Base"] == template["Outputs"]["ApiBaseUrl"]["Value"]  # the custom domain when set


def test_the_retry_worker_reads_its_queue_with_partial_batch_failures_and_bounded_concurrency(
    template: dict[str, Any],
) -> None:
    worker = template["Resources"]["RetryFunction"]["Properties"]
    [event] = worker["Events"].values()
    assert event["Type"] == "SQS" and event["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert worker["ReservedConcurrentExecutions"] == {"Ref": "RetryConcurrency"}
    assert event["Properties"]["ScalingConfig"]["MaximumConcurrency"] == {"Ref": "RetryConcurrency"}


def test_queue_timings_follow_the_aws_rules(template: dict[str, Any]) -> None:
    worker_timeout = template["Resources"]["RetryFunction"]["Properties"]["Timeout"]
    retry_queue = template["Resources"]["RetryQueue"]["Properties"]
    dead_letters = template["Resources"]["DeadLetterQueue"]["Properties"]
    assert retry_queue["VisibilityTimeout"] >= 6 * worker_timeout
    assert dead_letters["MessageRetentionPeriod"] > retry_queue["MessageRetentionPeriod"]
    assert retry_queue["RedrivePolicy"]["deadLetterTargetArn"] == {"GetAtt": "DeadLetterQueue.Arn"}
    assert template["Parameters"]["RetryWindowSeconds"]["Default"] >= 3 * 86400


def test_the_sweep_runs_on_a_schedule_and_an_alarm_watches_the_dead_letter_queue(template: dict[str, Any]) -> None:
    [event] = template["Resources"]["SweepFunction"]["Properties"]["Events"].values()
    assert event["Type"] == "ScheduleV2"
    alarm = template["Resources"]["DeadLetterQueueNotEmptyAlarm"]["Properties"]
    assert alarm["Dimensions"][0]["Value"] == {"GetAtt": "DeadLetterQueue.QueueName"}
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (0, "GreaterThanThreshold")


def test_the_due_index_is_sparse_and_keys_only(template: dict[str, Any]) -> None:
    indexes = template["Resources"]["ConversionsTable"]["Properties"]["GlobalSecondaryIndexes"]
    [index] = [i for i in indexes if i["IndexName"] == "due"]
    assert index["Projection"] == {"ProjectionType": "KEYS_ONLY"}


def test_tracing_is_a_parameter_and_off_means_no_xray_sdk(template: dict[str, Any]) -> None:
    assert template["Parameters"]["Tracing"]["AllowedValues"] == ["PassThrough", "Active"]
    assert template["Parameters"]["Tracing"]["Default"] == "PassThrough"
    function_globals = template["Globals"]["Function"]
    assert function_globals["Tracing"] == {"Ref": "Tracing"}
    disabled = function_globals["Environment"]["Variables"]["POWERTOOLS_TRACE_DISABLED"]
    assert disabled == {"If": ["TracingActive", "false", "true"]}
    assert template["Conditions"]["TracingActive"] == {"Equals": [{"Ref": "Tracing"}, "Active"]}


def test_every_function_is_built_by_src_makefile(template: dict[str, Any]) -> None:
    makefile = (ROOT / "src" / "Makefile").read_text()
    for name, function in resources(template, "AWS::Serverless::Function").items():
        assert function["Metadata"]["BuildMethod"] == "makefile", name
        assert function["Properties"]["CodeUri"] == "src/"
        assert re.search(rf"^build-.*\b{name}\b.*:", makefile, re.M), f"src/Makefile has no build-{name}"
    runtime = template["Globals"]["Function"]["Runtime"]
    assert f"RUNTIME_PYTHON ?= {runtime}" in makefile
    assert f"RUNTIME_VERSION := {runtime.removeprefix('python')}\n" in (ROOT / "Makefile").read_text()
    assert f"--python-version {runtime.removeprefix('python')}" in makefile
    assert template["Globals"]["Function"]["Architectures"] == ["arm64"] and "manylinux2014_aarch64" in makefile


def test_the_templates_source_routes_are_the_routed_sources(template: dict[str, Any]) -> None:
    """The CLI's --local names the local run's sources from ROUTED, without reading the template."""
    from postback_relay.platforms import ROUTED
    from postback_relay_dev.template import http_routes

    paths = {route.path for route in http_routes(template)}
    routed = {path for path in paths if "{" not in path}  # a tenant's routes name no source (README "Tenants")
    sources = {path.rsplit("/", 1)[-1] for path in routed if path.startswith("/webhooks/") or path == "/postback"}
    assert sources == set(ROUTED)
    assert paths - routed == {"/webhooks/{tenant}/{platform}", "/postback/{tenant}"}


def test_every_scanner_suppression_says_why(template: dict[str, Any]) -> None:
    """checkov and cfn-lint-serverless run in `make test` (make scan); what they flag is fixed or skipped here,
    each skip with its reason (checkov's in `comment`, cfn-lint's in the YAML comment above ignore_checks)."""
    text = (ROOT / "template.yaml").read_text()
    skips = 0
    for name, resource in template["Resources"].items():
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
            skips += 1
            assert re.fullmatch(r"CKV2?_AWS_\d+", skip["id"]) and len(skip.get("comment", "")) > 40, name
        for check in resource.get("Metadata", {}).get("cfn-lint", {}).get("config", {}).get("ignore_checks", []):
            skips += 1
            assert re.search(rf"# {check}: .{{20,}}", text), f"{name}: ignoring {check} without a reason"
    assert skips > 0


def test_an_optional_custom_domain_with_a_record_only_when_a_zone_is_given(template: dict[str, Any]) -> None:
    parameters, conditions, res = template["Parameters"], template["Conditions"], template["Resources"]
    assert all(parameters[name]["Default"] == "" for name in ("DomainName", "CertificateArn", "HostedZoneId"))
    assert conditions["HasDomain"] == {"Not": [{"Equals": [{"Ref": "DomainName"}, ""]}]}
    assert conditions["CreateDnsRecord"]["And"][0] == {"Condition": "HasDomain"}
    assert (res["ApiDomain"]["Condition"], res["ApiDomainMapping"]["Condition"]) == ("HasDomain", "HasDomain")
    assert res["ApiDomainRecord"]["Condition"] == "CreateDnsRecord"
    assert res["ApiDomain"]["Properties"]["DomainNameConfigurations"][0]["EndpointType"] == "REGIONAL"
    assert res["ApiDomainMapping"]["Properties"]["ApiId"] == {"Ref": "HttpApi"}
    rule = template["Rules"]["DomainNeedsCertificate"]
    assert rule["Assertions"][0]["Assert"] == {"Not": [{"Equals": [{"Ref": "CertificateArn"}, ""]}]}


def test_every_url_output_uses_the_custom_domain_when_set(template: dict[str, Any]) -> None:
    base = template["Outputs"]["ApiBaseUrl"]["Value"]
    assert base["If"][0] == "HasDomain" and base["If"][1] == {"Sub": "https://${DomainName}"}
    urls = {name: o for name, o in template["Outputs"].items() if name.endswith(("WebhookUrl", "PostbackUrl"))}
    urls["HealthUrl"] = template["Outputs"]["HealthUrl"]
    assert len(urls) >= 8
    for name, output in urls.items():
        _, variables = output["Value"]["Sub"]
        assert variables == {"Base": base}, name
    assert template["Outputs"]["CustomDomainTarget"]["Condition"] == "HasDomain"
