"""What a child process measures, in a container of its own: AWS answered by ``bench.fakeaws``, TrafficStars
being the parent's sandbox on 127.0.0.1. Each function writes its figures as JSON to ``result_file``."""

from __future__ import annotations

import gc
import json
import os
import resource
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from bench import workload
from bench.fakeaws import FakeAws, install, installed
from postback_relay_dev.apigw import LocalContext

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]
HANDLERS = {"app": ("postback_relay.handlers.http", "lambda_handler"), "minimal": ("bench.minimal", "handler")}


def handler_of(target: str) -> Handler:
    """The handler function of ``app`` (the relay) or ``minimal`` (the floor), importing it if needed."""
    module_name, function = HANDLERS[target]
    __import__(module_name)
    handler: Handler = getattr(sys.modules[module_name], function)
    return handler


def first(target: str, imported_s: float, result_file: str) -> None:
    """After the timed import: the first invocation (clients, secret, TLS handshake) and a second one."""
    fake = install(FakeAws(workload.SECRET))
    handler = handler_of(target)
    events = [workload.conversion(f"first{target}", i) for i in range(2)]
    timings = []
    with stdout_to(os.devnull):
        for event in events:
            started = time.perf_counter()
            reply = handler(event, LocalContext())
            timings.append(time.perf_counter() - started)
            expect(reply, "sent")
    write(result_file, {"import_s": imported_s, "first_s": timings[0], "second_s": timings[1], "calls": fake.calls})


def warm(count: int, result_file: str) -> None:
    """``count`` conversions through the real handler and the minimal one, interleaved; then the AWS calls
    of each kind of webhook, counted, and Secrets Manager calls across the cache's max age."""
    from bench import minimal
    from postback_relay.runtime import reset_runtime

    relay = handler_of("app")
    warmup = max(5, min(50, count // 10))
    repeats = min(count, 50)
    relay_fake, minimal_fake = FakeAws(workload.SECRET), FakeAws(workload.SECRET)
    relay_events = workload.conversions("app", warmup + count)
    minimal_events = workload.conversions("min", warmup + count)
    both: dict[str, Handler] = {"relay": relay, "minimal": minimal.handler}
    fakes = {"relay": relay_fake, "minimal": minimal_fake}
    result: dict[str, Any] = {}
    log = tempfile.NamedTemporaryFile(prefix="bench-log-", delete=False)  # noqa: SIM115 - removed below
    log.close()
    try:
        with stdout_to(log.name):
            # Each handler's first invocation builds its clients: each gets its own fake, so calls count apart.
            with installed(relay_fake):
                expect(relay(relay_events[0], LocalContext()), "sent")
            with installed(minimal_fake):
                expect(minimal.handler(minimal_events[0], LocalContext()), "sent")
            for i in range(1, warmup):
                expect(relay(relay_events[i], LocalContext()), "sent")
                expect(minimal.handler(minimal_events[i], LocalContext()), "sent")

            timed = {"relay": relay_events[warmup:], "minimal": minimal_events[warmup:]}
            result["conversion"] = scenario(both, timed, "sent", fakes, log.name)
            # Redeliveries of purchases already sent.
            again = {name: events[:repeats] for name, events in timed.items()}
            result["duplicate"] = scenario(both, again, "duplicate", fakes, log.name)
            # The relay's other kinds of webhook (the minimal handler knows only conversions).
            no_click = [workload.conversion("nck", i, client_reference_id=None) for i in range(repeats)]
            refunds = [
                workload.stripe_webhook("charge.refunded", f"evt_ref{i:06d}", payment_intent=f"pi_app{i:06d}")
                for i in range(repeats)
            ]
            only_relay = {"relay": relay}
            result["ignored"] = scenario(only_relay, {"relay": workload.ignored(repeats)}, "ignored", fakes, log.name)
            result["no_click_id"] = scenario(only_relay, {"relay": no_click}, "no_click_id", fakes, log.name)
            result["refund"] = scenario(only_relay, {"relay": refunds}, "refunded", fakes, log.name)
            result["calls_total"] = {name: dict(fake.calls) for name, fake in fakes.items()}
            result["item_bytes"] = {
                "relay": relay_fake.item_size(f"stripe#pi_app{warmup:06d}"),
                "minimal": minimal_fake.item_size(f"stripe#pi_min{warmup:06d}"),
            }

            # A new container whose secret may be cached for 1 s: one fetch, then one more after the max age.
            os.environ["SECRET_MAX_AGE_SECONDS"] = "1"
            reset_runtime()
            aged = FakeAws(workload.SECRET)
            with installed(aged):
                for i in range(3):
                    expect(relay(workload.conversion("age", i), LocalContext()), "sent")
                within = aged.count("secretsmanager.GetSecretValue")
                time.sleep(1.1)
                expect(relay(workload.conversion("age", 3), LocalContext()), "sent")
            result["secret_max_age"] = {"within": within, "after": aged.count("secretsmanager.GetSecretValue")}
        with open(log.name, "rb") as written:
            lines = [line for line in written.read().splitlines() if line.strip()]
        result["log_lines_are_json"] = all(isinstance(json.loads(line), dict) for line in lines)
    finally:
        os.unlink(log.name)
    write(result_file, result)


def tenants(count: int, tenant_count: int, result_file: str) -> None:
    """Tenants (README "Tenants"): ``count`` conversions each to one tenant's route, to ``tenant_count``
    tenants' routes in turn (every one warmed: its relay built and its configuration and secret cached), and
    to the default route, interleaved; the AWS calls a warm tenant request makes; what a tenant's first request
    costs; and the RSS a warmed tenant adds to the container."""
    from postback_relay.aws.tenants import tenant_key

    os.environ["TENANT_SECRET_PREFIX"] = "postback-relay/bench/tenants/"
    relay = handler_of("app")
    fake = FakeAws(workload.SECRET)
    url = os.environ["TRAFFICSTARS_URL"]
    names = [f"t{i:03d}" for i in range(tenant_count)]
    for name in names:
        fake.items[tenant_key(name)] = workload.tenant_item(name, url)
    warmup = max(5, min(50, count // 10))
    result: dict[str, Any] = {}
    log = tempfile.NamedTemporaryFile(prefix="bench-log-", delete=False)  # noqa: SIM115 - removed below
    log.close()
    try:
        with stdout_to(log.name), installed(fake):
            for i in range(warmup):
                expect(relay(workload.conversion("dwu", i), LocalContext()), "sent")
                expect(relay(workload.conversion("owu", i, names[0]), LocalContext()), "sent")
            rss_one = current_rss_kb()
            firsts = []
            for i, name in enumerate(names[1:]):
                started = time.thread_time_ns()
                expect(relay(workload.conversion("first", i, name), LocalContext()), "sent")
                firsts.append(time.thread_time_ns() - started)
            for i, name in enumerate(names):
                expect(relay(workload.conversion("warm", i, name), LocalContext()), "sent")
            gc.collect()
            rss_all = current_rss_kb()
            events = {
                "default": workload.conversions("def", count),
                "one": [workload.conversion("one", i, names[0]) for i in range(count)],
                "many": [workload.conversion("many", i, names[i % tenant_count]) for i in range(count)],
            }
            handlers: dict[str, Handler] = dict.fromkeys(events, relay)
            result["timed"] = interleaved(handlers, events, "sent")
            before, counted = fake.calls.copy(), 2 * tenant_count  # each tenant twice more, all warm
            for i in range(counted):
                expect(relay(workload.conversion("calls", i, names[i % tenant_count]), LocalContext()), "sent")
            result["calls_per_request"] = {key: n / counted for key, n in delta(fake.calls, before).items()}
            result["first_request_cpu_ns"] = firsts
            result["rss_kb"] = {"one": rss_one, "all": rss_all}
            result["tenant_count"] = tenant_count
            result["count"] = count
    finally:
        os.unlink(log.name)
    write(result_file, result)


def memory(target: str, count: int, result_file: str) -> None:
    """Peak and current RSS after ``count`` and after ``4 * count`` conversions."""
    handler = handler_of(target)
    fake = install(FakeAws(workload.SECRET))
    warmup = 10
    marks: dict[str, int] = {}
    labels = {warmup: "warm", warmup + count: "n", warmup + 4 * count: "4n"}
    with stdout_to(os.devnull):
        for i in range(warmup + 4 * count):
            expect(handler(workload.conversion(target, i), LocalContext()), "sent")
            fake.items.clear()  # the fake's table is the benchmark's memory, not the handler's
            label = labels.get(i + 1)
            if label:
                marks[f"peak_kb_{label}"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                marks[f"rss_kb_{label}"] = current_rss_kb()
    write(result_file, {**marks, "count": count})


def scenario(
    handlers: Mapping[str, Handler],
    events: Mapping[str, Sequence[dict[str, Any]]],
    status: str,
    fakes: Mapping[str, FakeAws],
    log_file: str,
) -> dict[str, Any]:
    """Time one kind of webhook and count the AWS calls and log bytes it cost each handler."""
    calls_before = {name: fakes[name].calls.copy() for name in handlers}
    log_before = file_size(log_file)
    timed = interleaved(handlers, events, status)
    log_bytes = file_size(log_file) - log_before  # the minimal handler writes nothing
    return {
        **timed,
        "count": min(len(events[name]) for name in handlers),
        "calls": {name: delta(fakes[name].calls, calls_before[name]) for name in handlers},
        "relay_log_bytes": log_bytes,
    }


def interleaved(
    handlers: Mapping[str, Handler], events: Mapping[str, Sequence[dict[str, Any]]], status: str
) -> dict[str, Any]:
    """Wall and thread-CPU nanoseconds per webhook for each handler, alternating which goes first so that
    neither gets the warmer caches. This thread's CPU time leaves out the wait for TrafficStars (the sandbox
    runs in the parent process): it is the time spent in our own code and the libraries it calls."""
    names = list(handlers)
    walls: dict[str, list[int]] = {name: [] for name in names}
    cpus: dict[str, list[int]] = {name: [] for name in names}
    replies: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    context = LocalContext(timeout_s=900)
    length = min(len(events[name]) for name in names)
    gc.collect()
    for i in range(length):
        for name in names if i % 2 == 0 else names[::-1]:
            handler, event = handlers[name], events[name][i]
            wall, cpu = time.perf_counter_ns(), time.thread_time_ns()
            reply = handler(event, context)
            cpu, wall = time.thread_time_ns() - cpu, time.perf_counter_ns() - wall
            walls[name].append(wall)
            cpus[name].append(cpu)
            replies[name].append(reply)
    for name in names:
        for reply in replies[name]:
            expect(reply, status)
    return {"wall_ns": walls, "cpu_ns": cpus}


def expect(reply: Mapping[str, Any], status: str) -> None:
    """A benchmark of failing requests measures nothing: stop at the first unexpected answer."""
    body = json.loads(str(reply.get("body") or "{}"))
    if body.get("status") != status:
        raise SystemExit(f"benchmark webhook answered {reply.get('statusCode')} {body}, expected {status!r}")


def delta(after: Counter[str], before: Counter[str]) -> dict[str, int]:
    """Calls made between two snapshots, by ``service.Operation``."""
    return {key: after[key] - before[key] for key in after if after[key] - before[key]}


def file_size(path: str) -> int:
    """Bytes written to ``path`` so far (stdout flushed first)."""
    sys.stdout.flush()
    return os.stat(path).st_size


def current_rss_kb() -> int:
    """Resident set size now, from /proc (Linux)."""
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") // 1024


@contextmanager
def stdout_to(path: str) -> Iterator[None]:
    """Point file descriptor 1 (the handler's JSON logs and EMF metrics) at ``path``, as Lambda points it at
    its log pipe: the write syscalls stay in the measurement and the terminal stays quiet."""
    sys.stdout.flush()
    saved = os.dup(1)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.dup2(fd, 1)
    os.close(fd)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def write(result_file: str, data: Mapping[str, Any]) -> None:
    """The child's figures, for the parent."""
    with open(result_file, "w") as out:
        json.dump(data, out)
