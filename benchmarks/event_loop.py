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
also give each call's time less the collector's pauses within it, the
thread CPU time of the longest call, and the thread's context switches
within each step (Linux only). A voluntary switch means the step waited
for something. An involuntary one means the operating system preempted it.
"""

from __future__ import annotations

import asyncio
import gc
import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import regclient_ext
import regclient_ext._async as async_module

from fetchers import Target, make_client
from measure import Figure


@dataclass(frozen=True)
class Step:
    """One timed step: wall-clock bounds, thread CPU time, and the thread's context switches within it."""

    begin: float
    end: float
    cpu: float
    waits: int
    preemptions: int

    @property
    def wall(self) -> float:
        return self.end - self.begin


class StepTimer:
    """A timer of one step on the current thread: ``with StepTimer() as timer: ...``, then read ``timer.step``."""

    def __enter__(self) -> StepTimer:
        self._usage = resource.getrusage(resource.RUSAGE_THREAD)
        self._cpu = time.thread_time()
        self._begin = time.perf_counter()
        return self

    def __exit__(self, *exc_info: object) -> None:
        end = time.perf_counter()
        cpu = time.thread_time() - self._cpu
        usage = resource.getrusage(resource.RUSAGE_THREAD)
        self.step = Step(self._begin, end, cpu, usage.ru_nvcsw - self._usage.ru_nvcsw, usage.ru_nivcsw - self._usage.ru_nivcsw)


@dataclass
class LoopBlocking:
    """The timed steps of every call, keyed by operation handle or by asyncio task.

    ``native_calls`` keeps every start and finish call, to tell work from
    waiting.
    """

    operation_of_task: dict[asyncio.Task[Any], int] = field(default_factory=dict)
    reader_callbacks: list[float] = field(default_factory=list)
    native_calls: list[Step] = field(default_factory=list)
    # The start, decode and finish steps of every call, and the garbage collector's pauses as (begin, end).
    steps_of_task: dict[asyncio.Task[Any], list[Step]] = field(default_factory=dict)
    finish_steps: dict[int, Step] = field(default_factory=dict)
    gc_pauses: list[tuple[float, float]] = field(default_factory=list)

    def clear(self) -> None:
        for steps in (self.operation_of_task, self.steps_of_task, self.finish_steps):
            steps.clear()
        self.reader_callbacks.clear()
        self.native_calls.clear()
        self.gc_pauses.clear()

    def per_call_ms(self) -> list[float]:
        return [sum(step.wall for step in steps) * 1000 for steps in self.steps_of_task.values()]

    def per_call_without_gc_ms(self) -> list[float]:
        """Return each call's blocked time less the garbage collector's pauses within its steps."""
        return [sum(step.wall - self.gc_time(step) for step in steps) * 1000 for steps in self.steps_of_task.values()]

    def per_call_cpu_without_gc_ms(self) -> list[float]:
        """Return each call's thread CPU time less the garbage collector's pauses within its steps: the call's own work."""
        return [sum(max(0.0, step.cpu - self.gc_time(step)) for step in steps) * 1000 for steps in self.steps_of_task.values()]

    def longest_call_cpu_ms(self) -> tuple[float, float]:
        """Return the maximum blocked time of a call and the thread CPU time within that call."""
        totals = [(sum(step.wall for step in steps), sum(step.cpu for step in steps)) for steps in self.steps_of_task.values()]
        wall, cpu = max(totals)
        return wall * 1000, cpu * 1000

    def gc_time(self, step: Step) -> float:
        return sum(max(0.0, min(step.end, pause_end) - max(step.begin, pause_begin)) for pause_begin, pause_end in self.gc_pauses)


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
        with StepTimer() as timer:
            operation = self.native.start(client, request, notify_fd)
        self.timings.native_calls.append(timer.step)
        if operation is not None:
            task = asyncio.current_task()
            assert task is not None
            self.timings.operation_of_task[task] = operation
            self.timings.steps_of_task.setdefault(task, []).append(timer.step)
        return operation

    def finish(self, operation: int) -> Any:
        with StepTimer() as timer:
            result = self.native.finish(operation)
        self.timings.native_calls.append(timer.step)
        self.timings.finish_steps[operation] = timer.step
        return result


def timed_decode(decode: Callable[[Any], Any], timings: LoopBlocking) -> Callable[[Any], Any]:
    def wrapper(result: Any) -> Any:
        timer = StepTimer()
        try:
            with timer:
                return decode(result)
        finally:
            task = asyncio.current_task()
            assert task is not None
            steps = timings.steps_of_task.setdefault(task, [])
            steps.append(timer.step)
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
    incomplete = sum(1 for steps in timings.steps_of_task.values() if len(steps) != 3)
    if incomplete:
        raise RuntimeError(f"{incomplete} of {calls} calls are missing a start, finish or decode step")
    return timings


def measure_loop_blocking(target: Target, expected: Any, calls: int, runs: int) -> dict[str, Figure | str]:
    """Measure ``runs`` runs of ``calls`` concurrent fetches and return the blocking figures over all calls.

    Times are in ms. blocked_p50, blocked_p99 and blocked_max are per call.
    cpu_max_without_gc is the maximum thread CPU time a call spent outside
    the collector's pauses. reader_max is the longest pipe-reader
    callback. native_max is the longest single start or finish call, and
    native_max_cpu the thread CPU time within it. steps_waited and
    steps_preempted count the steps (start, finish and decode) with a
    voluntary or an involuntary context switch.
    """
    per_call: list[float] = []
    without_gc: list[float] = []
    cpu_without_gc: list[float] = []
    longest_calls: list[tuple[float, float]] = []
    gc_pauses: list[float] = []
    reader_callbacks: list[float] = []
    native_calls: list[Step] = []
    steps: list[Step] = []
    for _ in range(runs):
        timings = run_concurrent_calls(target, expected, calls)
        per_call += timings.per_call_ms()
        without_gc += timings.per_call_without_gc_ms()
        cpu_without_gc += timings.per_call_cpu_without_gc_ms()
        longest_calls.append(timings.longest_call_cpu_ms())
        gc_pauses += [(end - begin) * 1000 for begin, end in timings.gc_pauses]
        reader_callbacks += timings.reader_callbacks
        native_calls += timings.native_calls
        steps += [step for call_steps in timings.steps_of_task.values() for step in call_steps]

    percentiles = statistics.quantiles(per_call, n=100, method="inclusive")
    longest = max(native_calls, key=lambda step: step.wall)
    return {
        "blocked_p50": single_figure(percentiles[49]),
        "blocked_p99": single_figure(percentiles[98]),
        "blocked_max": single_figure(max(per_call)),
        "blocked_max_cpu": single_figure(max(longest_calls)[1]),
        "gc_max": single_figure(max(gc_pauses, default=0.0)),
        "blocked_max_without_gc": single_figure(max(without_gc)),
        "cpu_max_without_gc": single_figure(max(cpu_without_gc)),
        "reader_max": single_figure(max(reader_callbacks) * 1000),
        "native_max": single_figure(longest.wall * 1000),
        "native_max_cpu": single_figure(longest.cpu * 1000),
        "steps_waited": count_steps([step for step in steps if step.waits], len(steps)),
        "steps_preempted": count_steps([step for step in steps if step.preemptions], len(steps)),
    }


def count_steps(selected: list[Step], total: int) -> str:
    """Return "N of TOTAL", with the longest selected step's wall time."""
    if not selected:
        return f"0 of {total}"
    return f"{len(selected)} of {total}, longest {max(step.wall for step in selected) * 1000:.3f} ms"


def single_figure(milliseconds: float) -> Figure:
    return Figure(milliseconds, milliseconds, milliseconds, "ms")
