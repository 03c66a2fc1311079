"""The fault suite: the promise "every paid conversion reaches TrafficStars exactly once, whatever breaks",
measured with the real handlers, moto server and the HTTPS sandbox. Each test records its figures, printed
at the end of the run (see conftest.pytest_terminal_summary). Loops are bounded in count and time."""

from __future__ import annotations

import json
import random
import threading
import time
import zlib
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from postback_relay.handlers.http import outcome_status
from postback_relay.platforms.stripe import STRIPE
from postback_relay.runtime import build_runtime, reset_runtime
from postback_relay.settings import Settings
from postback_relay_dev.sandbox import Received, TrafficStarsSandbox
from postback_relay_dev.worker import drain_once, sweep_once
from tests.support.aws import Aws
from tests.support.constants import FAULT_FIGURES, TEST_KEY, TEST_STRIPE_SECRET
from tests.support.helpers import Invoker, checkout_session, stripe_event, stripe_signature

WRITTEN: list[str] = []  # every log line, item and queued message of this module, for the canary scan


@pytest.fixture(autouse=True)
def collect_what_was_written(request: pytest.FixtureRequest, capfd: pytest.CaptureFixture[str]) -> Iterator[None]:
    # Requested here, before the test, so the resources outlive this fixture's teardown.
    aws: Aws | None = request.getfixturevalue("aws") if "aws" in request.fixturenames else None
    yield
    out, err = capfd.readouterr()
    WRITTEN.extend([out, err])
    if aws is not None:
        WRITTEN.append(json.dumps(aws.raw_items()))
        for url in (aws.retry_url, aws.dead_letter_url):
            messages = aws.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0)
            WRITTEN.extend(m["Body"] for m in messages.get("Messages", []))


def purchase(pi: str) -> bytes:
    return stripe_event("checkout.session.completed", checkout_session(payment_intent=pi))


def drain(aws: Aws, limit_seconds: float = 180) -> None:
    """Run the worker (waiting out messages still delayed: retries are delayed whole seconds, rounded up)
    and the sweep until neither has anything left."""
    deadline = time.monotonic() + limit_seconds
    while time.monotonic() < deadline:
        if drain_once(aws.sqs, aws.retry_url):
            continue
        if aws.delayed():
            drain_once(aws.sqs, aws.retry_url, wait_seconds=2)
            continue
        if not sweep_once():
            return
    raise AssertionError("the retry queue did not drain in time")


def gets_per_lead_code(sandbox: TrafficStarsSandbox) -> Counter[str]:
    return Counter(r.params["lead_code"] for r in sandbox.state.accepted())


def test_1_ten_sequential_duplicates_make_one_get(invoke: Invoker, aws: Aws, sandbox: TrafficStarsSandbox) -> None:
    body = purchase("pi_dup")
    replies = [invoke.stripe(body, TEST_STRIPE_SECRET) for _ in range(10)]
    two_xx = sum(200 <= r.status < 300 for r in replies)
    FAULT_FIGURES.append(f"1. 10 sequential duplicates: {len(sandbox.state.received)} GET, {two_xx}/10 answered 2xx")
    assert len(sandbox.state.received) == 1 and two_xx == 10


def test_2_fifty_concurrent_duplicates_never_make_two_gets(
    relay_env: pytest.MonkeyPatch, aws: Aws, sandbox: TrafficStarsSandbox
) -> None:
    """50 containers (own clients each) get the same delivery at once; repeated over 20 trials."""
    relays = [build_runtime(Settings.from_env()).relay for _ in range(50)]
    trials, worst, over_one = 20, 0, 0
    for trial in range(trials):
        sandbox.state.received.clear()
        body = purchase(f"pi_race_{trial}")
        headers = {"stripe-signature": stripe_signature(body, TEST_STRIPE_SECRET)}
        barrier = threading.Barrier(50)
        codes: list[int] = []

        def deliver(
            index: int,
            body: bytes = body,
            headers: dict[str, str] = headers,
            barrier: threading.Barrier = barrier,
            codes: list[int] = codes,
        ) -> None:
            barrier.wait(10)
            codes.append(outcome_status(relays[index].handle(STRIPE, body, headers)))

        threads = [threading.Thread(target=deliver, args=(i,)) for i in range(50)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        gets = len(sandbox.state.received)
        worst, over_one = max(worst, gets), over_one + (gets > 1)
        assert codes.count(200) == 50
    FAULT_FIGURES.append(
        f"2. 50 concurrent duplicates x {trials} trials: {over_one} trials with more than one GET (max {worst})"
    )
    assert over_one == 0 and worst == 1


def test_3_a_thousand_conversions_through_10_50_100_percent_failure_all_arrive_once(
    invoke: Invoker, fast_retries: pytest.MonkeyPatch, aws: Aws, sandbox: TrafficStarsSandbox
) -> None:
    rng = random.Random(20261124)
    rates = [0.10] * 333 + [0.50] * 333 + [1.00] * 334
    state = {"rate": 0.0}

    def flaky(received: Received) -> tuple[int, str] | None:
        return (503, "<html>overloaded</html>") if rng.random() < state["rate"] else None

    sandbox.state.fault = flaky
    answered: Counter[int] = Counter()
    started = time.monotonic()
    for number, rate in enumerate(rates):
        state["rate"] = rate
        answered[invoke.stripe(purchase(f"pi_bulk_{number:04d}"), TEST_STRIPE_SECRET).status] += 1
        if number % 100 == 99:
            drain_once(aws.sqs, aws.retry_url)  # the worker runs alongside, still failing at the current rate
    waiting = sum(1 for item in aws.items() if item["status"] != "sent")
    state["rate"] = 0.0  # recovery
    drain(aws)
    items = aws.items()
    statuses = Counter(item["status"] for item in items)
    per_code = gets_per_lead_code(sandbox)
    FAULT_FIGURES.append(
        f"3. 1,000 conversions at 10%/50%/100% failure: {waiting} waiting at recovery; after it "
        f"{statuses['sent']} sent, {1000 - len(items)} lost, {len(per_code)} distinct lead_codes accepted, "
        f"{sum(1 for n in per_code.values() if n > 1)} sent twice; {len(sandbox.state.received)} GETs in all, "
        f"answers {dict(answered)}; {time.monotonic() - started:.1f} s"
    )
    assert answered == Counter({200: 1000})
    assert len(items) == 1000 and statuses == Counter({"sent": 1000})
    assert len(per_code) == 1000 and max(per_code.values()) == 1


def test_4_with_20_percent_of_dynamodb_writes_failing_no_2xx_lacks_a_record(
    invoke: Invoker, aws: Aws, sandbox: TrafficStarsSandbox
) -> None:
    injected = Counter[str]()

    def one_write_in_five(environ: dict[str, Any]) -> bool:
        """Fails 20% of write calls, every botocore retry of a failed call included (same body, same fate)."""
        if "UpdateItem" not in environ.get("HTTP_X_AMZ_TARGET", ""):
            return False
        injected["writes"] += 1
        failed = zlib.crc32(environ["moto.body"]) % 5 == 0
        injected["failed"] += failed
        return failed

    invoke(b"", path="/health", method="GET")
    aws.server.fault = one_write_in_five
    bodies = {f"stripe#pi_ddb_{n:03d}": purchase(f"pi_ddb_{n:03d}") for n in range(200)}
    two_xx_without_record, refused, rounds = 0, 0, 0
    pending = dict(bodies)
    while pending and rounds < 10:  # the sender retries what was refused
        rounds += 1
        for pk, body in list(pending.items()):
            reply = invoke.stripe(body, TEST_STRIPE_SECRET)
            if 200 <= reply.status < 300:
                aws.server.fault, fault = None, aws.server.fault
                two_xx_without_record += aws.record(pk) is None
                aws.server.fault = fault
                del pending[pk]
            else:
                refused += 1
                assert reply.status >= 500
    aws.server.fault = None
    FAULT_FIGURES.append(
        f"4. 20% of DynamoDB writes failing ({injected['failed']} of {injected['writes']} UpdateItem requests), "
        f"200 purchases: {two_xx_without_record} answered 2xx without a record; "
        f"{refused} answered 5xx and retried by the sender; {len(bodies) - len(pending)}/200 recorded "
        f"after {rounds} rounds"
    )
    assert two_xx_without_record == 0 and not pending


def test_5_a_worker_killed_between_claim_and_send_sends_once_after_its_lease(
    invoke: Invoker, fast_retries: pytest.MonkeyPatch, aws: Aws, sandbox: TrafficStarsSandbox
) -> None:
    from postback_relay.aws.store import Claim, ConversionStore

    sandbox.state.fault = lambda r: (503, "")
    invoke.stripe(purchase("pi_killed"), TEST_STRIPE_SECRET)
    aws.sqs.purge_queue(QueueUrl=aws.retry_url)
    sandbox.state.fault = None
    sandbox.state.received.clear()
    dying = ConversionStore(aws.dynamodb, aws.table_name, 90)
    assert isinstance(dying.claim("stripe#pi_killed", 1), Claim)
    before = sweep_once()
    time.sleep(1.1)
    drain(aws)
    FAULT_FIGURES.append(
        f"5. worker killed after its claim: swept {before} while the lease held, then "
        f"{len(sandbox.state.accepted())} GET after it expired"
    )
    assert before == 0 and len(sandbox.state.accepted()) == 1
    assert aws.record("stripe#pi_killed")["status"] == "sent"  # type: ignore[index]


def test_6_the_dead_letter_queue_redriven_twice_makes_one_get_per_conversion(
    invoke: Invoker, fast_retries: pytest.MonkeyPatch, aws: Aws, sandbox: TrafficStarsSandbox
) -> None:
    from postback_relay.aws.queue import RetryQueue
    from postback_relay.aws.store import ConversionStore
    from postback_relay.ops.replay import redrive_dead_letters

    fast_retries.setenv("RETRY_WINDOW_SECONDS", "1")
    reset_runtime()
    sandbox.state.fault = lambda r: (503, "")
    ids = [invoke.stripe(purchase(f"pi_dlq_{n}"), TEST_STRIPE_SECRET).body["conversion_id"] for n in range(5)]
    time.sleep(1.1)
    while drain_once(aws.sqs, aws.retry_url):
        pass
    assert {aws.record(i)["status"] for i in ids} == {"failed"}  # type: ignore[index]
    sandbox.state.fault = None
    sandbox.state.received.clear()
    store = ConversionStore(aws.dynamodb, aws.table_name, 90)
    queue = RetryQueue(aws.sqs, aws.retry_url, aws.dead_letter_url)
    first = redrive_dead_letters(aws.sqs, store, queue)
    for conversion_id in ids:
        queue.dead_letter(conversion_id, "operator re-parked it", 1)
    second = redrive_dead_letters(aws.sqs, store, queue)
    fast_retries.setenv("RETRY_WINDOW_SECONDS", "259200")
    reset_runtime()
    drain(aws)
    per_code = gets_per_lead_code(sandbox)
    FAULT_FIGURES.append(
        f"6. DLQ redriven twice: {len(first.queued)} then {len(second.queued)} re-queued; "
        f"GETs per conversion {sorted(per_code.values())}"
    )
    assert sorted(per_code.values()) == [1] * 5


def test_7_secrets_manager_down_uses_the_cache_or_asks_the_sender_to_retry(
    invoke: Invoker, aws: Aws, sandbox: TrafficStarsSandbox
) -> None:
    def secrets_down(environ: dict[str, Any]) -> bool:
        return "secretsmanager" in environ.get("HTTP_X_AMZ_TARGET", "")

    aws.server.fault = secrets_down
    cold = invoke.stripe(purchase("pi_sm_1"), TEST_STRIPE_SECRET)
    aws.server.fault = None
    retried = invoke.stripe(purchase("pi_sm_1"), TEST_STRIPE_SECRET)
    aws.server.fault = secrets_down
    from postback_relay.runtime import get_runtime

    get_runtime().relay._secrets._max_age = 0  # type: ignore[attr-defined] # the cache has expired
    from aws_lambda_powertools.utilities import parameters

    parameters.clear_caches()
    warm = invoke.stripe(purchase("pi_sm_2"), TEST_STRIPE_SECRET)
    aws.server.fault = None
    FAULT_FIGURES.append(
        f"7. Secrets Manager down: nothing cached -> {cold.status}, the sender's retry -> {retried.status} "
        f"{retried.body['status']}; cache expired during the outage -> {warm.status} {warm.body['status']}"
    )
    assert cold.status == 503 and aws.record("stripe#pi_sm_1")["status"] == "sent"  # type: ignore[index]
    assert (retried.status, warm.status, warm.body["status"]) == (200, 200, "sent")


ROUTES = [
    *(("POST", f"/webhooks/{name}") for name in ("stripe", "shopify", "woocommerce", "paddle", "lemonsqueezy")),
    ("GET", "/postback"),
    ("GET", "/health"),
    ("POST", "/health"),
    ("GET", "/webhooks/stripe"),
]
header_names = st.sampled_from(
    [
        "stripe-signature",
        "x-shopify-hmac-sha256",
        "x-wc-webhook-signature",
        "paddle-signature",
        "x-signature",
        "x-postback-token",
        "content-type",
        "user-agent",
        "x-anything",
    ]
)
header_values = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=120) | st.builds(
    lambda t, v: f"t={t},v1={v}", st.integers(-(2**40), 2**40), st.text("0123456789abcdef", max_size=70)
)
bodies = (
    st.binary(max_size=2048)
    | st.builds(
        lambda obj: json.dumps(obj).encode(),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=20),
            lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
            max_leaves=12,
        ),
    )
    | st.just(purchase("pi_fuzz"))
)


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(
    route=st.sampled_from(ROUTES),
    headers=st.dictionaries(header_names, header_values, max_size=4),
    body=bodies,
    query=st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=60),
    encoded=st.booleans(),
)
def test_9_malformed_input_never_gets_a_5xx_or_stores_anything(
    fuzz_target: tuple[Aws, list[int]],
    route: tuple[str, str],
    headers: dict[str, str],
    body: bytes,
    query: str,
    encoded: bool,
) -> None:
    from postback_relay.handlers.http import lambda_handler
    from postback_relay_dev.apigw import LocalContext, build_event

    aws, statuses = fuzz_target
    method, path = route
    content_type = "application/octet-stream" if encoded else "application/json"
    event = build_event(
        method,
        path,
        [("content-type", content_type), *headers.items()],
        body,
        query.replace("#", ""),
        route_key=f"{method} {path}",
    )
    result = lambda_handler(event, LocalContext())
    statuses.append(int(result["statusCode"]))
    assert int(result["statusCode"]) < 500
    json.loads(result["body"])
    assert aws.raw_items() == []


@pytest.fixture(scope="module")
def fuzz_statuses() -> list[int]:
    return []


@pytest.fixture
def fuzz_target(invoke: Invoker, aws: Aws, fuzz_statuses: list[int]) -> Iterator[tuple[Aws, list[int]]]:
    yield aws, fuzz_statuses
    FAULT_FIGURES.append(
        f"9. fuzzed requests to every route: {len(fuzz_statuses)} sent, answers {dict(Counter(fuzz_statuses))}, "
        f"{sum(s >= 500 for s in fuzz_statuses)} 5xx, 0 items stored"
    )


def test_8_the_canary_key_appears_nowhere(aws: Aws) -> None:
    written = "\n".join(WRITTEN)
    hits = written.count(TEST_KEY) + written.count(TEST_STRIPE_SECRET)
    FAULT_FIGURES.append(
        f"8. canary key and signing secret in {len(written):,} characters of logs, items and queue messages: "
        f"{hits} occurrences"
    )
    assert len(written) > 100_000 and hits == 0
