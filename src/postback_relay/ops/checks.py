"""`postback-relay check`: is a deployment able to relay? Each check reads one thing (the secret, the table,
the retry and dead-letter queues, the TrafficStars URL, the stack's settings, the health URL, the alarm topic)
and says OK, WARN or FAIL, with the fix for anything not OK."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from postback_relay.aws.errors import error_code
from postback_relay.aws.reads import CLICK_ID_INDEX
from postback_relay.aws.secrets import RelaySecrets, SecretKeyMissing
from postback_relay.env import SettingsError
from postback_relay.networks.trafficstars import KEY_FIELD as TRAFFICSTARS_KEY
from postback_relay.networks.trafficstars import checked_url
from postback_relay.ops.deployment import SECRET_JSON_EXAMPLE, Deployment, OperatorError
from postback_relay.platforms import ROUTED
from postback_relay.settings import ALL_VARIABLES, Settings

Level = Literal["OK", "WARN", "FAIL"]


@dataclass(frozen=True)
class Check:
    """One verdict: what was checked, what was found and, unless OK, how to fix it."""

    name: str
    level: Level
    detail: str
    fix: str = ""


def run(deployment: Deployment, required_sources: Iterable[str] = ()) -> list[Check]:
    """Every check, in the order an operator would fix things."""
    return [
        *secret_checks(deployment, set(required_sources)),
        table_check(deployment),
        *queue_checks(deployment),
        trafficstars_url_check(deployment.trafficstars_url, deployment.local),
        *([] if deployment.local else [settings_check(deployment.parameters)]),
        health_check(deployment),
        *alarm_checks(deployment),
        *reconcile_checks(deployment),
    ]


def secret_checks(deployment: Deployment, required_sources: set[str]) -> list[Check]:
    """The secret exists, is JSON, and holds the TrafficStars key and each routed source's signing secret."""
    try:
        secrets = deployment.secrets()
    except OperatorError as exc:
        return [Check("secret", "FAIL", exc.problem, exc.fix)]
    return judge_secret(secrets, deployment.secret_id, deployment.sources, required_sources)


def judge_secret(
    secrets: RelaySecrets, secret_id: str, routed: Iterable[str], required_sources: set[str]
) -> list[Check]:
    """Checks of the secret's keys (never its values)."""
    put = f"aws secretsmanager put-secret-value --secret-id {secret_id} --secret-string '{SECRET_JSON_EXAMPLE}'"
    paste = (
        "Secrets Manager console > Secrets > the stack's secret (output SecretArn) > Retrieve secret value > Edit: "
        "replace the PLACEHOLDER value"
    )
    placeholders = set(secrets.placeholders())
    checks: list[Check] = []
    try:
        secrets.value(TRAFFICSTARS_KEY)
        checks.append(Check("secret", "OK", f"{TRAFFICSTARS_KEY} is set"))
    except SecretKeyMissing:
        if TRAFFICSTARS_KEY in placeholders:
            detail = f"{TRAFFICSTARS_KEY} is still the stack's placeholder: every postback waits as retry_pending"
            checks.append(Check("secret", "FAIL", detail, f"{paste} with the S2S key from TrafficStars"))
        else:
            checks.append(
                Check(
                    "secret",
                    "FAIL",
                    f"the secret has no {TRAFFICSTARS_KEY}: every postback waits as retry_pending",
                    f"add it (write the whole JSON, keeping the other keys): {put}",
                )
            )
    configured = 0
    for name in routed:
        field = ROUTED[name].secret_field
        if secrets.signing_secrets(field):
            configured += 1
            checks.append(Check(f"source {name}", "OK", f"{field} is set"))
            continue
        level: Level = "FAIL" if name in required_sources else "WARN"
        if field in placeholders:
            detail = f"{field} is still the placeholder: {name} webhooks are answered 404 source_not_configured"
            checks.append(Check(f"source {name}", level, detail, f"if you use {name}: {paste}"))
            continue
        detail = f"{field} is not in the secret: {name} webhooks are answered 404 source_not_configured"
        checks.append(Check(f"source {name}", level, detail, f"if you use {name}, add {field}: {put}"))
    if configured == 0:
        checks.append(Check("sources", "FAIL", "no source has its signing secret: every webhook is refused", f"{put}"))
    return checks


def reconcile_checks(deployment: Deployment) -> list[Check]:
    """Each platform whose read-only reconcile key is in the secret: one cheap read with it (README,
    Reconciliation). A platform without one is not reconciled, which is no fault: nothing is said of it."""
    import time

    from botocore.exceptions import ClientError

    from postback_relay.ops.deployment import relay_environment
    from postback_relay.reconcile.api import ApiError, CredentialsRefused
    from postback_relay.relay.reconciling import PLATFORMS, NotReconcilable, listing_for

    try:
        secrets = deployment.secrets()
        settings = Settings.from_env(relay_environment(deployment))
    except (OperatorError, SettingsError, ClientError):
        return []  # the secret's and the settings' own checks say why
    checks: list[Check] = []
    for name, platform in PLATFORMS.items():
        fields = platform.fields
        if not any(secrets.has(field) for field in fields):
            continue
        try:
            listing_for(settings, secrets.value, name, time.time()).probe()
        except NotReconcilable as exc:
            checks.append(Check(f"reconcile {name}", "FAIL", str(exc), "README: Reconciliation"))
        except CredentialsRefused as exc:
            fix = f"create a new read-only key and put it in the secret as {fields[0]} (README: Reconciliation)"
            checks.append(Check(f"reconcile {name}", "FAIL", f"the API refused the key: {exc}", fix))
        except ApiError as exc:
            checks.append(Check(f"reconcile {name}", "WARN", f"the API could not be read: {exc}", "try again later"))
        else:
            checks.append(Check(f"reconcile {name}", "OK", f"{' and '.join(fields)} read the API"))
    return checks


def table_check(deployment: Deployment) -> Check:
    """The table exists and is ACTIVE, and so is the click-id index `status CLICK_ID` reads."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        table = deployment.client("dynamodb").describe_table(TableName=deployment.table_name)["Table"]
    except ClientError as exc:
        return Check(
            "table",
            "FAIL",
            f"{deployment.table_name}: {error_code(exc)}",
            "check --stack/--region, and that your credentials may call dynamodb:DescribeTable",
        )
    except BotoCoreError as exc:
        return Check("table", "FAIL", f"{deployment.table_name}: {exc}", "check the network, --region or --local")
    status = table.get("TableStatus")
    if status != "ACTIVE":
        return Check("table", "WARN", f"{deployment.table_name} is {status}", "wait for ACTIVE (an update is running)")
    indexes = {i["IndexName"]: i.get("IndexStatus") for i in table.get("GlobalSecondaryIndexes", [])}
    if indexes.get(CLICK_ID_INDEX) != "ACTIVE":
        found = indexes.get(CLICK_ID_INDEX, "missing")
        return Check(
            "table",
            "WARN",
            f"{deployment.table_name} is ACTIVE; its {CLICK_ID_INDEX} index is {found}",
            "`status CLICK_ID` needs it: deploy this version (sam deploy); while it builds, look up by purchase id",
        )
    return Check("table", "OK", f"{deployment.table_name} is ACTIVE, with its {CLICK_ID_INDEX} index")


def queue_checks(deployment: Deployment) -> list[Check]:
    """The retry queue is reachable (how much waits in it), and the dead-letter queue is empty."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        retry_url, dead_letter_url = deployment.queue_urls()
    except OperatorError as exc:
        return [Check("queues", "FAIL", exc.problem, exc.fix)]
    except (ClientError, BotoCoreError) as exc:
        return [Check("queues", "FAIL", f"the local run's queues: {exc}", "start it with `make run`")]
    sqs = deployment.client("sqs")
    depths: dict[str, dict[str, int]] = {}
    for name, url in (("retry queue", retry_url), ("dead letters", dead_letter_url)):
        try:
            attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=list(_QUEUE_COUNTS))["Attributes"]
        except (ClientError, BotoCoreError) as exc:
            fix = "check --stack/--region, and that your credentials may call sqs:GetQueueAttributes"
            return [Check("queues", "FAIL", f"{url}: {exc}", fix)]
        depths[name] = {label: int(attributes.get(attribute, 0)) for attribute, label in _QUEUE_COUNTS.items()}
    waiting = depths["retry queue"]
    checks = [
        Check(
            "queues",
            "OK",
            "retry queue reachable: " + ", ".join(f"{count} {label}" for label, count in waiting.items()),
        )
    ]
    parked = sum(depths["dead letters"].values())
    if parked:
        checks.append(
            Check(
                "dead-letters",
                "WARN",
                f"{parked} conversion(s) exhausted their retries and wait in the dead-letter queue",
                "see why with `postback-relay recent --status failed`; once fixed, `postback-relay replay dlq` "
                "(try --dry-run first)",
            )
        )
    else:
        checks.append(Check("dead-letters", "OK", "the dead-letter queue is empty"))
    return checks


_QUEUE_COUNTS = {
    "ApproximateNumberOfMessages": "waiting",
    "ApproximateNumberOfMessagesDelayed": "delayed (backoff)",
    "ApproximateNumberOfMessagesNotVisible": "in flight",
}


def trafficstars_url_check(url: str, local: bool) -> Check:
    """The relay's own rule (networks/trafficstars.py): HTTPS, or plain HTTP on loopback for the local run only."""
    try:
        checked_url(url, local)
    except SettingsError as exc:
        return Check("trafficstars", "FAIL", f"{url}: {exc}", "deploy with TrafficStarsUrl=https://…")
    return Check("trafficstars", "OK", f"{url} ({url.split(':', 1)[0]})")


# Every setting the stack passes its functions from a parameter (template.yaml, Globals: Environment), by
# environment variable: the settings table's parameter column (SECRET_ID aside: the stack's own secret unless
# SecretArn names one), and powertools' log level. tests/unit/test_checks_settings.py holds this equal to the template.
STACK_SETTINGS = {
    **{v.name: v.parameter for v in ALL_VARIABLES if v.parameter and v.name != "SECRET_ID"},
    "POWERTOOLS_LOG_LEVEL": "LogLevel",
}


def settings_check(parameters: Mapping[str, str]) -> Check:
    """The stack's parameters, as the functions will read them, through the relay's own validation
    (settings.py): a setting the parameter constraints let through (a bad FxRates rate, a price in the path form)
    fails here instead of at the next cold start, which would answer every webhook 5xx."""
    env = {"SECRET_ID": "-", "TABLE_NAME": "-", "LOCAL_MODE": "false"}
    env.update({variable: parameters[name] for variable, name in STACK_SETTINGS.items() if name in parameters})
    try:
        Settings.from_env(env)
    except SettingsError as exc:
        message = str(exc)
        # The parameters the message names, first named first (TRAFFICSTARS_URL is not TRAFFICSTARS_URL_FORM).
        found = {
            m.start(): STACK_SETTINGS[m.group()]
            for m in re.finditer(r"\b[A-Z_]+\b", message)
            if m.group() in STACK_SETTINGS
        }
        named = list(dict.fromkeys(found[position] for position in sorted(found)))
        where = f" (parameter {', '.join(named)})" if named else ""
        fix = "deploy again with a valid value: sam deploy --parameter-overrides " + (
            f"{named[0]}=..." if named else "Name=..."
        )
        return Check("settings", "FAIL", f"{message}{where}: every function fails at start", fix)
    given = sum(name in parameters for name in STACK_SETTINGS.values())
    return Check("settings", "OK", f"the stack's {given} settings are valid")


def health_check(deployment: Deployment, timeout: float = 5.0) -> Check:
    """GET the health URL: the API, its route and the function answer (a deleted API, a wrong custom domain,
    a function that fails at start all show here)."""
    import requests

    url = deployment.outputs.get("HealthUrl") or (
        f"{deployment.api_base_url.rstrip('/')}/health" if deployment.api_base_url else None
    )
    if not url:
        return Check(
            "health", "FAIL", f"{deployment.label} has no HealthUrl or ApiBaseUrl output", "deploy this version"
        )
    try:
        response = requests.get(url, timeout=timeout, allow_redirects=False)
    except requests.RequestException as exc:
        fix = "start it with `make run`" if deployment.local else "check DNS for a custom domain, and the stack's API"
        return Check("health", "FAIL", f"GET {url}: {type(exc).__name__}", fix)
    try:
        answer = response.json()
    except ValueError:
        answer = None
    if response.status_code == 200 and isinstance(answer, dict) and answer.get("status") == "ok":
        return Check("health", "OK", f"GET {url} -> 200 ok")
    return Check(
        "health",
        "FAIL",
        f"GET {url} -> {response.status_code} {response.text[:80]!r}",
        "read the webhook function's log group for errors at start (a bad setting, a missing permission)",
    )


def alarm_checks(deployment: Deployment) -> list[Check]:
    """The stack's alarms notify its topic, and the topic has a confirmed subscriber."""
    if deployment.local:
        return [Check("alarms", "OK", "not part of the local run (CloudWatch alarms exist only when deployed)")]
    if not deployment.alarm_topic_arn:
        return [
            Check(
                "alarms",
                "FAIL",
                f"{deployment.label} has no AlarmTopicArn output: it predates alarms",
                "deploy this version (sam build && sam deploy), with AlarmEmail=you@example.com",
            )
        ]
    sns = deployment.client("sns")
    subscriptions = [
        s
        for page in sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=deployment.alarm_topic_arn)
        for s in page.get("Subscriptions", [])
    ]
    cloudwatch = deployment.client("cloudwatch")
    alarms = [
        a
        for page in cloudwatch.get_paginator("describe_alarms").paginate(AlarmNamePrefix=f"{deployment.stack_name}-")
        for a in page.get("MetricAlarms", [])
    ]
    return [
        judge_subscriptions(subscriptions, deployment.alarm_topic_arn),
        judge_alarms(alarms, deployment.alarm_topic_arn),
    ]


def judge_subscriptions(subscriptions: list[Mapping[str, Any]], topic_arn: str) -> Check:
    """OK with at least one confirmed subscriber; pending e-mail confirmations are named."""
    confirmed = [s for s in subscriptions if str(s.get("SubscriptionArn", "")).startswith("arn:")]
    pending = [s for s in subscriptions if s.get("SubscriptionArn") == "PendingConfirmation"]
    if confirmed:
        who = ", ".join(f"{s.get('Protocol')}:{s.get('Endpoint')}" for s in confirmed)
        return Check("alarm topic", "OK", f"{len(confirmed)} confirmed subscriber(s): {who}")
    if pending:
        who = ", ".join(str(s.get("Endpoint")) for s in pending)
        return Check(
            "alarm topic",
            "FAIL",
            f"the subscription of {who} is not confirmed: alarms reach nobody",
            "click the link in the e-mail from AWS Notifications (look in spam); it expires after 3 days, then "
            "deploy again or `aws sns subscribe` to get a new one",
        )
    return Check(
        "alarm topic",
        "FAIL",
        "nobody is subscribed to the alarm topic: alarms reach nobody",
        f"deploy with --parameter-overrides AlarmEmail=you@example.com, or `aws sns subscribe --topic-arn "
        f"{topic_arn} --protocol email --notification-endpoint you@example.com`",
    )


def judge_alarms(alarms: list[Mapping[str, Any]], topic_arn: str) -> Check:
    """Every alarm of the stack notifies the topic; the ones in ALARM now are named."""
    if not alarms:
        return Check("alarms", "FAIL", "the stack has no alarms", "deploy this version (sam deploy)")
    silent = [str(a["AlarmName"]) for a in alarms if topic_arn not in a.get("AlarmActions", [])]
    if silent:
        return Check(
            "alarms",
            "FAIL",
            f"not sent to the alarm topic: {', '.join(silent)}",
            "deploy this version (sam deploy): its alarms all notify AlarmTopic",
        )
    firing = [str(a["AlarmName"]) for a in alarms if a.get("StateValue") == "ALARM"]
    if firing:
        return Check(
            "alarms",
            "WARN",
            f"{len(alarms)} alarms notify the topic; in ALARM now: {', '.join(firing)}",
            "read each alarm's description (CloudWatch console or the dashboard) for what it means",
        )
    return Check("alarms", "OK", f"{len(alarms)} alarms notify the topic, none in ALARM")
