"""What the operator does to a tenant beyond its configuration item (aws/tenants.py stores that): its secret
in Secrets Manager (created with placeholders, read only to say which keys are set, never printed), the URLs
each platform is given, the validation of its settings before anything is written, and `check --tenant`'s
verdicts. The commands (ops/cli/tenant.py, check.py) only parse options and print.

A tenant's secret is named ``deployment.tenant_secret_prefix + name`` and holds the same keys as the relay's
own: ``trafficstars_key`` and each of its sources' ``secret_field``. A value starting with PLACEHOLDER counts
as absent (aws/secrets.py), so a tenant added before its secrets are pasted is refused per source (404
source_not_configured) and its postbacks wait as retry_pending, instead of anything being signed or sent with
the placeholder's text."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

from postback_relay.aws.errors import error_code
from postback_relay.aws.secrets import RelaySecrets
from postback_relay.aws.tenants import TenantDirectory
from postback_relay.core.tenant import TenantConfig
from postback_relay.networks.trafficstars import KEY_FIELD as TRAFFICSTARS_KEY
from postback_relay.ops.checks import Check
from postback_relay.ops.deployment import Deployment, OperatorError
from postback_relay.platforms import POSTBACK_SOURCE, ROUTED, SHARED

KeyState = Literal["set", "placeholder", "missing"]
TOKEN_FIELD = POSTBACK_SOURCE.secret_field  # the tracker's ?token=, generated when not given
POSTBACK_ROUTE = "postback"  # the ROUTED name of GET /postback
STRIPE_CONNECT_ROUTE, SHOPIFY_APP_ROUTE = "_connect/stripe", "_app/shopify"
# The directory is read on every command: an operator's read must see the write before it, never a cache.
NO_CACHE = 0.0


def directory(deployment: Deployment) -> TenantDirectory:
    """The deployment's tenants, read uncached."""
    return TenantDirectory(deployment.client("dynamodb"), deployment.table_name, NO_CACHE)


def secret_name(deployment: Deployment, name: str) -> str:
    """The name of tenant ``name``'s secret; OperatorError for a stack deployed before tenants existed (it has no
    TenantSecretPrefix output, and its functions may read no tenant secret)."""
    if deployment.tenant_secret_prefix is None:
        raise OperatorError(
            f"{deployment.label} has no TenantSecretPrefix output: it was deployed before tenants existed, so its "
            "functions neither read a tenant's configuration nor may read a tenant's secret",
            "redeploy with this release (sam build && sam deploy), then run this again",
        )
    return f"{deployment.tenant_secret_prefix}{name}"


def secret_fields(sources: Iterable[str]) -> list[str]:
    """The keys a tenant selling through ``sources`` needs in its secret: the TrafficStars key first."""
    fields = [TRAFFICSTARS_KEY] + [ROUTED[source].secret_field for source in sorted(sources)]
    return list(dict.fromkeys(fields))


def placeholder(field: str) -> str:
    """The text a key holds until the operator pastes its value (never a value the relay would use)."""
    if field == TRAFFICSTARS_KEY:
        return "PLACEHOLDER: paste this tenant's S2S key from its TrafficStars account"
    owners = [name for name, source in ROUTED.items() if source.secret_field == field]
    return f"PLACEHOLDER: paste the signing secret from {', '.join(owners) or field}"


def initial_values(fields: Iterable[str], given: Mapping[str, Any]) -> dict[str, Any]:
    """A new secret's JSON: what ``given`` (the secrets file) holds, a generated postback token, a placeholder
    for the rest."""
    values: dict[str, Any] = {}
    for field in fields:
        if field in given:
            values[field] = given[field]
        elif field == TOKEN_FIELD:
            values[field] = secrets.token_urlsafe(32)
        else:
            values[field] = placeholder(field)
    return values


def read_secrets_file(path: str, allowed: Iterable[str]) -> dict[str, Any]:
    """The JSON object of ``path`` (secrets come from a file, never from the command line, where the shell's
    history and the process list would keep them): only the keys the tenant needs, each a string or a list of
    strings (a secret being rolled)."""
    allowed = list(allowed)
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        problem = f"--secrets-file {path}: {exc.strerror or type(exc).__name__}"
        raise OperatorError(problem, "pass a readable file") from None
    except ValueError:
        raise OperatorError(f"--secrets-file {path} is not JSON", _secrets_file_fix(allowed)) from None
    if not isinstance(document, dict):
        raise OperatorError(f"--secrets-file {path} is not a JSON object", _secrets_file_fix(allowed))
    unknown = sorted(set(document) - set(allowed))
    if unknown:
        raise OperatorError(
            f"--secrets-file {path}: {', '.join(unknown)} is not a key this tenant's sources use",
            _secrets_file_fix(allowed),
        )
    for key, value in document.items():
        strings = value if isinstance(value, list) else [value]
        if not strings or not all(isinstance(item, str) and item for item in strings):
            raise OperatorError(
                f"--secrets-file {path}: {key} must be a non-empty string (or a list of them)",
                _secrets_file_fix(allowed),
            )
    return dict(document)


def _secrets_file_fix(allowed: list[str]) -> str:
    return "write a JSON object with any of: " + ", ".join(allowed)


def create_secret(deployment: Deployment, name: str, values: Mapping[str, Any]) -> None:
    """Create the tenant's secret, tagged with its name. OperatorError when one of that name exists already
    (an earlier `tenant add` stopped half-way, or a purged tenant's secret is still in its recovery window)."""
    from botocore.exceptions import ClientError

    secret_id = secret_name(deployment, name)
    try:
        deployment.client("secretsmanager").create_secret(
            Name=secret_id,
            Description=f"postback-relay tenant {name}: its TrafficStars key and signing secrets",
            SecretString=json.dumps(dict(values)),
            Tags=[{"Key": "tenant", "Value": name}],
        )
    except ClientError as exc:
        code = error_code(exc)
        if code in ("ResourceExistsException", "InvalidRequestException"):
            raise OperatorError(
                f"a secret named {secret_id} exists already (or is scheduled for deletion), but tenant {name} does not",
                f"restore it with `aws secretsmanager restore-secret --secret-id {secret_id}` and keep it, or "
                f"delete it for good with `aws secretsmanager delete-secret --secret-id {secret_id} "
                "--force-delete-without-recovery`, then add the tenant again",
            ) from None
        raise


def discard_secret(deployment: Deployment, name: str) -> None:
    """Delete, without recovery, a secret just created for a tenant that was then not saved: nothing used it."""
    deployment.client("secretsmanager").delete_secret(
        SecretId=secret_name(deployment, name), ForceDeleteWithoutRecovery=True
    )


def schedule_deletion(deployment: Deployment, name: str, recovery_days: int) -> bool:
    """Schedule the tenant's secret's deletion after ``recovery_days`` (restorable until then); False when there
    was no secret."""
    from botocore.exceptions import ClientError

    try:
        deployment.client("secretsmanager").delete_secret(
            SecretId=secret_name(deployment, name), RecoveryWindowInDays=recovery_days
        )
    except ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            return False
        raise
    return True


def _raw_secret(deployment: Deployment, name: str) -> dict[str, Any]:
    """The tenant's secret's JSON object. OperatorError when it is missing or not a JSON object."""
    from botocore.exceptions import ClientError

    secret_id = secret_name(deployment, name)
    try:
        raw = deployment.client("secretsmanager").get_secret_value(SecretId=secret_id)["SecretString"]
    except ClientError as exc:
        if error_code(exc) in ("ResourceNotFoundException", "InvalidRequestException"):
            raise OperatorError(
                f"tenant {name}'s secret {secret_id} does not exist (or is scheduled for deletion)",
                f"create it: aws secretsmanager create-secret --name {secret_id} --secret-string "
                f'\'{{"{TRAFFICSTARS_KEY}": "..."}}\' (or restore-secret, if it was deleted)',
            ) from None
        raise
    try:
        document = json.loads(raw)
    except ValueError:
        document = None
    if not isinstance(document, dict):
        raise OperatorError(
            f"tenant {name}'s secret {secret_id} is not a JSON object",
            f"store a JSON object with its keys: aws secretsmanager put-secret-value --secret-id {secret_id} "
            "--secret-string '{...}'",
        )
    return document


def read_secret(deployment: Deployment, name: str) -> RelaySecrets:
    """The tenant's secret, read now (never cached, never printed)."""
    return RelaySecrets(_raw_secret(deployment, name))


def add_missing_fields(deployment: Deployment, name: str, fields: Iterable[str]) -> list[str]:
    """Give the tenant's secret each of ``fields`` it lacks (a placeholder, or a generated postback token), so a
    source added later shows in the secret as one more value to paste; the keys added. Values already there are
    kept as they are."""
    document = _raw_secret(deployment, name)
    missing = [field for field in fields if field not in document]
    if missing:
        document.update(initial_values(missing, {}))
        deployment.client("secretsmanager").put_secret_value(
            SecretId=secret_name(deployment, name), SecretString=json.dumps(document)
        )
    return missing


def key_states(stored: RelaySecrets, fields: Iterable[str]) -> dict[str, KeyState]:
    """Whether each key is set, still a placeholder, or missing (the values are never looked at again)."""
    placeholders = set(stored.placeholders())
    states: dict[str, KeyState] = {}
    for field in fields:
        if stored.signing_secrets(field):
            states[field] = "set"
        elif field in placeholders:
            states[field] = "placeholder"
        else:
            states[field] = "missing"
    return states


def validate_settings(deployment: Deployment, overrides: Mapping[str, str]) -> None:
    """The tenant's settings through the relay's own readers (Settings.for_tenant), as the relay reads them
    when it serves the tenant: a bad value is refused now, naming the setting, instead of answering the
    tenant's webhooks 5xx later."""
    from postback_relay.env import SettingsError
    from postback_relay.settings import TENANT_VARIABLES, Settings

    base = Settings.from_env(
        {"SECRET_ID": "x", "TABLE_NAME": "t", "LOCAL_MODE": "true" if deployment.local else "false"}
    )
    try:
        base.for_tenant(overrides)
    except SettingsError as exc:
        raise OperatorError(
            f"tenant setting refused: {exc}",
            "correct the --set value (README, settings table); a tenant may set " + ", ".join(sorted(TENANT_VARIABLES)),
        ) from None


def urls(deployment: Deployment, config: TenantConfig, secret_id: str) -> list[dict[str, str]]:
    """Where each platform of the tenant sends: its own routes, and the shared ones its lookups claim. The
    tracker's URL names where its token is, never the token."""
    base = (deployment.api_base_url or "<ApiBaseUrl output>").rstrip("/")
    found: list[dict[str, str]] = []
    for source in sorted(config.sources):
        if source == POSTBACK_ROUTE:
            url = f"{base}/postback/{config.name}?token=<{TOKEN_FIELD} in secret {secret_id}>"
            found.append({"source": source, "method": "GET", "url": url})
        else:
            found.append({"source": source, "method": "POST", "url": f"{base}/webhooks/{config.name}/{source}"})
    shared = ((STRIPE_CONNECT_ROUTE, config.stripe_accounts), (SHOPIFY_APP_ROUTE, config.shopify_shops))
    for route, claimed in shared:
        if claimed:
            note = f"shared; signed with the deployment's own {SHARED[route].secret_field}, this tenant's for " + (
                ", ".join(claimed)
            )
            found.append({"source": route, "method": "POST", "url": f"{base}/webhooks/{route}", "note": note})
    return found


def checks(deployment: Deployment, name: str) -> list[Check]:
    """`check --tenant NAME`: the tenant exists and is enabled, its settings are valid, its secret is readable
    and holds its TrafficStars key and each of its sources' signing secrets (placeholders count as absent)."""
    try:
        secret_id = secret_name(deployment, name)
    except OperatorError as exc:
        return [Check("tenant", "FAIL", exc.problem, exc.fix)]
    config = directory(deployment).get(name, force=True)
    if config is None:
        fix = f"add it: postback-relay tenant add {name} --source …"
        return [Check("tenant", "FAIL", f"no tenant named {name}", fix)]
    verdicts = [
        Check("tenant", "OK", f"{name} is enabled, selling through {', '.join(sorted(config.sources))}")
        if config.enabled
        else Check(
            "tenant",
            "FAIL",
            f"{name} is disabled: its webhooks are answered 404 unknown_tenant",
            f"postback-relay tenant set {name} --enable",
        )
    ]
    try:
        validate_settings(deployment, config.settings)
        verdicts.append(Check("settings", "OK", f"the tenant's {len(config.settings)} settings are valid"))
    except OperatorError as exc:
        fix = f"postback-relay tenant set {name} --set VARIABLE=VALUE (or --unset VARIABLE)"
        verdicts.append(Check("settings", "FAIL", f"{exc.problem}: its webhooks fail", fix))
    try:
        stored = read_secret(deployment, name)
    except OperatorError as exc:
        return [*verdicts, Check("secret", "FAIL", exc.problem, exc.fix)]
    put = f"aws secretsmanager put-secret-value --secret-id {secret_id} --secret-string '{{...}}' (the whole JSON)"
    states = key_states(stored, secret_fields(config.sources))
    for field, state in states.items():
        what = "secret" if field == TRAFFICSTARS_KEY else f"source {_source_of(field, config.sources)}"
        if state == "set":
            verdicts.append(Check(what, "OK", f"{field} is set"))
            continue
        effect = (
            "its postbacks wait as retry_pending"
            if field == TRAFFICSTARS_KEY
            else "its webhooks there are answered 404 source_not_configured"
        )
        detail = f"{field} is {'still a placeholder' if state == 'placeholder' else 'not in the secret'}: {effect}"
        verdicts.append(Check(what, "FAIL", detail, f"paste it into {secret_id}: {put}"))
    return verdicts


def _source_of(field: str, sources: Iterable[str]) -> str:
    return next((source for source in sorted(sources) if ROUTED[source].secret_field == field), field)
