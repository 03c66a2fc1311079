"""The secret store: one Secrets Manager call per container until the max age, refetch on demand but
spaced, the last good value kept through an outage, and no value ever shown."""

from __future__ import annotations

import pytest
from aws_lambda_powertools.utilities.parameters import SecretsProvider

from postback_relay.aws.secrets import RelaySecrets, SecretKeyMissing, SecretStore, SecretUnavailable
from tests.support.aws import Aws
from tests.support.constants import TEST_KEY, TEST_STRIPE_SECRET


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_store(aws: Aws, clock: Clock, min_interval: float = 5.0, secret_id: str | None = None) -> SecretStore:
    provider = SecretsProvider(boto3_client=aws.secretsmanager)
    return SecretStore(secret_id or aws.secret_id, provider, 300, min_interval, clock)


def test_the_secret_is_fetched_once_and_then_served_from_memory(aws: Aws) -> None:
    store = make_store(aws, Clock())
    for _ in range(50):
        secrets = store.get()
    assert secrets.value("trafficstars_key") == TEST_KEY
    assert secrets.signing_secrets("stripe_webhook_secret") == [TEST_STRIPE_SECRET]
    assert aws.calls("GetSecretValue") == 1


def test_a_forced_refresh_sees_a_rotated_value_but_not_more_often_than_the_interval(aws: Aws) -> None:
    clock = Clock()
    store = make_store(aws, clock)
    store.get()
    aws.put_secret({"trafficstars_key": "rotated"})
    refreshed = store.refresh()
    assert refreshed is not None and refreshed.value("trafficstars_key") == "rotated"
    assert store.refresh() is None
    clock.now += 5
    assert store.refresh() is not None
    assert aws.calls("GetSecretValue") == 3


def test_an_outage_serves_the_last_good_value(aws: Aws) -> None:
    store = make_store(aws, Clock(), min_interval=0)
    store.get()
    aws.server.fault = lambda environ: True
    refreshed = store.refresh()
    assert refreshed is not None and refreshed.value("trafficstars_key") == TEST_KEY


def test_an_outage_with_nothing_cached_is_unavailable(aws: Aws) -> None:
    aws.server.fault = lambda environ: True
    with pytest.raises(SecretUnavailable):
        make_store(aws, Clock()).get()


def test_a_missing_secret_is_unavailable(aws: Aws) -> None:
    with pytest.raises(SecretUnavailable, match="cannot read secret"):
        make_store(aws, Clock(), secret_id="does/not/exist").get()


def test_a_secret_that_is_not_json_is_unavailable(aws: Aws) -> None:
    aws.secretsmanager.put_secret_value(SecretId=aws.secret_id, SecretString="just-a-key")
    with pytest.raises(SecretUnavailable, match="JSON"):
        make_store(aws, Clock()).get()


def test_values_never_show_in_repr_or_str() -> None:
    secrets = RelaySecrets({"trafficstars_key": TEST_KEY, "stripe_webhook_secret": [TEST_STRIPE_SECRET, "whsec_2"]})
    assert TEST_KEY not in repr(secrets) and TEST_KEY not in str(secrets) and TEST_KEY not in f"{secrets!r}"
    assert secrets.signing_secrets("stripe_webhook_secret") == [TEST_STRIPE_SECRET, "whsec_2"]
    assert set(secrets.values()) == {TEST_KEY, TEST_STRIPE_SECRET, "whsec_2"}


def test_a_missing_key_is_named() -> None:
    with pytest.raises(SecretKeyMissing, match="trafficstars_key"):
        _ = RelaySecrets({}).value("trafficstars_key")
    assert RelaySecrets({"stripe_webhook_secret": ""}).signing_secrets("stripe_webhook_secret") == []
