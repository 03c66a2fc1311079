"""The benchmark (bench/, `make bench`) still runs, in a tiny configuration, and counts what it must.

Only counts are asserted, never timings: those are for people reading bench/RESULTS.md, not for CI."""

from __future__ import annotations

from bench.run import Config, render, run


def test_the_benchmark_runs_and_counts_the_aws_calls_of_each_webhook() -> None:
    results = run(Config(conversions=6, cold_runs=1, info_runs=0, memory_conversions=3, artifact=False, tenants=5))
    counts = results.counts
    assert counts["dynamodb_per_conversion"] == 2
    assert counts["dynamodb_per_duplicate"] == 2  # a refused conditional create, then the note of the event
    assert counts["dynamodb_per_ignored"] == 0
    assert counts["dynamodb_per_no_click_id"] == 1
    assert counts["dynamodb_per_refund"] == 2  # the ids it names and their aliases, read at once; the reversal
    assert counts["sqs_per_conversion"] == 0
    assert counts["secrets_calls_first_invocation"] == 1
    assert counts["secrets_calls_per_container"] == 1
    assert counts["secrets_calls_per_warm_invocation"] == 0
    assert (counts["secrets_calls_within_max_age"], counts["secrets_calls_after_max_age"]) == (1, 2)
    assert counts["log_lines_are_json"] == 1
    # a warm tenant's conversion costs what the default tenant's does: no read of its item or its secret
    assert counts["dynamodb_per_tenant_conversion"] == 2
    assert (counts["tenant_config_reads_per_warm_request"], counts["tenant_secret_reads_per_warm_request"]) == (0, 0)
    table = render(results)
    for section in ("1. Cold start", "2. Warm", "3b. Tenants", "3. AWS calls", "4. Memory", "5. Cost per million"):
        assert section in table
