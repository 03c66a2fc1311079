"""Each function's IAM permissions in template.yaml are exactly the calls its code makes: every call a
function's paths make (run against moto server, each request with the resource it names) is granted, and
every grant is used by some path. An exhausting path that cannot reach the dead-letter queue, or a sweep
that can read every key and signing secret, fails here."""

from __future__ import annotations

import fnmatch
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
import trustme
from aws_lambda_powertools.utilities import parameters

from postback_relay.runtime import reset_runtime
from postback_relay_dev.apigw import LocalContext
from postback_relay_dev.sandbox import TrafficStarsSandbox
from postback_relay_dev.template import load_template
from postback_relay_dev.worker import sqs_event
from tests.support.aws import Aws
from tests.support.constants import TEST_STRIPE_SECRET
from tests.support.helpers import Invoker, charge_refunded, checkout_session, stripe_event, stripe_signature
from tests.support.tenants import TENANT_SECRET_PREFIX, add_tenant

TENANT_STRIPE_SECRET = "whsec_acme_permissions"

# The template's grant of every tenant's secret: one prefix, so a tenant added needs no deploy.
TENANT_SECRETS_ARN = (
    "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:"
    "postback-relay/${AWS::StackName}/tenants/*"
)
Grant = tuple[str, str]  # (IAM action, possibly with a wildcard; the resource: table, index/due, secret, a queue)


def granted(function: str) -> set[Grant]:
    """The function's policies in the template, as (action, resource) pairs; a policy this test does not
    know how to read fails it, so a new kind of grant is pinned too."""
    grants: set[Grant] = set()
    for policy in load_template()["Resources"][function]["Properties"]["Policies"]:
        if "AWSSecretsManagerGetSecretValuePolicy" in policy:
            grants.add(("secretsmanager:GetSecretValue", "secret"))
        elif "SQSSendMessagePolicy" in policy:
            queue = policy["SQSSendMessagePolicy"]["QueueName"]["GetAtt"].split(".")[0]
            grants.add(("sqs:SendMessage*", queue))  # the action SAM's policy template grants
        elif "Statement" in policy:
            for statement in policy["Statement"]:
                assert statement["Effect"] == "Allow"
                resource = {
                    json.dumps({"GetAtt": "ConversionsTable.Arn"}): "table",
                    json.dumps({"Sub": "${ConversionsTable.Arn}/index/due"}): "index/due",
                    json.dumps({"Sub": TENANT_SECRETS_ARN}): "tenant-secret",
                }[json.dumps(statement["Resource"])]
                grants |= {(action, resource) for action in statement["Action"]}
        else:
            raise AssertionError(f"{function}: a policy this test cannot read: {policy}")
    return grants


def used(aws: Aws) -> set[Grant]:
    """The calls moto received, as (IAM action, resource)."""
    services = {"DynamoDB_20120810": "dynamodb", "AmazonSQS": "sqs", "secretsmanager": "secretsmanager"}
    queues = {aws.retry_url.rsplit("/", 1)[-1]: "RetryQueue", aws.dead_letter_url.rsplit("/", 1)[-1]: "DeadLetterQueue"}
    calls: set[Grant] = set()
    for target, resource in aws.server.requests:
        service, _, operation = target.partition(".")
        if resource in queues:
            kind = queues[resource]
        elif "/index/" in resource:
            kind = "index/" + resource.rsplit("/", 1)[-1]
        elif resource == aws.table_name:
            kind = "table"
        elif resource.startswith(TENANT_SECRET_PREFIX):
            kind = "tenant-secret"
        else:
            kind = "secret"
        calls.add((f"{services[service]}:{operation}", kind))
    return calls


def assert_exactly(function: str, calls: set[Grant]) -> None:
    grants = granted(function)
    ungranted = {c for c in calls if not any(r == c[1] and fnmatch.fnmatchcase(c[0], a) for a, r in grants)}
    unused = {g for g in grants if not any(r == g[1] and fnmatch.fnmatchcase(a, g[0]) for a, r in calls)}
    assert (ungranted, unused) == (set(), set()), f"{function}: calls not granted, grants not used"


def fresh_container(relay_env: pytest.MonkeyPatch, **env: str) -> None:
    """A new container: nothing cached, so its first secret read is seen."""
    for name, value in env.items():
        relay_env.setenv(name, value)
    parameters.clear_caches()
    reset_runtime()


def every_path(aws: Aws, steps: list[Callable[[], Any]]) -> set[Grant]:
    aws.server.requests.clear()
    for step in steps:
        step()
    return used(aws)


def purchase(pi: str) -> bytes:
    return stripe_event("checkout.session.completed", checkout_session(payment_intent=pi))


def add_acme(aws: Aws, sandbox: TrafficStarsSandbox) -> None:
    """Tenant `acme` (Stripe, its own secret and account), as `tenant add` writes it (the CLI's calls)."""
    secrets = {"trafficstars_key": "ts-acme-perm", "stripe_webhook_secret": TENANT_STRIPE_SECRET}
    add_tenant(aws, "acme", ("stripe",), {"TRAFFICSTARS_URL": sandbox.base_url}, secrets)
    sandbox.state.accounts["acme"] = secrets["trafficstars_key"]


def tenant_purchase(invoke: Invoker, pi: str) -> Any:
    body = purchase(pi)
    headers = {"Stripe-Signature": stripe_signature(body, TENANT_STRIPE_SECRET)}
    return invoke(body, headers, path="/webhooks/acme/stripe")


def test_the_webhook_function_may_record_send_queue_and_dead_letter_and_nothing_else(
    invoke: Invoker, relay_env: pytest.MonkeyPatch, aws: Aws, sandbox: TrafficStarsSandbox
) -> None:
    def outage() -> None:
        sandbox.state.fault = lambda r: (503, "")

    add_acme(aws, sandbox)

    calls = every_path(
        aws,
        [
            lambda: invoke.stripe(purchase("pi_sent"), TEST_STRIPE_SECRET),  # secret, record, finish
            lambda: invoke.stripe(purchase("pi_sent"), TEST_STRIPE_SECRET),  # duplicate
            lambda: invoke.stripe(  # a refund: the aliases of the ids it names, then the reversal
                stripe_event("charge.refunded", charge_refunded(pi="pi_sent")), TEST_STRIPE_SECRET
            ),
            outage,
            lambda: invoke.stripe(purchase("pi_queued"), TEST_STRIPE_SECRET),  # retry queue
            lambda: fresh_container(relay_env, RETRY_WINDOW_SECONDS="1", RETRY_BASE_DELAY_SECONDS="30"),
            lambda: invoke.stripe(purchase("pi_exhausted"), TEST_STRIPE_SECRET),  # dead-letter queue
            lambda: fresh_container(relay_env, TENANT_SECRET_PREFIX=TENANT_SECRET_PREFIX),
            lambda: tenant_purchase(invoke, "pi_tenant"),  # the tenant's configuration and its own secret
        ],
    )
    assert aws.record("acme/stripe#pi_tenant") is not None
    assert aws.record("stripe#pi_exhausted")["status"] == "failed"  # type: ignore[index]
    assert_exactly("WebhookFunction", calls)


def test_the_retry_function_may_claim_send_requeue_and_dead_letter_and_nothing_else(
    invoke: Invoker, relay_env: pytest.MonkeyPatch, aws: Aws, sandbox: TrafficStarsSandbox
) -> None:
    from postback_relay.handlers.retry import retry_handler

    sandbox.state.fault = lambda r: (503, "")
    relay_env.setenv("RETRY_BASE_DELAY_SECONDS", "0.01")
    relay_env.setenv("RETRY_MAX_DELAY_SECONDS", "0.02")
    add_acme(aws, sandbox)
    fresh_container(relay_env, TENANT_SECRET_PREFIX=TENANT_SECRET_PREFIX)
    invoke.stripe(purchase("pi_retry"), TEST_STRIPE_SECRET)
    invoke.stripe(purchase("pi_late"), TEST_STRIPE_SECRET)
    tenant_purchase(invoke, "pi_tenant_retry")

    def retry(pi: str, scope: str = "stripe") -> None:
        body = json.dumps({"conversion_id": f"{scope}#{pi}"})
        message = {"MessageId": pi, "ReceiptHandle": pi, "Body": body}
        retry_handler(sqs_event([message], "arn:aws:sqs:us-east-1:123456789012:retry"), LocalContext())

    time.sleep(0.05)
    calls = every_path(
        aws,
        [
            lambda: fresh_container(relay_env),
            lambda: retry("pi_retry"),  # secret, claim, finish, re-queue
            lambda: fresh_container(relay_env, RETRY_WINDOW_SECONDS="1"),
            lambda: time.sleep(1.1),
            lambda: retry("pi_late"),  # dead-letter queue
            lambda: retry("pi_tenant_retry", "acme/stripe"),  # the tenant's configuration and its own secret
        ],
    )
    assert aws.record("stripe#pi_late")["status"] == "failed"  # type: ignore[index]
    assert_exactly("RetryFunction", calls)


def test_the_sweep_function_may_read_the_due_index_and_queue_and_nothing_else(
    invoke: Invoker, relay_env: pytest.MonkeyPatch, aws: Aws, sandbox: TrafficStarsSandbox
) -> None:
    from postback_relay.handlers.retry import sweep_handler

    sandbox.state.fault = lambda r: (503, "")
    fresh_container(relay_env, RETRY_BASE_DELAY_SECONDS="0.01", RETRY_MAX_DELAY_SECONDS="0.02")
    invoke.stripe(purchase("pi_stranded"), TEST_STRIPE_SECRET)
    fresh_container(relay_env, SWEEP_GRACE_SECONDS="0")
    time.sleep(0.05)
    calls = every_path(aws, [lambda: sweep_handler({}, LocalContext(function_name="SweepFunction", timeout_s=60))])
    assert ("sqs:SendMessageBatch", "RetryQueue") in calls
    assert_exactly("SweepFunction", calls)


def test_the_reconcile_function_may_read_and_record_purchases_queue_and_keep_its_place_and_nothing_else(
    relay_env: pytest.MonkeyPatch, aws: Aws, sandbox: TrafficStarsSandbox, authority: trustme.CA
) -> None:
    from postback_relay.handlers.reconcile import reconcile_handler
    from tests.integration.test_reconcile import purchase_event
    from tests.support.stripe_api import API_KEY, StripeApi

    stripe_api = StripeApi(authority).start()
    try:
        relay_env.setenv("STRIPE_API_BASE", stripe_api.base_url)
        secrets = {"trafficstars_key": "ts-acme-perm", "stripe_webhook_secret": TENANT_STRIPE_SECRET}
        add_tenant(
            aws, "acme", ("stripe",), {"TRAFFICSTARS_URL": sandbox.base_url}, {**secrets, "stripe_api_key": API_KEY}
        )
        sandbox.state.accounts["acme"] = secrets["trafficstars_key"]
        default = json.loads(aws.secretsmanager.get_secret_value(SecretId=aws.secret_id)["SecretString"])
        aws.put_secret({**default, "stripe_api_key": API_KEY})
        start = time.time() - 1800
        refund = json.loads(stripe_event("charge.refunded", charge_refunded(pi="pi_00000")))
        refund["created"] = int(start + 100)
        stripe_api.state.events.extend([purchase_event(0, start), purchase_event(1, start + 1), refund])

        def run() -> None:
            reconcile_handler({}, LocalContext(function_name="ReconcileFunction", timeout_s=900))

        def outage() -> None:
            sandbox.state.fault = lambda r: (503, "")
            stripe_api.state.events.append(purchase_event(2, time.time() - 1000))

        def exhausted() -> None:
            stripe_api.state.events.append(purchase_event(3, time.time() - 1000))

        calls = every_path(
            aws,
            [
                lambda: fresh_container(relay_env, TENANT_SECRET_PREFIX=TENANT_SECRET_PREFIX),
                run,  # both tenants: the state item, a refund's aliases, records, sends, their own secrets
                outage,
                run,  # retry queue
                lambda: fresh_container(relay_env, RETRY_WINDOW_SECONDS="1", RETRY_BASE_DELAY_SECONDS="30"),
                exhausted,
                run,  # dead-letter queue
            ],
        )
    finally:
        stripe_api.stop()
    assert aws.record("acme/stripe#pi_00001") is not None and aws.record("stripe#pi_00001") is not None
    assert aws.record("stripe#pi_00000")["status"] == "refunded"  # type: ignore[index]
    assert ("dynamodb:BatchGetItem", "table") in calls and ("sqs:SendMessage", "DeadLetterQueue") in calls
    assert_exactly("ReconcileFunction", calls)
