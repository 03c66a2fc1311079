"""`check` on a stack validates every setting the stack passes its functions, with the relay's own rules, and
GETs the health URL; the template constrains every parameter, so a typo fails at deploy time."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from postback_relay.ops import checks
from postback_relay.ops.deployment import Deployment
from postback_relay_dev.template import load_template


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


def test_check_knows_every_setting_the_stack_passes(template: dict[str, Any]) -> None:
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    passed = {
        variable: value["Ref"]
        for variable, value in variables.items()
        if isinstance(value, dict) and value.get("Ref") in template["Parameters"]
    }
    assert passed == checks.STACK_SETTINGS


def test_the_templates_defaults_are_valid_settings(template: dict[str, Any]) -> None:
    defaults = {name: str(p["Default"]) for name, p in template["Parameters"].items() if "Default" in p}
    verdict = checks.settings_check(defaults)
    assert verdict.level == "OK", verdict.detail


@pytest.mark.parametrize(
    ("parameters", "named", "says"),
    [
        ({"FxRates": '{"EUR": 1.08'}, "FxRates", "FX_RATES must be a JSON object"),
        ({"FxRates": '{"EUR": "0"}'}, "FxRates", "FX_RATES"),
        ({"TrafficStarsPrice": "0.50"}, "TrafficStarsPrice", "only in the query form"),
        ({"TrafficStarsUrl": "https://tsyndicate.com/api/v1/cpa/action?key=1"}, "TrafficStarsUrl", "without query"),
    ],
)
def test_a_setting_the_relay_would_refuse_fails_naming_its_parameter(
    parameters: dict[str, str], named: str, says: str
) -> None:
    verdict = checks.settings_check(parameters)
    assert verdict.level == "FAIL"
    assert says in verdict.detail and f"(parameter {named}" in verdict.detail
    assert f"--parameter-overrides {named}=" in verdict.fix


def test_every_parameter_is_constrained_and_its_default_meets_its_constraint(template: dict[str, Any]) -> None:
    for name, parameter in template["Parameters"].items():
        default = parameter.get("Default")
        if "AllowedValues" in parameter:
            assert default is None or default in parameter["AllowedValues"], name
        elif parameter["Type"] == "Number":
            assert "MinValue" in parameter and "MaxValue" in parameter, f"{name}: a Number needs a range"
            assert parameter["MinValue"] <= default <= parameter["MaxValue"], name
        else:
            assert "AllowedPattern" in parameter, f"{name} accepts anything"
            assert re.fullmatch(parameter["AllowedPattern"], str(default)), f"{name}'s default breaks its pattern"
            assert parameter.get("ConstraintDescription"), f"{name}: say what is expected when a value is refused"


@pytest.mark.parametrize(
    ("parameter", "good", "bad"),
    [
        (
            "FxRates",
            ['{"EUR": "1.08"}', '{"EUR": "1.08", "GBP": "1.27"}', "{}", '{"JPY": 0.0067}'],
            ['{"EUR": 1.08', "EUR=1.08", '{"eur": "1.08"}', '{"EUR": "1,08"}'],
        ),
        ("TrafficStarsPrice", ["", "value", "0.50", "12"], ["1,5", "price", "-1"]),
        ("SweepSchedule", ["rate(5 minutes)", "rate(1 hour)", "cron(0/5 * * * ? *)"], ["5 minutes", "rate(0 minutes)"]),
        ("DomainName", ["", "postbacks.example.com"], ["https://postbacks.example.com", "Postbacks.Example.com"]),
        (
            "CertificateArn",
            ["", "arn:aws:acm:us-east-1:123456789012:certificate/0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d"],
            ["arn:aws:acm:us-east-1:123456789012:certificate/short"],
        ),
        (
            "SecretArn",
            ["", "arn:aws:secretsmanager:eu-west-1:123456789012:secret:postback-relay-AbCdEf"],
            ["postback-relay"],
        ),
    ],
)
def test_a_typo_is_refused_at_deploy(template: dict[str, Any], parameter: str, good: list[str], bad: list[str]) -> None:
    pattern = template["Parameters"][parameter]["AllowedPattern"]
    assert [value for value in good if not re.fullmatch(pattern, value)] == []
    assert [value for value in bad if re.fullmatch(pattern, value)] == []


class _Answer(BaseHTTPRequestHandler):
    status = 200
    body = b'{"status":"ok"}'

    def do_GET(self) -> None:
        self.send_response(self.status)
        self.send_header("content-type", "application/json")
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def api() -> Iterator[tuple[str, type[_Answer]]]:
    handler = type("Answer", (_Answer,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()


def _deployment(base_url: str, **outputs: str) -> Deployment:
    return Deployment(
        "stack s in us-east-1",
        None,
        "us-east-1",
        "t",
        "s",
        "https://x",
        ("stripe",),
        api_base_url=base_url,
        outputs=outputs,
    )


def test_the_health_url_answering_ok_passes(api: tuple[str, type[_Answer]]) -> None:
    base, _ = api
    assert checks.health_check(_deployment(base)).level == "OK"
    verdict = checks.health_check(_deployment("http://127.0.0.1:9", HealthUrl=f"{base}/health"))
    assert (verdict.level, verdict.detail) == ("OK", f"GET {base}/health -> 200 ok")  # the output wins


def test_a_health_url_answering_otherwise_fails(api: tuple[str, type[_Answer]]) -> None:
    base, handler = api
    handler.status, handler.body = 500, b'{"message":"Internal Server Error"}'
    verdict = checks.health_check(_deployment(base))
    assert verdict.level == "FAIL" and "-> 500" in verdict.detail and "log group" in verdict.fix


def test_a_health_url_nobody_answers_fails() -> None:
    verdict = checks.health_check(_deployment("http://127.0.0.1:9"), timeout=2)
    assert verdict.level == "FAIL" and verdict.detail.startswith("GET http://127.0.0.1:9/health: ConnectionError")
