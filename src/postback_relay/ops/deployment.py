"""Where the operator CLI points: a deployed stack (its CloudFormation outputs and parameters) or the local
run (`make run`: moto server and the TrafficStars sandbox on 127.0.0.1). Every failure an operator can cause
(no credentials, a wrong stack name or region, a missing secret key) becomes an OperatorError with the fix."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from postback_relay.aws.errors import error_code
from postback_relay.aws.secrets import RelaySecrets
from postback_relay.networks.trafficstars import DEFAULT_URL as DEFAULT_TRAFFICSTARS_URL
from postback_relay.ops import local_run
from postback_relay.platforms import ROUTED, route_name

STACK_ENV = "POSTBACK_RELAY_STACK"
DEFAULT_STACK = "postback-relay"
SECRET_JSON_EXAMPLE = '{"trafficstars_key": "<S2S key>", "stripe_webhook_secret": "whsec_..."}'  # noqa: S105


class OperatorError(Exception):
    """A failure the operator can fix: what went wrong, and what to do about it."""

    def __init__(self, problem: str, fix: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.fix = fix


@dataclass(frozen=True)
class Deployment:
    """The resources one relay uses, and an AWS session (with moto's endpoint for the local run)."""

    label: str
    session: Any  # boto3.session.Session
    region: str
    table_name: str
    secret_id: str
    trafficstars_url: str
    sources: tuple[str, ...]  # the routes this deployment serves, by last path segment (stripe, …, postback)
    local: bool = False
    endpoint_url: str | None = None
    stack_name: str | None = None
    api_base_url: str | None = None
    function_name: str | None = None
    alarm_topic_arn: str | None = None
    retry_queue_url: str | None = None
    dead_letter_queue_url: str | None = None
    ca_bundle: str | None = None  # the local sandbox's certificate authority
    tenant_secret_prefix: str | None = None  # tenant T's secret is this + T (None: a stack from before tenants)
    outputs: dict[str, str] = field(default_factory=dict)
    parameters: dict[str, str] = field(default_factory=dict)  # the stack's parameters (what `check` validates)

    def client(self, service: str) -> Any:
        """A boto3 client of this deployment (moto's endpoint for the local run)."""
        return aws_client(self.session, service, self.endpoint_url)

    def queue_urls(self) -> tuple[str, str]:
        """The retry queue and the dead-letter queue: the stack's outputs, or the local run's (its
        RETRY_QUEUE_URL and DEAD_LETTER_QUEUE_URL when set, else found by the names `make run` gives them).
        OperatorError for a stack deployed before the retry queue existed."""
        if self.local and not self.retry_queue_url:
            sqs = self.client("sqs")
            retry, dead_letter = (
                str(sqs.get_queue_url(QueueName=f"{local_run.QUEUE_PREFIX}-{suffix}")["QueueUrl"])
                for suffix in ("retry", "dlq")
            )
            return retry, dead_letter
        if not self.retry_queue_url or not self.dead_letter_queue_url:
            raise OperatorError(
                f"{self.label} has no RetryQueueUrl/DeadLetterQueueUrl output: it predates the retry queue, "
                "so a postback TrafficStars did not answer is retried only when the platform redelivers",
                "deploy this version (sam build && sam deploy)",
            )
        return self.retry_queue_url, self.dead_letter_queue_url

    def secrets(self) -> RelaySecrets:
        """The relay's secret, read now (never cached, never printed)."""
        from botocore.exceptions import ClientError

        try:
            raw = self.client("secretsmanager").get_secret_value(SecretId=self.secret_id)["SecretString"]
        except ClientError as exc:
            if error_code(exc) == "ResourceNotFoundException":
                raise OperatorError(
                    f"the secret {self.secret_id} does not exist",
                    "deploy with SecretArn empty and the stack creates one (README: Deploying), or create it: "
                    f"aws secretsmanager create-secret --name postback-relay --secret-string '{SECRET_JSON_EXAMPLE}' "
                    "and deploy with its ARN as SecretArn",
                ) from None
            raise
        secrets = RelaySecrets.decode(raw)
        if secrets is None:
            raise OperatorError(
                f"the secret {self.secret_id} is not a JSON object",
                f"store JSON such as {SECRET_JSON_EXAMPLE} (aws secretsmanager put-secret-value)",
            )
        return secrets


def relay_environment(deployment: Deployment) -> dict[str, str]:
    """The environment the deployment's webhook function runs with, as far as the operator's machine can know it:
    the local run's (this process's, with `make run`'s names), or the stack's parameters under their variables'
    names (settings.ALL_VARIABLES) with its table, secret and queues; what reconcile builds a relay from."""
    from postback_relay.settings import ALL_VARIABLES, RECONCILE_ADDRESSES

    fixed = {
        "SECRET_ID": deployment.secret_id,
        "TABLE_NAME": deployment.table_name,
        "TRAFFICSTARS_URL": deployment.trafficstars_url,
        "TENANT_SECRET_PREFIX": deployment.tenant_secret_prefix or "",
        "RETRY_QUEUE_URL": deployment.retry_queue_url or "",
        "DEAD_LETTER_QUEUE_URL": deployment.dead_letter_queue_url or "",
    }
    if deployment.local:
        retry, dead_letter = deployment.queue_urls()
        return {
            **os.environ,
            **fixed,
            "LOCAL_MODE": "true",
            "RETRY_QUEUE_URL": retry,
            "DEAD_LETTER_QUEUE_URL": dead_letter,
        }
    by_parameter = {
        v.name: deployment.parameters[v.parameter] for v in ALL_VARIABLES if v.parameter in deployment.parameters
    }
    passed = {name: os.environ[name] for name in RECONCILE_ADDRESSES if name in os.environ}
    return {**by_parameter, **passed, **fixed}


def resolve(*, local: bool, stack: str | None, region: str | None, profile: str | None) -> Deployment:
    """The local run, or the named (or configured) stack."""
    if local:
        return local_deployment()
    return stack_deployment(stack or default_stack_name(), region, profile)


def local_deployment() -> Deployment:
    """`make run`'s resources: the same ports and names it uses (MOTO_PORT, SANDBOX_PORT, PORT).

    Needs nothing but the installed package: not template.yaml (absent after `pip install .`) nor PyYAML.
    The local run serves every route of the template, which are the sources in ROUTED
    (tests/infrastructure/test_template.py holds the two equal), so the routed sources are ROUTED's."""
    import boto3

    endpoint = f"http://{local_run.HOST}:{local_run.port('MOTO_PORT', 5005)}"
    region = os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    # moto accepts any credentials; the operator's real ones never go to the local run.
    session = boto3.session.Session(aws_access_key_id="local", aws_secret_access_key="local", region_name=region)  # noqa: S106
    # As `make run` decides: TRAFFICSTARS_URL (with REQUESTS_CA_BUNDLE) if set, else its HTTPS sandbox, whose
    # certificate authority it writes under LOCAL_STATE_DIR.
    trafficstars_url = os.environ.get("TRAFFICSTARS_URL")
    ca_bundle = os.environ.get("REQUESTS_CA_BUNDLE")
    if not trafficstars_url:
        trafficstars_url = f"https://{local_run.HOST}:{local_run.port('SANDBOX_PORT', 8443)}/api/v1/cpa/action"
        ca_file = Path(os.environ.get("LOCAL_STATE_DIR", ".local")) / "tls" / "ca.pem"
        ca_bundle = str(ca_file) if ca_file.is_file() else None
    return Deployment(
        label=f"the local run (moto at {endpoint})",
        session=session,
        region=region,
        table_name=local_run.TABLE_NAME,
        secret_id=local_run.SECRET_ID,
        trafficstars_url=trafficstars_url.rstrip("/"),
        sources=tuple(ROUTED),
        local=True,
        endpoint_url=endpoint,
        api_base_url=f"http://{local_run.HOST}:{local_run.port('PORT', 3000)}",
        ca_bundle=ca_bundle,
        retry_queue_url=os.environ.get("RETRY_QUEUE_URL") or None,
        dead_letter_queue_url=os.environ.get("DEAD_LETTER_QUEUE_URL") or None,
        tenant_secret_prefix=local_run.TENANT_SECRET_PREFIX,
    )


def stack_deployment(stack_name: str, region: str | None, profile: str | None) -> Deployment:
    """A deployed stack, found by name: its outputs name the table, topic and API; its parameters the
    secret and the TrafficStars URL."""
    import boto3
    from botocore.exceptions import ClientError, ProfileNotFound

    try:
        session = boto3.session.Session(profile_name=profile, region_name=region)
        if not session.region_name and _samconfig_region():
            session = boto3.session.Session(profile_name=profile, region_name=_samconfig_region())
    except ProfileNotFound:
        raise OperatorError(
            f"there is no AWS profile named {profile!r}",
            "list them with `aws configure list-profiles`; create one with `aws configure --profile NAME` "
            "(or `aws configure sso`)",
        ) from None
    if not session.region_name:
        raise OperatorError(
            "no AWS region is configured",
            "pass --region (the region you deployed to), or set AWS_REGION, or `aws configure set region REGION`",
        )
    label = f"stack {stack_name} in {session.region_name}"
    try:
        stacks = aws_client(session, "cloudformation").describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as exc:
        if error_code(exc) == "ValidationError" and "does not exist" in str(exc):
            raise OperatorError(
                f"there is no stack named {stack_name!r} in {session.region_name}",
                "pass --stack with the name you gave `sam deploy` (samconfig.toml stack_name), or --region and "
                "--profile for where it is; `aws cloudformation list-stacks --stack-status-filter "
                "CREATE_COMPLETE UPDATE_COMPLETE` lists the stacks",
            ) from None
        raise
    stack = stacks[0]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    parameters = {p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters", [])}
    if "ConversionsTableName" not in outputs or "SecretArn" not in parameters:
        raise OperatorError(
            f"stack {stack_name} is not a postback-relay stack (no ConversionsTableName output or SecretArn)",
            "pass --stack with the name of the stack `sam deploy` created for postback-relay",
        )
    routed = {route_name(url) for key, url in outputs.items() if key.endswith(("WebhookUrl", "PostbackUrl"))}
    return Deployment(
        label=label,
        session=session,
        region=session.region_name,
        table_name=outputs["ConversionsTableName"],
        # The secret the stack made (output SecretArn), else the one it was given (parameter SecretArn).
        secret_id=outputs.get("SecretArn") or parameters["SecretArn"],
        trafficstars_url=(parameters.get("TrafficStarsUrl") or DEFAULT_TRAFFICSTARS_URL).rstrip("/"),
        sources=tuple(name for name in ROUTED if name in routed) or tuple(ROUTED),
        stack_name=stack_name,
        api_base_url=outputs.get("ApiBaseUrl"),
        function_name=outputs.get("WebhookFunctionName"),
        alarm_topic_arn=outputs.get("AlarmTopicArn"),
        retry_queue_url=outputs.get("RetryQueueUrl"),
        dead_letter_queue_url=outputs.get("DeadLetterQueueUrl"),
        tenant_secret_prefix=outputs.get("TenantSecretPrefix"),
        outputs=outputs,
        parameters=parameters,
    )


def aws_client(session: Any, service: str, endpoint_url: str | None = None) -> Any:
    """A boto3 client with short timeouts and bounded retries, so a wrong endpoint fails fast."""
    from botocore.config import Config

    config = Config(connect_timeout=5, read_timeout=15, retries={"mode": "standard", "max_attempts": 3})
    return session.client(service, endpoint_url=endpoint_url, config=config)


def default_stack_name(cwd: Path | None = None) -> str:
    """POSTBACK_RELAY_STACK, else samconfig.toml's stack_name (what `sam deploy` used), else postback-relay."""
    if os.environ.get(STACK_ENV):
        return os.environ[STACK_ENV]
    name = _samconfig(cwd).get("stack_name")
    return str(name) if name else DEFAULT_STACK


def explain(exc: Exception, target: str) -> OperatorError | None:
    """An AWS SDK error as a problem and its fix; None for errors an operator cannot act on."""
    from botocore.exceptions import (
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        NoRegionError,
        PartialCredentialsError,
        SSOTokenLoadError,
        TokenRetrievalError,
        UnauthorizedSSOTokenError,
    )

    login = (
        "configure credentials: `aws configure`, or `aws sso login --profile NAME` and --profile NAME "
        "(AWS_PROFILE works too); for `make run` use --local instead"
    )
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return OperatorError("no AWS credentials were found", login)
    if isinstance(exc, SSOTokenLoadError | UnauthorizedSSOTokenError | TokenRetrievalError):
        return OperatorError(
            "the AWS SSO session has expired", "run `aws sso login` (and --profile NAME if you use one)"
        )
    if isinstance(exc, NoRegionError):
        return OperatorError("no AWS region is configured", "pass --region, or set AWS_REGION")
    if isinstance(exc, EndpointConnectionError):
        if "127.0.0.1" in str(exc) or "localhost" in str(exc):
            return OperatorError(
                f"nothing answers at {target}",
                "start the local run with `make run` (same MOTO_PORT as here), or drop --local for a deployed stack",
            )
        return OperatorError(f"cannot reach AWS: {exc}", "check the network and the --region")
    if isinstance(exc, ClientError):
        code = error_code(exc)
        operation = exc.operation_name
        if code in ("ExpiredToken", "ExpiredTokenException", "RequestExpired"):
            return OperatorError("the AWS credentials have expired", "refresh them (`aws sso login`, or new keys)")
        if code in ("UnrecognizedClientException", "InvalidClientTokenId", "InvalidSignatureException"):
            return OperatorError("AWS does not accept these credentials", login)
        if code.startswith("AccessDenied") or code == "UnauthorizedOperation":
            return OperatorError(
                f"these credentials may not call {operation} on {target}",
                "use a role or user allowed to read the stack, table, secret, topic and alarms "
                "(README: Operating it, permissions)",
            )
        if code == "ResourceNotFoundException":
            return OperatorError(
                f"{operation}: a resource of {target} does not exist ({exc.response.get('Error', {}).get('Message')})",
                "check --stack/--region; for the local run, restart `make run`, which creates the table and secret",
            )
    return None


def _samconfig(cwd: Path | None) -> dict[str, Any]:
    """samconfig.toml's default global and deploy parameters, merged (deploy wins)."""
    path = (cwd or Path.cwd()) / "samconfig.toml"
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return {}
    default = document.get("default", {})
    merged: dict[str, Any] = dict(default.get("global", {}).get("parameters", {}))
    merged.update(default.get("deploy", {}).get("parameters", {}))
    return merged


def _samconfig_region() -> str | None:
    region = _samconfig(None).get("region")
    return str(region) if region else None
