"""How long each AsyncClient call blocks the event loop, during many concurrent calls.

A call blocks the loop in three places: ``_native.start`` (hand the
request to Go), ``_native.finish`` (copy the result out, called from the
pipe reader) and the JSON decode of the result. TimedNative in
tests/test_performance_features.py times the first two per function. This
module ties each step to the call it belongs to, through the operation
handle, and adds the decode.

Two things stretch a step that are not the step's own work: a pause of
Python's garbage collector, which any allocation may start, and the
operating system running another thread on the CPU. The figures therefore
also give each call's time less the collector's pauses within it, and the
thread CPU time of the longest call.
"""

from __future__ import annotations

import asyncio
import gc
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
class LoopBlocking:
    """Seconds spent in each timed step, keyed by operation handle or by asyncio task.

    ``native_calls`` keeps (wall, thread CPU) seconds of every start and
    finish call, to tell work from waiting.
    """

    start: dict[int, float] = field(default_factory=dict)
    finish: dict[int, float] = field(default_factory=dict)
    decode: dict[asyncio.Task[Any], float] = field(default_factory=dict)
    operation_of_task: dict[asyncio.Task[Any], int] = field(default_factory=dict)
    reader_callbacks: list[float] = field(default_factory=list)
    native_calls: list[tuple[float, float]] = field(default_factory=list)
    # (begin, end, thread CPU) of every step of a call, and the garbage collector's pauses as (begin, end).
    steps_of_task: dict[asyncio.Task[Any], list[tuple[float, float, float]]] = field(default_factory=dict)
    finish_steps: dict[int, tuple[float, float, float]] = field(default_factory=dict)
    gc_pauses: list[tuple[float, float]] = field(default_factory=list)

    def clear(self) -> None:
        for steps in (self.start, self.finish, self.decode, self.operation_of_task, self.steps_of_task, self.finish_steps):
            steps.clear()
        self.reader_callbacks.clear()
        self.native_calls.clear()
        self.gc_pauses.clear()

    def per_call_ms(self) -> list[float]:
        return [(self.start[operation] + self.finish[operation] + self.decode[task]) * 1000 for task, operation in self.operation_of_task.items()]

    def per_call_without_gc_ms(self) -> list[float]:
        """Return each call's blocked time less the garbage collector's pauses within its steps."""
        return [sum(end - begin - self.gc_time(begin, end) for begin, end, _ in steps) * 1000 for steps in self.steps_of_task.values()]

    def longest_call_cpu_ms(self) -> tuple[float, float]:
        """Return the maximum blocked time of a call and the thread CPU time within that call."""
        totals = [(sum(end - begin for begin, end, _ in steps), sum(cpu for _, _, cpu in steps)) for steps in self.steps_of_task.values()]
        wall, cpu = max(totals)
        return wall * 1000, cpu * 1000

    def gc_time(self, begin: float, end: float) -> float:
        return sum(max(0.0, min(end, pause_end) - max(begin, pause_begin)) for pause_begin, pause_end in self.gc_pauses)


class GcPauses:
    """Records the garbage collector's pauses into a LoopBlocking while installed in gc.callbacks."""

    def __init__(self, timings: LoopBlocking) -> None:
        self.timings = timings
        self.began = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self.began = time.perf_counter()
        else:
            self.timings.gc_pauses.append((self.began, time.perf_counter()))


class TimedNative:
    """Stands in for regclient_ext._native inside _async, timing start and finish per operation."""

    def __init__(self, native: Any, timings: LoopBlocking) -> None:
        self.native = native
        self.timings = timings

    def __getattr__(self, name: str) -> Any:
        return getattr(self.native, name)

    def start(self, client: int, request: bytes, notify_fd: int) -> Any:
        begin, cpu_begin = time.perf_counter(), time.thread_time()
        operation = self.native.start(client, request, notify_fd)
        elapsed, cpu = time.perf_counter() - begin, time.thread_time() - cpu_begin
        self.timings.native_calls.append((elapsed, cpu))
        if operation is not None:
            self.timings.start[operation] = elapsed
            task = asyncio.current_task()
            assert task is not None
            self.timings.operation_of_task[task] = operation
            self.timings.steps_of_task.setdefault(task, []).append((begin, begin + elapsed, cpu))
        return operation

    def finish(self, operation: int) -> Any:
        begin, cpu_begin = time.perf_counter(), time.thread_time()
        result = self.native.finish(operation)
        elapsed, cpu = time.perf_counter() - begin, time.thread_time() - cpu_begin
        self.timings.native_calls.append((elapsed, cpu))
        self.timings.finish[operation] = elapsed
        self.timings.finish_steps[operation] = (begin, begin + elapsed, cpu)
        return result


def timed_decode(decode: Callable[[Any], Any], timings: LoopBlocking) -> Callable[[Any], Any]:
    def wrapper(result: Any) -> Any:
        begin, cpu_begin = time.perf_counter(), time.thread_time()
        try:
            return decode(result)
        finally:
            end = time.perf_counter()
            task = asyncio.current_task()
            assert task is not None
            timings.decode[task] = end - begin
            steps = timings.steps_of_task.setdefault(task, [])
            steps.append((begin, end, time.thread_time() - cpu_begin))
            # The finish step ran in the pipe reader, before this task resumed.
            operation = timings.operation_of_task.get(task)
            if operation in timings.finish_steps:
                steps.append(timings.finish_steps[operation])

    return wrapper


def timed_reader(collect: Callable[[], None], timings: LoopBlocking) -> Callable[[], None]:
    def wrapper() -> None:
        begin = time.perf_counter()
        collect()
        timings.reader_callbacks.append(time.perf_counter() - begin)

    return wrapper


def run_concurrent_calls(target: Target, expected: Any, calls: int) -> LoopBlocking:
    """Run ``calls`` concurrent fetches on a fresh AsyncClient and return the timings of that run."""
    timings = LoopBlocking()

    async def main() -> list[Any]:
        client = make_client(target, regclient_ext.AsyncClient, cache_size=0)
        # Instance attributes shadow the methods: _watch registers the wrapped
        # reader on the first call, and get_image_config calls the wrapped decode.
        client._collect = timed_reader(client._collect, timings)
        client._config = timed_decode(client._config, timings)
        async with client:
            await client.get_image_config(target.image, platform=target.platform)  # load Go and create the Go client
            timings.clear()  # count only the concurrent calls
            return await asyncio.gather(*(client.get_image_config(target.image, platform=target.platform) for _ in range(calls)))

    original = async_module._native
    async_module._native = TimedNative(original, timings)  # type: ignore[assignment]
    pauses = GcPauses(timings)
    gc.callbacks.append(pauses)
    try:
        results = asyncio.run(main())
    finally:
        gc.callbacks.remove(pauses)
        async_module._native = original

    wrong = sum(1 for result in results if result != expected)
    if wrong:
        raise RuntimeError(f"{wrong} of {calls} async fetches returned a config that differs from the fixture layout's")
    if len(timings.operation_of_task) != calls:
        raise RuntimeError(f"timed {len(timings.operation_of_task)} of {calls} calls: the others bypassed _native.start")
    return timings


def measure_loop_blocking(target: Target, expected: Any, calls: int, runs: int) -> dict[str, Figure]:
    """Measure ``runs`` runs of ``calls`` concurrent fetches and return the blocking figures over all calls, in ms.

    blocked_p50, blocked_p99 and blocked_max are per call. reader_max is
    the longest pipe-reader callback. native_max is the longest single
    start or finish call, and native_max_cpu the thread CPU time within it.
    """
    per_call: list[float] = []
    without_gc: list[float] = []
    longest_calls: list[tuple[float, float]] = []
    gc_pauses: list[float] = []
    reader_callbacks: list[float] = []
    native_calls: list[tuple[float, float]] = []
    for _ in range(runs):
        timings = run_concurrent_calls(target, expected, calls)
        per_call += timings.per_call_ms()
        without_gc += timings.per_call_without_gc_ms()
        longest_calls.append(timings.longest_call_cpu_ms())
        gc_pauses += [(end - begin) * 1000 for begin, end in timings.gc_pauses]
        reader_callbacks += timings.reader_callbacks
        native_calls += timings.native_calls

    percentiles = statistics.quantiles(per_call, n=100, method="inclusive")
    longest_wall, longest_cpu = max(native_calls)
    return {
        "blocked_p50": single_figure(percentiles[49]),
        "blocked_p99": single_figure(percentiles[98]),
        "blocked_max": single_figure(max(per_call)),
        "blocked_max_cpu": single_figure(max(longest_calls)[1]),
        "gc_max": single_figure(max(gc_pauses, default=0.0)),
        "blocked_max_without_gc": single_figure(max(without_gc)),
        "reader_max": single_figure(max(reader_callbacks) * 1000),
        "native_max": single_figure(longest_wall * 1000),
        "native_max_cpu": single_figure(longest_cpu * 1000),
    }


def single_figure(milliseconds: float) -> Figure:
    return Figure(milliseconds, milliseconds, milliseconds, "ms")
