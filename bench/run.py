"""The benchmark: every figure of the relay side by side with its floor, measured in the same run.

``make bench`` (or ``python -m bench``). The parent process serves the TrafficStars sandbox over HTTPS on
127.0.0.1 and runs each measurement in a child interpreter (a fresh container), so imports are cold, the
sandbox's thread never competes with the measured one and memory is the handler's alone."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import cost, workload

ROOT = workload.ROOT
ARTIFACT = ROOT / ".aws-sam" / "build" / "WebhookFunction"
IMPORT_CODE = (
    "import time\n_s = time.perf_counter()\nimport {modules}\n_d = time.perf_counter() - _s\nprint('BENCH', _d)\n"
)
KEPT_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TZ", "SYSTEMROOT")


@dataclass(frozen=True)
class Config:
    """How much to measure. The defaults take under a minute on two cores."""

    conversions: int = 1000
    cold_runs: int = 12
    info_runs: int = 6
    memory_conversions: int = 400
    tenants: int = 100  # the many-tenants side of the tenants section (against one tenant)
    artifact: bool = True
    src: Path | None = None  # measure another checkout's src/ (e.g. the commit before a change)


@dataclass
class Row:
    """One line of the table: the relay's figure, its floor, their ratio and the target, if any."""

    section: str
    name: str
    relay: str
    floor: str = ""
    ratio: float | None = None
    target: str = ""
    ok: bool | None = None


@dataclass
class Results:
    """Everything measured, the table made from it, and the named counts the smoke test checks."""

    config: Config
    rows: list[Row] = field(default_factory=list)
    counts: dict[str, float] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)
    cost: list[tuple[str, float, str]] = field(default_factory=list)

    def add(self, *args: Any, **kwargs: Any) -> None:
        """Append a Row."""
        self.rows.append(Row(*args, **kwargs))

    @property
    def missed(self) -> list[Row]:
        """Rows with a target that was not met."""
        return [row for row in self.rows if row.ok is False]


def run(config: Config = Config(), progress: bool = False) -> Results:
    """Measure everything; returns the results (nothing is printed unless ``progress``)."""
    import trustme

    from postback_relay_dev.sandbox import TrafficStarsSandbox

    results = Results(config)
    with tempfile.TemporaryDirectory(prefix="postback-relay-bench-") as scratch:
        authority = trustme.CA()
        ca_file = Path(scratch) / "ca.pem"
        authority.cert_pem.write_to_path(str(ca_file))
        sandbox = TrafficStarsSandbox(workload.TRAFFICSTARS_KEY, authority).start()
        try:
            env = child_env(sandbox.base_url, str(ca_file), config.src)
            say = _printer(progress)
            say("cold imports")
            _cold(results, env, scratch)
            say("first invocations")
            _first(results, env, scratch)
            say(f"warm: {config.conversions} conversions through each handler")
            _warm(results, env, scratch)
            if config.tenants:
                say(f"tenants: {config.conversions} conversions to one tenant, {config.tenants} in turn, the default")
                _tenants(results, env, scratch)
            say(f"memory: {config.memory_conversions} and {4 * config.memory_conversions} conversions")
            _memory(results, env, scratch)
            _cost(results)
        finally:
            sandbox.stop()
    return results


def child_env(trafficstars_url: str, ca_file: str, src: Path | None = None) -> dict[str, str]:
    """A clean environment for children: no AWS profile or config of the user's, the relay's settings only;
    ``src`` (another checkout's src/) comes first on the path when given."""
    env = {name: os.environ[name] for name in KEPT_ENV if name in os.environ}
    env.update(workload.relay_env(trafficstars_url, ca_file))
    path = os.pathsep.join([*([str(src.resolve())] if src else []), str(ROOT)])
    env.update({"AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull, "PYTHONPATH": path})
    return env


def child(args: Sequence[str], env: dict[str, str], scratch: str) -> dict[str, Any]:
    """Run ``python -m bench.child ARGS RESULT`` and return what it wrote."""
    result_file = tempfile.mktemp(dir=scratch, suffix=".json")  # noqa: S306 - the child creates it, in our dir
    completed = subprocess.run(
        [sys.executable, "-m", "bench.child", *args, result_file],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"bench child {' '.join(args)} failed:\n{completed.stdout}\n{completed.stderr}")
    with open(result_file) as data:
        loaded: dict[str, Any] = json.load(data)
    return loaded


def import_seconds(modules: str, env: dict[str, str], flags: Sequence[str] = ()) -> float:
    """Seconds to import ``modules`` in a fresh interpreter, measured inside it (startup excluded)."""
    completed = subprocess.run(
        [sys.executable, *flags, "-c", IMPORT_CODE.format(modules=modules)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    lines = [line for line in completed.stdout.splitlines() if line.startswith("BENCH ")]
    if completed.returncode != 0 or not lines:
        raise RuntimeError(f"importing {modules} failed:\n{completed.stdout}\n{completed.stderr}")
    return float(lines[-1].split()[1])


def paired_imports(runs: int, pairs: Mapping[str, tuple[str, dict[str, str], Sequence[str]]]) -> dict[str, list[float]]:
    """Each import ``runs`` times, alternating between them so that drift hits all alike."""
    seconds: dict[str, list[float]] = {name: [] for name in pairs}
    for _ in range(runs):
        for name, (modules, env, flags) in pairs.items():
            seconds[name].append(import_seconds(modules, env, flags))
    return seconds


def _cold(results: Results, env: dict[str, str], scratch: str) -> None:
    runs = results.config.cold_runs
    measured = paired_imports(
        runs, {"floor": ("boto3, requests", env, ()), "relay": ("postback_relay.handlers.http", env, ())}
    )
    floor, relay = statistics.median(measured["floor"]), statistics.median(measured["relay"])
    results.raw["cold"] = measured
    section = f"1. Cold start (fresh interpreter, median of {runs})"
    results.add(
        section,
        "import the handler module vs boto3 + requests",
        _ms(relay),
        _ms(floor),
        relay / floor,
        "<= 1.30x",
        relay / floor <= 1.30,
    )
    info = results.config.info_runs
    traced_env = {k: v for k, v in env.items() if k != "POWERTOOLS_TRACE_DISABLED"}
    traced_env.update(
        {
            "LAMBDA_TASK_ROOT": str(ROOT / "src"),
            "AWS_LAMBDA_FUNCTION_NAME": "postback-relay-bench",
            "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:2000",
            "AWS_XRAY_CONTEXT_MISSING": "IGNORE_ERROR",
        }
    )
    if info:
        traced = paired_imports(info, {"relay": ("postback_relay.handlers.http", traced_env, ())})["relay"]
        results.raw["cold_traced"] = traced
        value = statistics.median(traced)
        results.add(
            section,
            "  info: same, Tracer on (Lambda env, deployed with the Tracing=Active parameter)",
            _ms(value),
            _ms(floor),
            value / floor,
        )
    if info and results.config.artifact and results.config.src is None:
        stale = _artifact_stale()
        if stale:
            results.add(section, f"  info: from the sam build artifact: skipped ({stale})", "")
        else:
            _artifact_rows(results, env, scratch, section, floor)


def _artifact_rows(results: Results, env: dict[str, str], scratch: str, section: str, floor: float) -> None:
    """The import as Lambda does it: from the sam build output (src/Makefile compiles the bytecode in, since
    /var/task is read-only and a package without it is compiled again at every cold start), and the same
    files without bytecode, as the default Python builder shipped them."""
    bare = Path(scratch) / "artifact-without-pyc"
    shutil.copytree(ARTIFACT, bare, ignore=shutil.ignore_patterns("__pycache__"))
    for label, directory in (("as built (.pyc compiled in)", ARTIFACT), ("without .pyc", bare)):
        artifact_env = {**env, "PYTHONPATH": f"{directory}{os.pathsep}{ROOT}"}
        pairs = {
            "floor": ("boto3, requests", artifact_env, ("-B",)),
            "relay": ("postback_relay.handlers.http", artifact_env, ("-B",)),
        }
        measured = paired_imports(results.config.info_runs, pairs)
        results.raw[f"cold_artifact_{label}"] = measured
        a_floor, a_relay = statistics.median(measured["floor"]), statistics.median(measured["relay"])
        results.add(
            section,
            f"  info: from .aws-sam/build, {label} (floor: the same, from there)",
            _ms(a_relay),
            _ms(a_floor),
            a_relay / a_floor,
        )


def _first(results: Results, env: dict[str, str], scratch: str) -> None:
    runs = results.config.cold_runs
    found: dict[str, list[dict[str, Any]]] = {"app": [], "minimal": []}
    for _ in range(runs):
        for target in found:
            found[target].append(child(["first", target], env, scratch))
    results.raw["first"] = found
    section = f"1. Cold start (fresh interpreter, median of {runs})"

    def median(target: str, key: str) -> float:
        return float(statistics.median(run[key] for run in found[target]))

    def total(target: str) -> float:
        return float(statistics.median(run["import_s"] + run["first_s"] for run in found[target]))

    relay, floor = median("app", "first_s"), median("minimal", "first_s")
    results.add(section, "first invocation after import vs minimal handler", _ms(relay), _ms(floor), relay / floor)
    relay, floor = total("app"), total("minimal")
    results.add(section, "import + first invocation vs minimal handler", _ms(relay), _ms(floor), relay / floor)
    secrets = [run["calls"].get("secretsmanager.GetSecretValue", 0) for run in found["app"]]
    results.counts["secrets_calls_first_invocation"] = max(secrets)


def _warm(results: Results, env: dict[str, str], scratch: str) -> None:
    data = child(["warm", str(results.config.conversions)], env, scratch)
    results.raw["warm"] = data
    conversion, duplicate = data["conversion"], data["duplicate"]
    count = conversion["count"]
    section = f"2. Warm, per webhook (N = {count}, interleaved with the minimal handler)"
    for label, kind in (("conversion", conversion), ("duplicate", duplicate)):
        for measure, unit in (("cpu_ns", "own-code CPU"), ("wall_ns", "wall")):
            relay, floor = kind[measure]["relay"], kind[measure]["minimal"]
            for stat in ("median", "p99"):
                r, f = _stat(relay, stat), _stat(floor, stat)
                target = ok = None
                if label == "conversion" and measure == "cpu_ns" and stat == "median":
                    target, ok = "<= 1.25x", r / f <= 1.25
                results.add(section, f"{label}: {unit} {stat}", _ms(r / 1e9), _ms(f / 1e9), r / f, target or "", ok)
    for label in ("ignored", "no_click_id", "refund"):
        cpu = data[label]["cpu_ns"]["relay"]
        results.add(section, f"{label}: own-code CPU median (relay only)", _ms(_stat(cpu, "median") / 1e9))
    results.add(
        section,
        "log bytes per conversion / per duplicate (relay; the floor logs nothing)",
        f"{conversion['relay_log_bytes'] / count:.0f} / {duplicate['relay_log_bytes'] / duplicate['count']:.0f}",
    )

    section = "3. AWS calls, counted"

    def per(kind: dict[str, Any], who: str, service: str) -> float:
        calls: dict[str, int] = kind["calls"].get(who, {})
        return sum(n for key, n in calls.items() if key.startswith(service + ".")) / int(kind["count"])

    counts = results.counts
    totals = data["calls_total"]
    counts["secrets_calls_per_container"] = totals["relay"].get("secretsmanager.GetSecretValue", 0)
    counts["secrets_calls_per_warm_invocation"] = per(conversion, "relay", "secretsmanager")
    counts["secrets_calls_within_max_age"] = data["secret_max_age"]["within"]
    counts["secrets_calls_after_max_age"] = data["secret_max_age"]["after"]
    counts["dynamodb_per_conversion"] = per(conversion, "relay", "dynamodb")
    counts["dynamodb_per_duplicate"] = per(duplicate, "relay", "dynamodb")
    for label in ("ignored", "no_click_id", "refund"):
        counts[f"dynamodb_per_{label}"] = per(data[label], "relay", "dynamodb")
    counts["sqs_per_conversion"] = per(conversion, "relay", "sqs")
    counts["log_lines_are_json"] = float(data["log_lines_are_json"])
    floor_conv, floor_dup = per(conversion, "minimal", "dynamodb"), per(duplicate, "minimal", "dynamodb")
    floor_secrets = totals["minimal"].get("secretsmanager.GetSecretValue", 0)
    results.add(
        section,
        "Secrets Manager per container, within the max age",
        str(counts["secrets_calls_per_container"]),
        str(floor_secrets),
        None,
        "1",
        counts["secrets_calls_per_container"] == 1,
    )
    results.add(
        section,
        "Secrets Manager per warm invocation",
        f"{counts['secrets_calls_per_warm_invocation']:g}",
        "0",
        None,
        "0",
        counts["secrets_calls_per_warm_invocation"] == 0,
    )
    results.add(
        section,
        "Secrets Manager with a 1 s max age: 3 webhooks, then 1 after 1.1 s",
        f"{counts['secrets_calls_within_max_age']:g} then {counts['secrets_calls_after_max_age']:g}",
        "",
        None,
        "1 then 2",
        (counts["secrets_calls_within_max_age"], counts["secrets_calls_after_max_age"]) == (1, 2),
    )
    results.add(
        section,
        "DynamoDB per conversion",
        f"{counts['dynamodb_per_conversion']:g}",
        f"{floor_conv:g}",
        None,
        "<= 2",
        counts["dynamodb_per_conversion"] <= 2,
    )
    results.add(
        section,
        "DynamoDB per duplicate (the refused create returns the record; the note is the second)",
        f"{counts['dynamodb_per_duplicate']:g}",
        f"{floor_dup:g}",
        None,
        "<= 2",
        counts["dynamodb_per_duplicate"] <= 2,
    )
    results.add(
        section,
        "DynamoDB per ignored event",
        f"{counts['dynamodb_per_ignored']:g}",
        "",
        None,
        "0",
        counts["dynamodb_per_ignored"] == 0,
    )
    results.add(
        section,
        "DynamoDB per purchase without click id / per refund",
        f"{counts['dynamodb_per_no_click_id']:g} / {counts['dynamodb_per_refund']:g}",
    )
    results.add(section, "SQS per conversion", f"{counts['sqs_per_conversion']:g}")
    results.add(
        section,
        "item size after a conversion (DynamoDB sizing)",
        f"{data['item_bytes']['relay']} B",
        f"{data['item_bytes']['minimal']} B",
    )


def _tenants(results: Results, env: dict[str, str], scratch: str) -> None:
    """Tenants cost nothing per warm request: a tenant's route against the default one, and many tenants in
    turn against one (README "Tenants"); the AWS calls of a warm tenant request; a tenant's first request;
    the memory a tenant adds; and the fixed monthly cost of the tenants themselves."""
    many = results.config.tenants
    data = child(["tenants", str(results.config.conversions), str(many)], env, scratch)
    results.raw["tenants"] = data
    cpu = data["timed"]["cpu_ns"]
    section = (
        f"3b. Tenants, warm per webhook (N = {data['count']}, interleaved: the default route, one tenant's, "
        f"{many} tenants' in turn)"
    )
    for stat in ("median", "p99"):
        default, one, spread = (_stat(cpu[name], stat) for name in ("default", "one", "many"))
        name = f"one tenant's route vs the default route: own-code CPU {stat}"
        results.add(section, name, _ms(one / 1e9), _ms(default / 1e9), one / default)
        target, ok = ("<= 1.05x", spread / one <= 1.05) if stat == "median" else ("", None)
        name = f"{many} tenants in turn vs one tenant: own-code CPU {stat}"
        results.add(section, name, _ms(spread / 1e9), _ms(one / 1e9), spread / one, target, ok)
    calls = data["calls_per_request"]
    counts = results.counts
    counts["tenant_config_reads_per_warm_request"] = calls.get("dynamodb.GetItem", 0.0)
    counts["tenant_secret_reads_per_warm_request"] = calls.get("secretsmanager.GetSecretValue", 0.0)
    counts["dynamodb_per_tenant_conversion"] = sum(n for key, n in calls.items() if key.startswith("dynamodb."))
    results.add(
        section,
        "AWS calls per warm tenant conversion: DynamoDB (of them GetItem) / Secrets Manager",
        f"{counts['dynamodb_per_tenant_conversion']:g} ({counts['tenant_config_reads_per_warm_request']:g}) / "
        f"{counts['tenant_secret_reads_per_warm_request']:g}",
        f"{counts.get('dynamodb_per_conversion', 0):g} (0) / 0",
        None,
        "no tenant read",
        counts["tenant_config_reads_per_warm_request"] == 0 and counts["tenant_secret_reads_per_warm_request"] == 0,
    )
    firsts = data["first_request_cpu_ns"]
    first, warm = _stat(firsts, "median"), _stat(cpu["one"], "median")
    name = "a tenant's first request in a container (its item, its secret, its relay built): own-code CPU median"
    results.add(section, name, _ms(first / 1e9), _ms(warm / 1e9), first / warm)
    per_tenant_kb = (data["rss_kb"]["all"] - data["rss_kb"]["one"]) / max(1, many - 1)
    counts["rss_kb_per_tenant"] = per_tenant_kb
    results.add(section, f"RSS a warmed tenant adds to a container ({many} tenants)", f"{per_tenant_kb:.0f} KB")
    results.add(
        section,
        f"fixed cost of {many} tenants a month (their secrets and per-tenant metrics, their reads per max age)",
        f"${cost.tenants_per_month(many):.2f}",
        f"${cost.tenants_per_month(1):.2f} (1 tenant)",
    )


def _memory(results: Results, env: dict[str, str], scratch: str) -> None:
    n = results.config.memory_conversions
    found = {target: child(["memory", target, str(n)], env, scratch) for target in ("app", "minimal")}
    results.raw["memory"] = found
    section = "4. Memory (peak RSS of a container)"
    relay, floor = found["app"], found["minimal"]
    results.add(
        section,
        f"after {n} conversions",
        _mb(relay["peak_kb_n"]),
        _mb(floor["peak_kb_n"]),
        relay["peak_kb_n"] / floor["peak_kb_n"],
    )
    results.add(
        section,
        f"after {4 * n} conversions",
        _mb(relay["peak_kb_4n"]),
        _mb(floor["peak_kb_4n"]),
        relay["peak_kb_4n"] / floor["peak_kb_4n"],
    )
    growth = relay["peak_kb_4n"] - relay["peak_kb_n"]
    floor_growth = floor["peak_kb_4n"] - floor["peak_kb_n"]
    results.counts["peak_rss_growth_kb"] = growth
    results.add(
        section,
        f"growth from {n} to {4 * n} (flat: < 1 MB)",
        f"{growth / 1024:+.2f} MB",
        f"{floor_growth / 1024:+.2f} MB",
        None,
        "flat",
        growth < 1024,
    )


def _cost(results: Results) -> None:
    data = results.raw["warm"]
    conversion, duplicate = data["conversion"], data["duplicate"]
    measured = cost.Measured(
        conversion_cpu_ms=_stat(conversion["cpu_ns"]["relay"], "median") / 1e6,
        duplicate_cpu_ms=_stat(duplicate["cpu_ns"]["relay"], "median") / 1e6,
        dynamodb_writes_per_conversion=results.counts["dynamodb_per_conversion"],
        dynamodb_writes_per_duplicate=results.counts["dynamodb_per_duplicate"],
        item_bytes=int(data["item_bytes"]["relay"]),
        sqs_calls_per_conversion=results.counts["sqs_per_conversion"],
        secret_calls_per_max_age=results.counts["secrets_calls_per_container"],
        secret_max_age_s=300,
        log_bytes_per_conversion=conversion["relay_log_bytes"] / conversion["count"],
        log_bytes_per_duplicate=duplicate["relay_log_bytes"] / duplicate["count"],
    )
    results.cost = cost.per_million(measured)


# report ----------------------------------------------------------------------------------------------------


def render(results: Results) -> str:
    """The table, as Markdown (it reads as plain text too)."""
    lines: list[str] = []
    section = None
    for row in results.rows:
        if row.section != section:
            section = row.section
            lines += [
                "",
                f"### {section}",
                "",
                "| figure | relay | floor | ratio | target |",
                "|---|---:|---:|---:|---|",
            ]
        ratio = f"{row.ratio:.2f}x" if row.ratio is not None else ""
        verdict = "" if row.ok is None else (" ok" if row.ok else " **MISSED**")
        lines.append(f"| {row.name} | {row.relay} | {row.floor} | {ratio} | {row.target}{verdict} |")
    if results.cost:
        assume = cost.Assumptions()
        lines += [
            "",
            "### 5. Cost per million conversions (us-east-1 list prices, no free tier)",
            "",
            "| item | $ per million | from |",
            "|---|---:|---|",
        ]
        lines += [f"| {name} | {dollars:.2f} | {how} |" for name, dollars, how in results.cost]
        with_xray = sum(dollars for _, dollars, _ in results.cost)
        total = sum(dollars for name, dollars, _ in results.cost if not name.startswith("X-Ray"))
        lines += [f"| **total** (Tracing=PassThrough, the default; Active: {with_xray:.2f}) | **{total:.2f}** | |", ""]
        lines.append(
            "Assumed, not measured: "
            + "; ".join(f"{name} = {getattr(assume, name)}" for name in assume.__dataclass_fields__)
            + ". Prices: bench/cost.py PRICES."
        )
    return "\n".join(lines).lstrip("\n")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m bench [--conversions N] [--cold-runs R] [--memory-conversions M] [--tenants T] [--json FILE]``."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--conversions", type=int, default=Config.conversions, help="warm webhooks per handler")
    parser.add_argument("--cold-runs", type=int, default=Config.cold_runs, help="fresh interpreters per import")
    parser.add_argument("--info-runs", type=int, default=Config.info_runs, help="runs of the info-only rows")
    parser.add_argument("--memory-conversions", type=int, default=Config.memory_conversions)
    parser.add_argument(
        "--tenants",
        type=int,
        default=Config.tenants,
        help="tenants served in turn (0: no tenants section, for a --src before them)",
    )
    parser.add_argument("--no-artifact", action="store_true", help="skip the .aws-sam/build import row")
    parser.add_argument("--json", type=Path, help="also write the raw figures here")
    parser.add_argument("--src", type=Path, help="measure this src/ directory instead (e.g. a checkout of main)")
    args = parser.parse_args(argv)
    config = Config(
        conversions=_bounded(args.conversions, 1, 100_000),
        cold_runs=_bounded(args.cold_runs, 1, 100),
        info_runs=_bounded(args.info_runs, 0, 100),
        memory_conversions=_bounded(args.memory_conversions, 1, 25_000),
        tenants=_bounded(args.tenants, 0, 10_000),
        artifact=not args.no_artifact,
        src=args.src,
    )
    started = time.perf_counter()
    results = run(config, progress=True)
    if config.src:
        print(f"(relay code from {config.src})")
    print(render(results))
    print(f"\n({time.perf_counter() - started:.0f} s; {os.cpu_count()} CPUs; Python {sys.version.split()[0]})")
    if args.json:
        args.json.write_text(json.dumps({"counts": results.counts, "raw": results.raw}, default=str))
    return 1 if results.missed else 0


def _bounded(value: int, low: int, high: int) -> int:
    if not low <= value <= high:
        raise SystemExit(f"expected a number from {low} to {high}, got {value}")
    return value


def _stat(values: Sequence[int], stat: str) -> float:
    if stat == "median":
        return float(statistics.median(values))
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, max(0, round(0.99 * len(ordered)) - 1))])


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms" if seconds >= 0.01 else f"{seconds * 1000:.3f} ms"


def _mb(kb: float) -> str:
    return f"{kb / 1024:.1f} MB"


def _artifact_stale() -> str:
    """Why the sam build output cannot stand for this checkout ('' when it can)."""
    if not (ARTIFACT / "postback_relay" / "handlers" / "http.py").exists():
        return "no .aws-sam/build; run make template or make build"
    for source in (ROOT / "src" / "postback_relay").rglob("*.py"):
        built = ARTIFACT / "postback_relay" / source.relative_to(ROOT / "src" / "postback_relay")
        if "local" not in source.parts and (not built.exists() or built.read_bytes() != source.read_bytes()):
            return "stale: src changed since the last sam build"
    return ""


def _printer(enabled: bool) -> Callable[[str], None]:
    def say(message: str) -> None:
        if enabled:
            print(f"... {message}", file=sys.stderr, flush=True)

    return say
