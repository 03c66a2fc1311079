"""Entry point of the benchmark's child processes: ``python -m bench.child MODE [ARGS...] RESULT_FILE``.

A child is a fresh Lambda container. Only ``sys`` and ``time`` are loaded here, so a measured import
(``first`` mode) gets no module it needs for free; the measuring code lives in ``bench.measure``."""

from __future__ import annotations

import sys
import time

TARGETS = {"app": "postback_relay.handlers.http", "minimal": "bench.minimal"}


def main(argv: list[str]) -> None:
    """Dispatch ``first TARGET RESULT``, ``warm N RESULT``, ``tenants N TENANTS RESULT`` or
    ``memory TARGET N RESULT``."""
    mode, *args = argv
    if mode == "first":
        started = time.perf_counter()
        __import__(TARGETS[args[0]])
        imported = time.perf_counter() - started
        from bench import measure

        measure.first(args[0], imported, args[1])
    elif mode == "warm":
        from bench import measure

        measure.warm(int(args[0]), args[1])
    elif mode == "tenants":
        from bench import measure

        measure.tenants(int(args[0]), int(args[1]), args[2])
    elif mode == "memory":
        from bench import measure

        measure.memory(args[0], int(args[1]), args[2])
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
