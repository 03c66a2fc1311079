"""`postback-relay send-test CLICK_ID`: one postback to TrafficStars, to check the key and a click id."""

from __future__ import annotations

import argparse
import sys
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING

from postback_relay.ops.cli.command import Command
from postback_relay.ops.cli.output import print_json, print_text
from postback_relay.ops.deployment import Deployment, OperatorError

if TYPE_CHECKING:
    from postback_relay.core.outcome import Answer
    from postback_relay.networks.trafficstars import TrafficStarsClient

ANSWER_MEANING = {
    "ok": "TrafficStars accepted it: the key and the click id work (it counts as a conversion of that click)",
    "invalid_key": "TrafficStars does not know this key: copy the S2S key from TrafficStars into trafficstars_key",
    "invalid_code": "TrafficStars does not know this click id: take one from a real ad click ({click_id} in the URL)",
    "price": "TrafficStars refused the value: it takes 0.01 to 200.00",
    "https_required": "TrafficStars wants HTTPS: the TrafficStars URL must start with https://",
    "timeout": "TrafficStars did not answer in time: try again (the relay retries such answers itself)",
    "connection_error": "TrafficStars could not be reached: check the network, or try again later",
    "certificate_error": "the certificate of the TrafficStars URL failed verification: check the URL's host and "
    "the trusted authorities (REQUESTS_CA_BUNDLE; with --local, the CA `make run` wrote)",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The click id, the value and the wait."""
    parser.add_argument("click_id", metavar="CLICK_ID")
    parser.add_argument("--value", type=_value, help="the value to send, e.g. 12.50 (default: none)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for TrafficStars (10)")
    parser.add_argument("--yes", action="store_true", help="do not ask before sending to a real TrafficStars")


def run(args: argparse.Namespace, deployment: Deployment) -> int:
    """`send-test`: one GET through TrafficStarsClient with the deployment's key; say what the answer means."""
    from postback_relay.core.conversion import lead_code
    from postback_relay.networks.trafficstars import Postback
    from postback_relay.ops.checks import trafficstars_url_check

    url_check = trafficstars_url_check(deployment.trafficstars_url, deployment.local)
    if url_check.level == "FAIL":
        raise OperatorError(url_check.detail, url_check.fix)
    click_id = args.click_id.strip()
    key = _key(deployment)
    if not deployment.local and not args.yes and not _confirm(click_id, deployment.trafficstars_url):
        print("nothing sent", file=sys.stderr)
        return 1
    client = _client(deployment, args.timeout)
    postback = Postback(click_id, lead_code(f"send-test#{click_id}"), args.value)
    answer = client.send(postback, key)
    _print_answer(answer, client.redacted_url(postback), args.json)
    return 0 if answer.kind == "ok" else 1


def _key(deployment: Deployment) -> str:
    """The TrafficStars key in the deployment's secret, or how to put it there."""
    from postback_relay.aws.secrets import SecretKeyMissing
    from postback_relay.networks.trafficstars import KEY_FIELD as TRAFFICSTARS_KEY

    try:
        return deployment.secrets().value(TRAFFICSTARS_KEY)
    except SecretKeyMissing:
        raise OperatorError(
            f"the secret {deployment.secret_id} has no {TRAFFICSTARS_KEY}",
            "add the S2S key from TrafficStars (write the whole JSON, keeping the other keys): "
            f"aws secretsmanager put-secret-value --secret-id {deployment.secret_id} --secret-string '{{...}}'",
        ) from None


def _client(deployment: Deployment, timeout: float) -> TrafficStarsClient:
    """The relay's own TrafficStars client, trusting the local sandbox's authority when there is one."""
    import requests

    from postback_relay.networks.trafficstars import TrafficStarsClient

    session = requests.Session()
    if deployment.ca_bundle:  # the local sandbox's own authority, whatever the environment's bundle says
        session.verify = deployment.ca_bundle
        session.trust_env = False
    return TrafficStarsClient(deployment.trafficstars_url, min(5.0, timeout), timeout, session)


def _print_answer(answer: Answer, url: str, as_json: bool) -> None:
    """What TrafficStars answered, and what that means for the key and the click id."""
    meaning = ANSWER_MEANING.get(answer.reason) or (
        "TrafficStars did not confirm it: try again later" if answer.kind == "retryable" else "TrafficStars refused it"
    )
    if as_json:
        print_json(
            {
                "url": url,
                "accepted": answer.kind == "ok",
                "kind": answer.kind,
                "reason": answer.reason,
                "http_status": answer.http_status,
                "message": answer.message,
                "duration_ms": answer.duration_ms,
                "meaning": meaning,
            }
        )
    else:
        status = answer.http_status if answer.http_status is not None else "no answer"
        print_text(f"GET {url}\n-> {status} {answer.message} ({answer.duration_ms:.0f} ms)\n{meaning}")


def _confirm(click_id: str, url: str) -> bool:
    if not sys.stdin.isatty():
        raise OperatorError(
            "send-test sends a real postback, which TrafficStars counts as a conversion of that click",
            "add --yes to send it",
        )
    reply = input(f"Send one postback for click {click_id} to {url}? TrafficStars counts it. [y/N] ")
    return reply.strip().lower() in ("y", "yes")


def _value(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value.is_finite() or value <= 0:
        raise argparse.ArgumentTypeError("must be a positive number, e.g. 12.50")
    return value


COMMAND = Command(
    name="send-test",
    help="one postback to TrafficStars",
    description="Send one postback for CLICK_ID through the relay's own TrafficStars client, with the key "
    "in the deployment's secret, and say what TrafficStars answered. With a click id from a real ad click "
    "TrafficStars counts it as a conversion (its lead_code is the same every time for one click id).",
    add_arguments=add_arguments,
    run=run,
)
