"""A tenant written as `postback-relay tenant add` writes one: its secret under the tests' prefix and its
configuration item in the table (tests/integration/test_tenants.py, test_permissions.py)."""

from __future__ import annotations

import time
import uuid
from typing import Any

from postback_relay.aws.tenants import TenantDirectory
from postback_relay.core.tenant import TenantConfig
from postback_relay_dev.resources import put_secret
from tests.support.aws import Aws

TENANT_SECRET_PREFIX = "postback-relay/test/tenants/"


def now_iso() -> str:
    """A fresh updated_at (unique, so a conditional save of the next version cannot match an older one)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + f".{uuid.uuid4().hex[:6]}Z"


def add_tenant(
    aws: Aws,
    name: str,
    sources: tuple[str, ...],
    settings: dict[str, str],
    secrets: dict[str, str],
    **extra: Any,
) -> TenantConfig:
    """Create the tenant's secret and save its configuration; returns the configuration."""
    put_secret(aws.secretsmanager, TENANT_SECRET_PREFIX + name, secrets)
    config = TenantConfig(name, frozenset(sources), settings, updated_at=now_iso(), **extra)
    TenantDirectory(aws.dynamodb, aws.table_name, 300).save(config, None)
    return config
