"""Composition root: settings validated at start, and the adapters built once per container."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from postback_relay.core.tenant import TenantConfig
from postback_relay.relay import Relay
from postback_relay.relay.tenants import Tenants
from postback_relay.settings import Settings

if TYPE_CHECKING:
    from postback_relay.aws.reconcile_state import ReconcileStates


class Runtime(NamedTuple):
    """Everything a request needs, created on first use and reused by every warm invocation."""

    settings: Settings
    relay: Relay  # the default tenant's
    tenants: Tenants  # every tenant's, the default's included
    reconcile_states: ReconcileStates  # the scheduled reconciliation's watermarks, cursors and leases


_lock = threading.Lock()
_settings: Settings | None = None
_runtime: Runtime | None = None


def load_settings() -> Settings:
    """Validate the environment once; raises SettingsError naming the bad setting."""
    global _settings
    if _settings is None:
        _settings = Settings.from_env()
    return _settings


def get_runtime() -> Runtime:
    """The container's runtime; AWS clients and the HTTP session are created on the first request."""
    global _runtime
    if _runtime is None:
        with _lock:
            if _runtime is None:
                _runtime = build_runtime(load_settings())
    return _runtime


def install_runtime(runtime: Runtime) -> None:
    """Use ``runtime`` for every later request (tests that build their own, with a clock of their own)."""
    global _settings, _runtime
    with _lock:
        _settings, _runtime = runtime.settings, runtime


def reset_runtime() -> None:
    """Forget settings and clients, so the next request reads the environment again (tests, local run)."""
    global _settings, _runtime
    with _lock:
        _settings, _runtime = None, None


def build_runtime(
    settings: Settings,
    clock: Callable[[], float] = time.time,
    sqs: Any = None,
    session: Any = None,
    endpoint_url: str | None = None,
) -> Runtime:
    """Wire the adapters: botocore retries bounded so a throttled dependency turns into a quick 5xx.
    ``clock`` and ``sqs`` are for tests that drive time and the queue themselves (the model-based test);
    ``session`` and ``endpoint_url`` for the operator CLI, which works with a deployment's own (`reconcile`)."""
    import boto3
    from aws_lambda_powertools.utilities.parameters import SecretsProvider
    from botocore.config import Config

    from postback_relay.aws.reconcile_state import ReconcileStates
    from postback_relay.aws.secrets import SecretStore
    from postback_relay.aws.store import ConversionStore
    from postback_relay.networks.trafficstars import TrafficStarsClient

    aws_config = Config(
        retries={"mode": "standard", "max_attempts": 3},
        connect_timeout=2,
        read_timeout=3,
        tcp_keepalive=True,
        parameter_validation=False,
    )
    session = session or boto3.session.Session()
    dynamodb = session.client("dynamodb", config=aws_config, endpoint_url=endpoint_url)
    secretsmanager = session.client("secretsmanager", config=aws_config, endpoint_url=endpoint_url)
    queue = None
    if settings.retry_queue_url:
        from postback_relay.aws.queue import RetryQueue

        queue = RetryQueue(
            sqs or session.client("sqs", config=aws_config, endpoint_url=endpoint_url),
            settings.retry_queue_url,
            settings.dead_letter_queue_url,
        )
    provider = SecretsProvider(boto3_client=secretsmanager)

    def secret(secret_id: str) -> SecretStore:
        return SecretStore(
            secret_id, provider, settings.secret_max_age_seconds, settings.secret_refresh_min_interval_seconds
        )

    store = ConversionStore(dynamodb, settings.table_name, settings.retention_days, clock)
    client = TrafficStarsClient.from_settings(settings.trafficstars)  # the network: the one selector
    relay = Relay(settings, secret(settings.secret_id), store, client, queue, clock)
    prefix = settings.tenant_secret_prefix

    def tenant_relay(config: TenantConfig) -> Relay:
        """A named tenant's relay: its settings, its secret, its own postback shape over the shared session."""
        own = settings.for_tenant(config.settings)
        own_client = TrafficStarsClient.from_settings(own.trafficstars, client)
        return Relay(own, secret(f"{prefix}{config.name}"), store, own_client, queue, clock, config.name)

    directory = None
    if prefix:
        from postback_relay.aws.tenants import TenantDirectory

        directory = TenantDirectory(dynamodb, settings.table_name, settings.secret_max_age_seconds)
    states = ReconcileStates(dynamodb, settings.table_name)
    return Runtime(settings, relay, Tenants(relay, directory, tenant_relay), states)
