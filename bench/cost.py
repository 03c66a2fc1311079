"""Cost per million conversions at AWS list prices, from the benchmark's measured figures.

Prices are us-east-1 list prices, first tier, without free tier (checked 2026-11; edit ``PRICES`` when they
change). Everything that is not measured by the benchmark is an assumption, named and printed with its value."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from postback_relay_dev.template import load_template

PRICES = {
    "http_api_per_million": 1.00,  # HTTP API requests, first 300 M/month
    "lambda_request_per_million": 0.20,
    "lambda_arm64_gb_second": 0.0000133334,  # first 7.5 B GB-s/month
    "lambda_x86_64_gb_second": 0.0000166667,  # first 6 B GB-s/month
    "dynamodb_wru_per_million": 0.625,  # on-demand write request units (1 KB each)
    "dynamodb_storage_gb_month": 0.25,
    "dynamodb_pitr_gb_month": 0.20,  # continuous backups (the template enables point-in-time recovery)
    "sqs_per_million": 0.40,  # standard queue requests (64 KB chunks)
    "secrets_per_10k_calls": 0.05,
    "secret_per_month": 0.40,
    "logs_ingest_gb": 0.50,  # CloudWatch Logs standard ingestion
    "xray_traces_per_million": 5.00,
    "custom_metric_month": 0.30,  # CloudWatch, first 10,000 metrics
    "dynamodb_rru_per_million": 0.125,  # on-demand read request units (4 KB, strongly consistent)
}


@dataclass(frozen=True)
class Assumptions:
    """What the benchmark cannot measure on 127.0.0.1."""

    deliveries_per_conversion: int = 2  # Checkout fires checkout.session.completed and payment_intent.succeeded
    conversions_per_month: int = 1_000_000  # spread evenly: about 0.4 per second, one warm container
    dynamodb_latency_ms: float = 6.0  # per call, in-region
    trafficstars_latency_ms: float = 120.0  # one GET to tsyndicate.com from us-east-1, TLS reused
    platform_log_bytes: int = 900  # Lambda's own platform.start/report JSON lines per invocation
    full_vcpu_mb: int = 1769  # Lambda gives one full vCPU at 1,769 MB, a proportional share below it
    xray_sampled: float = 1.0  # default rule samples 1 request/s + 5%: at ~0.8 deliveries/s that is every one


@dataclass(frozen=True)
class Measured:
    """Per-delivery figures from one benchmark run."""

    conversion_cpu_ms: float  # own-code CPU time (this thread), AWS answered in-process
    duplicate_cpu_ms: float
    dynamodb_writes_per_conversion: float
    dynamodb_writes_per_duplicate: float
    item_bytes: int
    sqs_calls_per_conversion: float
    secret_calls_per_max_age: float  # per container, per cache period
    secret_max_age_s: int
    log_bytes_per_conversion: float
    log_bytes_per_duplicate: float


def template_function() -> dict[str, Any]:
    """MemorySize, Architectures and the retention default, as template.yaml deploys them."""
    template = load_template()
    function = dict(template["Globals"]["Function"])
    function.update(template["Resources"]["WebhookFunction"]["Properties"])
    function["RetentionDays"] = int(template["Parameters"]["RetentionDays"]["Default"])
    return function


def per_million(measured: Measured, assume: Assumptions = Assumptions()) -> list[tuple[str, float, str]]:
    """(line, dollars per million conversions, how it was computed) for each billed item."""
    function = template_function()
    memory_gb = int(function["MemorySize"]) / 1024
    arch = ",".join(function.get("Architectures", ["x86_64"]))
    retention_months = int(function["RetentionDays"]) / 30.4
    million = 1_000_000
    deliveries = assume.deliveries_per_conversion
    duplicates = deliveries - 1
    cpu_share = min(1.0, int(function["MemorySize"]) / assume.full_vcpu_mb)
    conversion_cpu = measured.conversion_cpu_ms / cpu_share
    conversion_ms = math.ceil(
        conversion_cpu
        + measured.dynamodb_writes_per_conversion * assume.dynamodb_latency_ms
        + assume.trafficstars_latency_ms
    )
    duplicate_ms = math.ceil(
        measured.duplicate_cpu_ms / cpu_share + measured.dynamodb_writes_per_duplicate * assume.dynamodb_latency_ms
    )
    gb_seconds = memory_gb * (conversion_ms + duplicates * duplicate_ms) / 1000
    wru = math.ceil(measured.item_bytes / 1024)
    writes = measured.dynamodb_writes_per_conversion + duplicates * measured.dynamodb_writes_per_duplicate
    windows = 30.4 * 86_400 / measured.secret_max_age_s
    secret_calls = windows * measured.secret_calls_per_max_age * million / assume.conversions_per_month
    log_bytes = (
        measured.log_bytes_per_conversion
        + duplicates * measured.log_bytes_per_duplicate
        + deliveries * assume.platform_log_bytes
    )
    item_gb = measured.item_bytes * million / 1e9
    return [
        ("API Gateway HTTP API", deliveries * PRICES["http_api_per_million"], f"{deliveries} deliveries"),
        (
            "Lambda requests",
            deliveries * PRICES["lambda_request_per_million"],
            f"{deliveries} invocations",
        ),
        (
            f"Lambda duration ({arch}, {function['MemorySize']} MB)",
            million * gb_seconds * PRICES[f"lambda_{'arm64' if 'arm64' in arch else 'x86_64'}_gb_second"],
            f"billed {conversion_ms} ms per conversion = {measured.conversion_cpu_ms:.2f} ms own CPU measured, "
            f"/ {cpu_share:.3f} vCPU = {conversion_cpu:.1f} ms, + {measured.dynamodb_writes_per_conversion:g} x "
            f"{assume.dynamodb_latency_ms:g} ms DynamoDB + {assume.trafficstars_latency_ms:g} ms TrafficStars "
            f"(assumed); {duplicate_ms} ms per duplicate",
        ),
        (
            "DynamoDB on-demand writes",
            writes * wru * PRICES["dynamodb_wru_per_million"],
            f"{writes:g} writes x {wru} WRU (item {measured.item_bytes} B)",
        ),
        (
            "DynamoDB storage + PITR",
            item_gb * retention_months * (PRICES["dynamodb_storage_gb_month"] + PRICES["dynamodb_pitr_gb_month"]),
            f"{item_gb:.2f} GB kept {function['RetentionDays']} days",
        ),
        (
            "SQS",
            measured.sqs_calls_per_conversion * PRICES["sqs_per_million"],
            f"{measured.sqs_calls_per_conversion:g} calls per conversion",
        ),
        (
            "Secrets Manager",
            secret_calls / 10_000 * PRICES["secrets_per_10k_calls"]
            + PRICES["secret_per_month"] * million / assume.conversions_per_month,
            f"{measured.secret_calls_per_max_age:g} call per container per {measured.secret_max_age_s} s, "
            f"1 container, {assume.conversions_per_month:,}/month; + 1 secret-month",
        ),
        (
            "CloudWatch Logs ingestion",
            million * log_bytes / 1e9 * PRICES["logs_ingest_gb"],
            f"{measured.log_bytes_per_conversion:.0f} B + {duplicates} x {measured.log_bytes_per_duplicate:.0f} B "
            f"measured + {deliveries} x {assume.platform_log_bytes} B platform lines (assumed)",
        ),
        (
            "X-Ray traces (only with the Tracing=Active parameter; not in the total)",
            deliveries * assume.xray_sampled * PRICES["xray_traces_per_million"],
            f"{assume.xray_sampled:.0%} of deliveries sampled (assumed)",
        ),
    ]


def tenants_per_month(tenants: int, containers: int = 2, max_age_s: int = 300) -> float:
    """What ``tenants`` tenants cost a month whatever their traffic: a secret each, the two per-tenant
    metrics (Webhooks and Postbacks by `tenant`, each hour of the month with data), and each warm container
    reading each tenant's item and secret once per cache max age (``containers`` kept warm)."""
    month_s = 30 * 24 * 3600
    refreshes = tenants * containers * month_s / max_age_s
    return tenants * (PRICES["secret_per_month"] + 2 * PRICES["custom_metric_month"]) + refreshes * (
        PRICES["secrets_per_10k_calls"] / 10_000 + PRICES["dynamodb_rru_per_million"] / 1e6
    )
