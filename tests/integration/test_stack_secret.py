"""The secret the stack creates (template.yaml, RelaySecret): a generated postback_token and a placeholder for
every other key. A placeholder counts as not configured: the source answers 404 source_not_configured, the
TrafficStars key is missing, and `check` names each key still to paste."""

from __future__ import annotations

import json
from typing import Any

import pytest

from postback_relay.aws.secrets import PLACEHOLDER_PREFIX, RelaySecrets, SecretKeyMissing
from postback_relay.networks.trafficstars import KEY_FIELD as TRAFFICSTARS_KEY
from postback_relay.ops import checks
from postback_relay.platforms import ROUTED
from postback_relay_dev.template import load_template
from tests.support.aws import Aws
from tests.support.constants import TEST_KEY, TEST_STRIPE_SECRET
from tests.support.helpers import Invoker, checkout_session, stripe_event

GENERATED_TOKEN = "k3J9x2mQ7vT1pL8wZ4nR6yB0cD5fH2gA9sE7uW1q"  # what GenerateSecretString makes: 40, no punctuation


@pytest.fixture(scope="module")
def secret_resource() -> dict[str, Any]:
    resource: dict[str, Any] = load_template()["Resources"]["RelaySecret"]
    return resource


def created_secret(secret_resource: dict[str, Any]) -> dict[str, str]:
    """The JSON Secrets Manager stores on create: the template, plus the generated key."""
    generate = secret_resource["Properties"]["GenerateSecretString"]
    values: dict[str, str] = json.loads(generate["SecretStringTemplate"])
    values[generate["GenerateStringKey"]] = GENERATED_TOKEN
    return values


def test_the_stack_makes_its_secret_unless_given_one_and_keeps_it(secret_resource: dict[str, Any]) -> None:
    template = load_template()
    assert secret_resource["Condition"] == "CreateSecret"
    assert template["Conditions"]["CreateSecret"] == {"Equals": [{"Ref": "SecretArn"}, ""]}
    assert template["Parameters"]["SecretArn"]["Default"] == ""
    assert (secret_resource["DeletionPolicy"], secret_resource["UpdateReplacePolicy"]) == ("Retain", "Retain")
    chosen = {"If": ["CreateSecret", {"Ref": "RelaySecret"}, {"Ref": "SecretArn"}]}
    assert template["Globals"]["Function"]["Environment"]["Variables"]["SECRET_ID"] == chosen
    assert template["Outputs"]["SecretArn"]["Value"] == chosen


def test_every_key_the_relay_reads_is_in_it_and_only_the_token_is_generated(secret_resource: dict[str, Any]) -> None:
    generate = secret_resource["Properties"]["GenerateSecretString"]
    assert generate["GenerateStringKey"] == "postback_token"
    assert generate["ExcludePunctuation"] is True and generate["PasswordLength"] >= 32
    values = created_secret(secret_resource)
    fields = {TRAFFICSTARS_KEY, *(source.secret_field for source in ROUTED.values())}
    assert set(values) == fields
    assert all(values[key].startswith(PLACEHOLDER_PREFIX) for key in fields - {"postback_token"})


def test_a_fresh_stack_secret_configures_only_the_tracker_route(secret_resource: dict[str, Any]) -> None:
    secrets = RelaySecrets(created_secret(secret_resource))
    with pytest.raises(SecretKeyMissing):
        secrets.value("trafficstars_key")
    configured = [name for name, source in ROUTED.items() if secrets.signing_secrets(source.secret_field)]
    assert configured == ["postback"]
    assert TRAFFICSTARS_KEY in secrets.placeholders() and "postback_token" not in secrets.placeholders()


def test_a_placeholder_in_a_rotation_list_is_skipped_and_a_list_of_only_placeholders_is_absent() -> None:
    secrets = RelaySecrets(
        {"stripe_webhook_secret": ["whsec_new", "PLACEHOLDER: old"], "shopify_webhook_secret": ["PLACEHOLDER: x"]}
    )
    assert secrets.signing_secrets("stripe_webhook_secret") == ["whsec_new"]
    assert secrets.signing_secrets("shopify_webhook_secret") == []
    assert secrets.placeholders() == ["shopify_webhook_secret"]


def test_a_source_whose_secret_is_a_placeholder_is_not_configured(invoke: Invoker, aws: Aws) -> None:
    placeholder = "PLACEHOLDER: paste whsec_... from Stripe, if you use Stripe"
    aws.put_secret({"trafficstars_key": TEST_KEY, "stripe_webhook_secret": placeholder})
    body = stripe_event("checkout.session.completed", checkout_session(payment_intent="pi_placeholder"))
    reply = invoke.stripe(body, placeholder)  # even signed with the placeholder's text itself
    assert (reply.status, reply.body["error"]) == (404, "source_not_configured")
    assert aws.items() == []


def test_check_names_each_placeholder_still_to_paste(secret_resource: dict[str, Any]) -> None:
    values = {**created_secret(secret_resource), "stripe_webhook_secret": TEST_STRIPE_SECRET}
    verdicts = {v.name: v for v in checks.judge_secret(RelaySecrets(values), "arn:secret", list(ROUTED), set())}
    key = verdicts["secret"]
    assert key.level == "FAIL" and "still the stack's placeholder" in key.detail and "Retrieve secret value" in key.fix
    assert verdicts["source stripe"].level == "OK"
    assert verdicts["source postback"].level == "OK"
    shopify = verdicts["source shopify"]
    assert shopify.level == "WARN" and "still the placeholder" in shopify.detail
