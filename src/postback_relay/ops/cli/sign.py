"""`postback-relay sign SOURCE EVENT_FILE`: sign a sample event with the configured secret and POST it to the
relay, an end-to-end test of a deployment."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from postback_relay.ops.cli.command import Command
from postback_relay.ops.cli.output import print_json, print_text
from postback_relay.ops.delivery import Delivery
from postback_relay.ops.deployment import Deployment, OperatorError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The source, the event and where the relay is."""
    parser.add_argument("source", metavar="SOURCE")
    parser.add_argument("event_file", metavar="EVENT_FILE", type=Path)
    parser.add_argument("--url", help="base URL of the relay (default: the stack's ApiBaseUrl, or the local run)")
    parser.add_argument(
        "--tenant",
        metavar="NAME",
        help="sign with this tenant's secret and send to its route (default: the deployment's own)",
    )


def run(args: argparse.Namespace, deployment: Deployment) -> int:
    """`sign`: the event signed now with the deployment's secret for SOURCE, POSTed to the relay."""
    from postback_relay.platforms import ROUTED

    if args.source not in ROUTED:
        raise OperatorError(f"there is no source named {args.source!r}", f"use one of: {', '.join(ROUTED)}")
    delivery = _load_event(args.event_file, args.source)
    field = ROUTED[args.source].secret_field
    secret_id = deployment.secret_id
    if args.tenant is not None:
        from postback_relay.core.tenant import is_slug
        from postback_relay.ops import tenants

        if not is_slug(args.tenant):
            raise OperatorError(f"--tenant {args.tenant!r} cannot name a tenant", "use the name `tenant list` shows")

        secret_id = tenants.secret_name(deployment, args.tenant)
        signing = tenants.read_secret(deployment, args.tenant).signing_secrets(field)
        delivery = delivery.to_tenant(args.tenant)
    else:
        signing = deployment.secrets().signing_secrets(field)
    if not signing:
        raise OperatorError(
            f"the secret {secret_id} has no {field}, so {args.source} webhooks cannot be signed "
            "(and the relay refuses them)",
            f"add {field} (write the whole JSON, keeping the other keys): aws secretsmanager put-secret-value "
            f"--secret-id {secret_id} --secret-string '{{...}}'",
        )
    base_url = args.url or deployment.api_base_url
    if not base_url:
        raise OperatorError(f"{deployment.label} has no ApiBaseUrl output", "pass --url https://…")
    signed = delivery.signed(signing[0])  # the first is the current one while a secret is being rolled
    response = signed.post(base_url)
    try:
        answer: Any = response.json()
    except ValueError:
        answer = response.text
    method = signed.method
    url = base_url.rstrip("/") + signed.path  # the query (a tracker's postback) is not shown: no token
    if args.json:
        print_json(
            {
                "method": method,
                "url": url,
                "signed_with": field,
                "http_status": response.status_code,
                "answer": answer,
            }
        )
    else:
        print_text(f"{method} {url} (signed with {field})\n-> {response.status_code} {json.dumps(answer)}")
    return 0 if response.ok else 1


def _load_event(path: Path, source: str) -> Delivery:
    """The request of an API Gateway event from the file, or of a bare webhook body (its bytes kept exactly)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise OperatorError(f"cannot read {path}: {exc.strerror}", "give the path of an event file") from None
    try:
        delivery = Delivery.read(raw, source)
    except ValueError:
        raise OperatorError(f"{path} is not JSON", "use an event from events/ or a webhook body in JSON") from None
    if delivery.route != source:
        routed = delivery.route
        raise OperatorError(f"{path} is a {routed!r} event, not {source!r}", f"postback-relay sign {routed} {path}")
    return delivery


COMMAND = Command(
    name="sign",
    help="sign a sample event and POST it to the relay",
    description="Sign EVENT_FILE with SOURCE's signing secret from the deployment's secret, timestamped now, "
    "and POST it to the relay's webhook, like `stripe trigger`: an end-to-end test of a deployment. "
    "EVENT_FILE is an API Gateway event from events/ or a bare webhook body (a Stripe event JSON). "
    "The relay processes it for real: a purchase with a valid click id is forwarded to TrafficStars.",
    add_arguments=add_arguments,
    run=run,
)
