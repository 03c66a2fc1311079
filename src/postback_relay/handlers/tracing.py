"""powertools' Tracer, without the X-Ray SDK when tracing is off.

The default Tracer imports ``aws_xray_sdk.core`` even when it is disabled (tests, ``make run``,
POWERTOOLS_TRACE_DISABLED), and outside Lambda that import builds two botocore clients for the sampler:
about 100 ms of start-up for nothing. When tracing is off the Tracer gets a provider that does nothing
instead; when it is on (in Lambda, ``Tracing: Active``) it is the usual X-Ray Tracer."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from aws_lambda_powertools import Tracer
from aws_lambda_powertools.tracing.base import BaseProvider, BaseSegment


def make_tracer() -> Tracer:
    """The X-Ray Tracer when powertools would trace, a no-op one (same API) when it would not."""
    if not Tracer._is_tracer_disabled():  # powertools' own rule: env var, not in Lambda, SAM local
        return Tracer()
    return Tracer(disabled=True, provider=NoTracing())


class _NoSegment(BaseSegment):
    def close(self, end_time: int | None = None) -> None:
        """Nothing to close."""

    def add_subsegment(self, subsegment: Any) -> None:
        """Nothing recorded."""

    def remove_subsegment(self, subsegment: Any) -> None:
        """Nothing recorded."""

    def put_annotation(self, key: str, value: Any) -> None:
        """Nothing recorded."""

    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None:
        """Nothing recorded."""

    def add_exception(self, exception: BaseException, stack: Any, remote: bool = False) -> None:
        """Nothing recorded."""


class NoTracing(BaseProvider):
    """A tracing provider that records nothing and imports nothing."""

    _segment = _NoSegment()

    @contextmanager
    def in_subsegment(self, name: Any = None, **kwargs: Any) -> Generator[BaseSegment, None, None]:
        """A segment that records nothing."""
        yield self._segment

    @asynccontextmanager
    async def in_subsegment_async(self, name: Any = None, **kwargs: Any) -> AsyncGenerator[BaseSegment, None]:
        """A segment that records nothing."""
        yield self._segment

    def put_annotation(self, key: str, value: Any) -> None:
        """Nothing recorded."""

    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None:
        """Nothing recorded."""

    def patch(self, modules: Sequence[str]) -> None:
        """Nothing patched."""

    def patch_all(self) -> None:
        """Nothing patched."""
