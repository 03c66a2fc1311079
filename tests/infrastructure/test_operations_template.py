"""template.yaml's operations half (issue 6): the alarm topic, the alarms, the dashboard, access logs and the
click-id index. cfn-lint and sam validate --lint check the syntax in `make test`; this checks the meaning:
every alarm watches a metric the code really emits, under the names the code uses."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from postback_relay.handlers import telemetry
from postback_relay_dev.template import load_template

ALARMS = (
    "InvalidKeyAlarm",
    "RejectionRateAlarm",
    "PostbacksSilentAlarm",
    "WebhookErrorsAlarm",
    "WebhookThrottlesAlarm",
    "Api5xxAlarm",
    "DeadLetterQueueNotEmptyAlarm",
    "RetryQueueAgeAlarm",
    "RetryErrorsAlarm",
    "SweepErrorsAlarm",
    "ReconcileRecoveredAlarm",
    "ReconcileCredentialsAlarm",
    "ReconcileErrorsAlarm",
)


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


def resources(template: dict[str, Any], kind: str) -> dict[str, Any]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == kind}


def metric_stats(alarm: dict[str, Any]) -> list[dict[str, Any]]:
    """Each metric an alarm reads: the plain form, or every MetricStat of a metric-math alarm."""
    if "MetricName" in alarm:
        return [{"Namespace": alarm["Namespace"], "MetricName": alarm["MetricName"], "Dimensions": alarm["Dimensions"]}]
    return [query["MetricStat"]["Metric"] for query in alarm["Metrics"] if "MetricStat" in query]


def dimensions(metric: dict[str, Any]) -> dict[str, Any]:
    return {d["Name"]: d["Value"] for d in metric.get("Dimensions", [])}


def test_the_alarm_topic_mails_the_address_given_at_deploy_time(template: dict[str, Any]) -> None:
    [topic] = resources(template, "AWS::SNS::Topic")
    assert topic == "AlarmTopic"
    [subscription] = resources(template, "AWS::SNS::Subscription").values()
    assert subscription["Condition"] == "HasAlarmEmail"
    assert subscription["Properties"] == {
        "TopicArn": {"Ref": "AlarmTopic"},
        "Protocol": "email",
        "Endpoint": {"Ref": "AlarmEmail"},
    }
    assert template["Parameters"]["AlarmEmail"]["Default"] == ""
    assert re.fullmatch(template["Parameters"]["AlarmEmail"]["AllowedPattern"], "ops@example.com")
    assert template["Outputs"]["AlarmTopicArn"]["Value"] == {"Ref": "AlarmTopic"}


def test_every_alarm_the_issue_asks_for_exists(template: dict[str, Any]) -> None:
    assert set(ALARMS) <= set(resources(template, "AWS::CloudWatch::Alarm"))


def test_every_alarm_of_the_template_notifies_the_topic_and_says_what_to_do(template: dict[str, Any]) -> None:
    """Every alarm, whoever adds it: an alarm that notifies nobody is not an alarm, and `check` finds a
    stack's alarms by their `<stack>-` names."""
    for name, alarm in resources(template, "AWS::CloudWatch::Alarm").items():
        properties = alarm["Properties"]
        assert properties.get("AlarmActions") == [{"Ref": "AlarmTopic"}], f"{name} notifies nobody"
        assert properties.get("OKActions") == [{"Ref": "AlarmTopic"}], f"{name} never says it recovered"
        assert properties.get("TreatMissingData") == "notBreaching", name
        alarm_name = properties.get("AlarmName", {})
        assert isinstance(alarm_name, dict) and alarm_name["Sub"].startswith("${AWS::StackName}-"), name
        description = properties.get("AlarmDescription", "")
        text = description.get("Sub", "") if isinstance(description, dict) else description
        assert len(text) > 40, f"{name}: the description should say what happened and what to do"


def test_custom_metric_alarms_read_what_the_code_emits(template: dict[str, Any]) -> None:
    namespace = template["Globals"]["Function"]["Environment"]["Variables"]["POWERTOOLS_METRICS_NAMESPACE"]
    service = template["Globals"]["Function"]["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"]
    assert service == {"Ref": "AWS::StackName"}
    emitted = {
        telemetry.WEBHOOKS,
        telemetry.POSTBACKS,
        telemetry.POSTBACK_REJECTED,
        telemetry.RECONCILE_RECOVERED,
        telemetry.RECONCILE_ERRORS,
        telemetry.RECONCILE_REFUSED,
    }
    alarms = resources(template, "AWS::CloudWatch::Alarm")
    custom = [m for name in ALARMS for m in metric_stats(alarms[name]["Properties"]) if m["Namespace"] == namespace]
    assert custom
    for metric in custom:
        assert metric["MetricName"] in emitted
        dims = dimensions(metric)
        assert dims["service"] == service
        assert set(dims) <= {"service", "outcome", "reason"}  # the roll-ups telemetry publishes


def test_the_invalid_key_alarm_fires_on_one_rejection(template: dict[str, Any]) -> None:
    alarm = template["Resources"]["InvalidKeyAlarm"]["Properties"]
    assert (alarm["MetricName"], dimensions(alarm)["reason"]) == (telemetry.POSTBACK_REJECTED, "invalid_key")
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (1, "GreaterThanOrEqualToThreshold")


def test_the_rejection_rate_alarm_uses_its_parameters(template: dict[str, Any]) -> None:
    alarm = template["Resources"]["RejectionRateAlarm"]["Properties"]
    assert alarm["Threshold"] == {"Ref": "RejectionRateThresholdPercent"}
    [expression] = [q for q in alarm["Metrics"] if "Expression" in q]
    assert expression["ReturnData"] is True
    assert "${RejectionRateMinPostbacks}" in expression["Expression"]["Sub"]
    outcomes = {dimensions(m)["outcome"] for m in metric_stats(alarm)}
    assert outcomes == {"sent", "rejected"}


def test_the_silent_alarm_compares_webhooks_arriving_with_postbacks_sent(template: dict[str, Any]) -> None:
    alarm = template["Resources"]["PostbacksSilentAlarm"]["Properties"]
    queries = {q["Id"]: q for q in alarm["Metrics"]}
    webhooks = queries["webhooks"]["MetricStat"]
    sent = queries["sent"]["MetricStat"]
    assert webhooks["Metric"]["MetricName"] == telemetry.WEBHOOKS and set(dimensions(webhooks["Metric"])) == {"service"}
    assert dimensions(sent["Metric"])["outcome"] == "sent"
    assert webhooks["Period"] == sent["Period"] == {"Ref": "SilentPeriodSeconds"}
    expression = queries["silent"]["Expression"]["Sub"]
    assert "${SilentMinWebhooks}" in expression and "FILL(sent, 0) == 0" in expression


def test_aws_metric_alarms_watch_the_function_and_the_api(template: dict[str, Any]) -> None:
    alarms = template["Resources"]
    for name, metric in (("WebhookErrorsAlarm", "Errors"), ("WebhookThrottlesAlarm", "Throttles")):
        properties = alarms[name]["Properties"]
        assert (properties["Namespace"], properties["MetricName"]) == ("AWS/Lambda", metric)
        assert dimensions(properties) == {"FunctionName": {"Ref": "WebhookFunction"}}
    api = alarms["Api5xxAlarm"]["Properties"]
    assert (api["Namespace"], api["MetricName"]) == ("AWS/ApiGateway", "5xx")  # HTTP APIs' name for it
    assert dimensions(api) == {"ApiId": {"Ref": "HttpApi"}}


def dashboard_body(template: dict[str, Any]) -> dict[str, Any]:
    """The dashboard JSON with !Sub references filled in, as CloudFormation would."""
    raw = template["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Sub"]
    filled = re.sub(r"\$\{([A-Za-z0-9:.]+)\}", lambda m: f"sub-{m.group(1).replace(':', '-')}", raw)
    body: dict[str, Any] = json.loads(filled)
    return body


def test_the_dashboard_shows_conversions_latency_and_value(template: dict[str, Any]) -> None:
    body = dashboard_body(template)
    widgets = body["widgets"]
    text = json.dumps(widgets)
    titles = [w["properties"].get("title", "") for w in widgets]
    assert any("by source and outcome" in t for t in titles)
    assert 'MetricName=\\"Webhooks\\"' in text and "{PostbackRelay,outcome,service,source}" in text
    [latency] = [w for w in widgets if w["properties"].get("title", "").startswith("Postback latency")]
    stats = [m[-1]["stat"] for m in latency["properties"]["metrics"]]
    assert {"p50", "p90", "p99"} <= set(stats)
    assert latency["properties"]["metrics"][0][:2] == ["PostbackRelay", telemetry.POSTBACK_LATENCY]
    assert any(w["properties"].get("title", "").startswith("Value sent") for w in widgets)
    [alarms] = [w for w in widgets if w["type"] == "alarm"]
    assert {f"sub-{name}.Arn" for name in ALARMS} <= set(alarms["properties"]["alarms"])
    for widget in widgets:  # CloudWatch rejects overlapping or out-of-grid widgets
        assert widget["x"] + widget["width"] <= 24


def test_the_dashboard_uses_only_metrics_the_code_emits(template: dict[str, Any]) -> None:
    text = json.dumps(dashboard_body(template))
    named = set(re.findall(r'MetricName=\\"(\w+)\\"', text))
    named |= {
        m[1]
        for w in dashboard_body(template)["widgets"]
        for m in w["properties"].get("metrics", [])
        if isinstance(m[0], str) and m[0] == "PostbackRelay"
    }
    known = {
        telemetry.WEBHOOKS,
        telemetry.POSTBACKS,
        telemetry.POSTBACK_REJECTED,
        telemetry.POSTBACK_LATENCY,
        telemetry.RETRIES,
        telemetry.VALUE_SENT,
        telemetry.COLD_START,
        telemetry.SWEPT,
        telemetry.RECONCILE_RECOVERED,
        telemetry.RECONCILE_ERRORS,
        telemetry.RECONCILE_REFUSED,
    }
    assert named and named <= known


def test_the_dashboard_shows_the_retry_queue_its_age_and_the_dead_letter_queue(template: dict[str, Any]) -> None:
    widgets = dashboard_body(template)["widgets"]
    [queue] = [w for w in widgets if w["properties"].get("title", "").startswith("Retry queue")]
    rows = queue["properties"]["metrics"]
    assert rows[0][:4] == ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", "sub-RetryQueue.QueueName"]
    assert "ApproximateAgeOfOldestMessage" in [row[1] for row in rows]
    [dead] = [w for w in widgets if w["properties"].get("title", "").startswith("Dead-letter queue")]
    assert dead["properties"]["metrics"][0][3] == "sub-DeadLetterQueue.QueueName"


def test_the_api_writes_json_access_logs_with_retention(template: dict[str, Any]) -> None:
    settings = template["Resources"]["HttpApi"]["Properties"]["AccessLogSettings"]
    assert settings["DestinationArn"] == {"GetAtt": "ApiAccessLogGroup.Arn"}
    entry = json.loads(settings["Format"])
    assert {"requestId", "integrationRequestId", "status", "routeKey"} <= set(entry)
    group = template["Resources"]["ApiAccessLogGroup"]["Properties"]
    assert group["RetentionInDays"] == {"Ref": "LogRetentionDays"}


def test_the_click_id_index_is_sparse_and_keys_only(template: dict[str, Any]) -> None:
    table = template["Resources"]["ConversionsTable"]["Properties"]
    [index] = [i for i in table["GlobalSecondaryIndexes"] if i["IndexName"] == "click_id"]
    assert index["Projection"] == {"ProjectionType": "KEYS_ONLY"}
    assert [k["AttributeName"] for k in index["KeySchema"]] == ["click_id", "received_at"]
    types = {a["AttributeName"]: a["AttributeType"] for a in table["AttributeDefinitions"]}
    assert types["click_id"] == types["received_at"] == "S"
