"""`make run`: the relay on 127.0.0.1 with embedded defaults: moto server (DynamoDB, Secrets Manager) with
the table and a demo secret, a TrafficStars sandbox over HTTPS, and the API Gateway front on PORT (3000)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from postback_relay_dev import defaults

STATE_DIR = Path(os.environ.get("LOCAL_STATE_DIR", ".local"))


def main() -> None:
    """Start everything, print where it is, serve until Ctrl-C."""
    import logging

    import boto3
    import trustme

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto server's access log

    from postback_relay_dev.moto_server import SerializedMotoServer
    from postback_relay_dev.resources import create_queues, create_table, put_secret
    from postback_relay_dev.sandbox import TrafficStarsSandbox
    from postback_relay_dev.template import http_routes, load_template

    host = defaults.HOST
    api_port = defaults.port("PORT", 3000)
    moto = SerializedMotoServer(host, defaults.port("MOTO_PORT", 5005)).start()
    env = os.environ
    env.update(
        {
            "AWS_ENDPOINT_URL": moto.endpoint,
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_DEFAULT_REGION": env.get("AWS_DEFAULT_REGION", "us-east-1"),
        }
    )
    env.pop("AWS_PROFILE", None)
    env.pop("AWS_SESSION_TOKEN", None)
    secrets = defaults.secret_values()
    session = boto3.session.Session()
    create_table(session.client("dynamodb"), defaults.TABLE_NAME)
    put_secret(session.client("secretsmanager"), defaults.SECRET_ID, secrets)
    sqs = session.client("sqs")
    retry_url, dead_letter_url = create_queues(sqs, defaults.QUEUE_PREFIX)
    env.update({"RETRY_QUEUE_URL": retry_url, "DEAD_LETTER_QUEUE_URL": dead_letter_url})
    # A short local schedule, so an outage and its recovery can be watched in a minute.
    env.setdefault("RETRY_BASE_DELAY_SECONDS", "2")
    env.setdefault("RETRY_MAX_DELAY_SECONDS", "20")
    env.setdefault("SWEEP_GRACE_SECONDS", "5")

    sandbox_line = ""
    if "TRAFFICSTARS_URL" not in env:
        # A fresh authority each run; its certificate is written where the CLI's --local looks for it.
        authority = trustme.CA(organization_name="postback-relay local")
        ca_file = STATE_DIR / "tls" / "ca.pem"
        ca_file.parent.mkdir(parents=True, exist_ok=True)
        authority.cert_pem.write_to_path(str(ca_file))
        sandbox = TrafficStarsSandbox(
            secrets["trafficstars_key"], authority, host, defaults.port("SANDBOX_PORT", 8443)
        ).start()
        env["TRAFFICSTARS_URL"] = sandbox.base_url
        env["REQUESTS_CA_BUNDLE"] = str(ca_file.resolve())
        root = sandbox.base_url.split("/api/")[0]
        sandbox_line = (
            f"  received:     {root}/__sandbox/requests\n"
            f"  outage:       curl -k -X POST {root}/__sandbox/outage   (and .../__sandbox/recover)\n"
        )
    env.update({"SECRET_ID": defaults.SECRET_ID, "TABLE_NAME": defaults.TABLE_NAME, "LOCAL_MODE": "true"})
    env.setdefault("TENANT_SECRET_PREFIX", defaults.TENANT_SECRET_PREFIX)
    for variable, addresses in defaults.local_allowlists().items():
        env.setdefault(variable, addresses)  # `make send` and curl post from loopback
    env.setdefault("POWERTOOLS_SERVICE_NAME", "postback-relay")
    env.setdefault("POWERTOOLS_METRICS_NAMESPACE", "PostbackRelay")
    env.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    env.setdefault("POWERTOOLS_TRACE_DISABLED", "true")

    from postback_relay.settings import Settings, SettingsError
    from postback_relay_dev.front import LocalApi
    from postback_relay_dev.worker import LocalPipeline

    try:
        Settings.from_env()
    except SettingsError as exc:
        raise SystemExit(f"invalid setting: {exc}") from None
    routes = http_routes(load_template())

    def show(method: str, path: str, status: int, body: str) -> None:
        print(f"--> {method} {path} -> {status} {body}", flush=True)

    api = LocalApi(routes, host, api_port, on_response=show)
    sweep_interval = float(env.get("SWEEP_INTERVAL_SECONDS", "10"))
    reconcile_interval = float(env.get("RECONCILE_INTERVAL_SECONDS", "3600"))
    LocalPipeline(sqs, retry_url, sweep_interval, reconcile_interval).start()
    lines = [f"  {route.method:<5} {api.base_url}{route.path}" for route in routes]
    print(
        "postback-relay is running locally (Ctrl-C stops it)\n"
        + "\n".join(lines)
        + f"\n  AWS (moto):   {moto.endpoint}  table {defaults.TABLE_NAME}, secret {defaults.SECRET_ID}\n"
        + f"  TrafficStars: {env['TRAFFICSTARS_URL']}\n"
        + sandbox_line
        + "Send a signed sample purchase (in another terminal):\n"
        + "  make send EVENT=events/stripe/checkout.session.completed.json\n",
        flush=True,
    )
    try:
        api.serve_forever()
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)


if __name__ == "__main__":
    main()
