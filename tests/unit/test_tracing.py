"""The no-op tracer: with tracing off, the handlers' Tracer records nothing and never imports the X-Ray
SDK's core (handlers/tracing.py; powertools still reads the SDK's small config module); with it on, it is
powertools' own. It leans on powertools' private `Tracer._is_tracer_disabled`, so an upgrade that renames it
fails here rather than in a deployed function."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from aws_lambda_powertools import Tracer

from postback_relay.handlers.tracing import NoTracing

SRC = Path(__file__).resolve().parents[2] / "src"


def _in_a_fresh_interpreter(environment: dict[str, str], exercise: bool = True) -> dict[str, object]:
    use = (
        "@tracer.capture_method\n"
        "def traced(x): return x + 1\n"
        "with tracer.provider.in_subsegment('s') as segment: segment.put_annotation('k', 'v')\n"
        if exercise
        else "def traced(x): return x + 1\n"
    )
    code = (
        "import json, sys\n"
        "from postback_relay.handlers.tracing import NoTracing, make_tracer\n"
        "tracer = make_tracer()\n"
        + use
        + "print(json.dumps({'no_tracing': isinstance(tracer.provider, NoTracing), 'result': traced(1),\n"
        "  'xray_imported': 'aws_xray_sdk.core' in sys.modules}))\n"
    )
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": os.pathsep.join([str(SRC), *sys.path]), **environment}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    answer: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return answer


def test_powertools_still_has_the_rule_the_tracer_relies_on() -> None:
    assert callable(Tracer._is_tracer_disabled)


def test_with_tracing_off_nothing_is_recorded_and_the_xray_sdk_core_is_not_imported() -> None:
    answer = _in_a_fresh_interpreter({"POWERTOOLS_TRACE_DISABLED": "true"})
    assert answer == {"no_tracing": True, "result": 2, "xray_imported": False}


def test_outside_lambda_tracing_is_off_whatever_the_variable_says() -> None:
    answer = _in_a_fresh_interpreter({"POWERTOOLS_TRACE_DISABLED": "false"})
    assert answer["no_tracing"] is True and answer["xray_imported"] is False


def test_in_lambda_with_tracing_on_it_is_powertools_xray_tracer() -> None:
    answer = _in_a_fresh_interpreter(
        {"POWERTOOLS_TRACE_DISABLED": "false", "LAMBDA_TASK_ROOT": "/var/task", "AWS_DEFAULT_REGION": "us-east-1"},
        exercise=False,  # outside a real invocation X-Ray has no segment to record in
    )
    assert answer["no_tracing"] is False and answer["xray_imported"] is True


def test_the_no_op_provider_accepts_the_calls_the_handlers_make() -> None:
    provider = NoTracing()
    provider.put_annotation("source", "stripe")
    provider.put_metadata("k", {"v": 1})
    provider.patch(["requests"])
    with provider.in_subsegment("x") as segment:
        segment.put_annotation("a", 1)
        segment.close()
