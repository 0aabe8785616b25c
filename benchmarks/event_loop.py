"""How long each AsyncClient call holds the event loop, during many concurrent calls.

A call holds the loop in three places: ``_native.start`` (hand the request
to Go), ``_native.finish`` (copy the result out, called from the pipe
reader) and the JSON decode of the result. tests/test_performance_features.py
times the first two per function; this module also ties them to the call
they belong to, through the operation handle, and adds the decode.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import regclient_ext
import regclient_ext._async as async_module

from fetchers import Target, make_client
from measure import Figure


@dataclass
class LoopHolds:
    """Seconds spent in each timed step, keyed by operation handle or by asyncio task."""

    start: dict[int, float] = field(default_factory=dict)
    finish: dict[int, float] = field(default_factory=dict)
    decode: dict[asyncio.Task[Any], float] = field(default_factory=dict)
    operation_of_task: dict[asyncio.Task[Any], int] = field(default_factory=dict)
    reader_callbacks: list[float] = field(default_factory=list)

    def clear(self) -> None:
        for steps in (self.start, self.finish, self.decode, self.operation_of_task):
            steps.clear()
        self.reader_callbacks.clear()

    def per_call_ms(self) -> list[float]:
        return [(self.start[operation] + self.finish[operation] + self.decode[task]) * 1000 for task, operation in self.operation_of_task.items()]


class TimedNative:
    """Stands in for regclient_ext._native inside _async, timing start and finish per operation."""

    def __init__(self, native: Any, holds: LoopHolds) -> None:
        self.native = native
        self.holds = holds

    def __getattr__(self, name: str) -> Any:
        return getattr(self.native, name)

    def start(self, client: int, request: bytes, notify_fd: int) -> Any:
        begin = time.perf_counter()
        operation = self.native.start(client, request, notify_fd)
        elapsed = time.perf_counter() - begin
        if operation is not None:
            self.holds.start[operation] = elapsed
            task = asyncio.current_task()
            assert task is not None
            self.holds.operation_of_task[task] = operation
        return operation

    def finish(self, operation: int) -> Any:
        begin = time.perf_counter()
        result = self.native.finish(operation)
        self.holds.finish[operation] = time.perf_counter() - begin
        return result


def timed_decode(decode: Callable[[Any], Any], holds: LoopHolds) -> Callable[[Any], Any]:
    def wrapper(result: Any) -> Any:
        begin = time.perf_counter()
        try:
            return decode(result)
        finally:
            task = asyncio.current_task()
            assert task is not None
            holds.decode[task] = time.perf_counter() - begin

    return wrapper


def timed_reader(collect: Callable[[], None], holds: LoopHolds) -> Callable[[], None]:
    def wrapper() -> None:
        begin = time.perf_counter()
        collect()
        holds.reader_callbacks.append(time.perf_counter() - begin)

    return wrapper


def loop_holds(target: Target, expected: Any, calls: int) -> tuple[Figure, Figure, Figure, Figure]:
    """Run ``calls`` concurrent fetches and return the per-call hold's p50, p99 and max, and the longest pipe-reader callback, in ms."""
    holds = LoopHolds()

    async def main() -> list[Any]:
        client = make_client(target, regclient_ext.AsyncClient, cache_size=0)
        # Instance attributes shadow the methods: _watch registers the wrapped
        # reader on the first call, and get_image_config calls the wrapped decode.
        client._collect = timed_reader(client._collect, holds)
        client._config = timed_decode(client._config, holds)
        async with client:
            await client.get_image_config(target.image, platform=target.platform)  # load Go and create the Go client
            holds.clear()  # count only the concurrent calls
            return await asyncio.gather(*(client.get_image_config(target.image, platform=target.platform) for _ in range(calls)))

    original = async_module._native
    async_module._native = TimedNative(original, holds)
    try:
        results = asyncio.run(main())
    finally:
        async_module._native = original

    wrong = sum(1 for result in results if result != expected)
    if wrong:
        raise RuntimeError(f"{wrong} of {calls} async fetches returned a config that differs from the fixture layout's")
    per_call = holds.per_call_ms()
    if len(per_call) != calls:
        raise RuntimeError(f"timed {len(per_call)} calls, expected {calls}")
    percentiles = statistics.quantiles(per_call, n=100, method="inclusive")
    return (
        single_figure(percentiles[49]),
        single_figure(percentiles[98]),
        single_figure(max(per_call)),
        single_figure(max(holds.reader_callbacks) * 1000),
    )


def single_figure(milliseconds: float) -> Figure:
    return Figure(milliseconds, milliseconds, milliseconds, "ms")
