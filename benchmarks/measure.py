"""Timing helpers: medians over rounds of sequential, threaded, asyncio and batch fetches."""

from __future__ import annotations

import asyncio
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import regclient_ext

from fetchers import Fetch, Target, make_client


@dataclass(frozen=True)
class Figure:
    """The median of per-round values, with the lowest and highest round, in ``unit``."""

    median: float
    low: float
    high: float
    unit: str

    @classmethod
    def of(cls, values: list[float], unit: str) -> Figure:
        return cls(statistics.median(values), min(values), max(values), unit)


# The unit of process CPU time per fetch, compared with the floor's CPU time.
CPU_UNIT = "CPU ms/fetch"


def per_fetch_ms(seconds: float, fetches: int) -> float:
    return seconds * 1000 / fetches


def sequential(fetch: Fetch, *, rounds: int, per_round: int, warmup: int = 1) -> Figure:
    """Time ``per_round`` fetches one after another; each round gives ms per fetch."""
    return interleaved({"only": fetch}, rounds=rounds, per_round=per_round, warmup=warmup)["only"]


def interleaved(fetches: dict[str, Fetch], *, rounds: int, per_round: int, warmup: int = 1) -> dict[str, Figure]:
    """Time each fetch as sequential() does, taking turns round by round.

    Taking turns spreads a slow stretch of the machine over every fetch
    alike, so the ratios between them hold better than the absolute times.
    Beside each name's wall time, ``NAME_cpu`` is the CPU time that this
    process (every thread, the Go runtime's included) spent per fetch.
    """
    for fetch in fetches.values():
        for _ in range(warmup):
            fetch()
    values: dict[str, list[float]] = {name: [] for name in fetches}
    cpu_values: dict[str, list[float]] = {name: [] for name in fetches}
    for _ in range(rounds):
        for name, fetch in fetches.items():
            begin, cpu_begin = time.perf_counter(), time.process_time()
            for _ in range(per_round):
                fetch()
            values[name].append(per_fetch_ms(time.perf_counter() - begin, per_round))
            cpu_values[name].append(per_fetch_ms(time.process_time() - cpu_begin, per_round))
    figures = {name: Figure.of(round_values, "ms/fetch") for name, round_values in values.items()}
    figures.update({f"{name}_cpu": Figure.of(round_values, CPU_UNIT) for name, round_values in cpu_values.items()})
    return figures


def thread_pool(fetch: Fetch, expected: Any, *, workers: int, total: int, rounds: int) -> Figure:
    """Time ``total`` fetches spread over ``workers`` threads; each round gives wall time ÷ total."""
    values = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(lambda _: fetch(), range(workers)))  # start every thread and its connection
        for _ in range(rounds):
            begin = time.perf_counter()
            results = list(pool.map(lambda _: fetch(), range(total)))
            values.append(per_fetch_ms(time.perf_counter() - begin, total))
            check_all(results, expected)
    return Figure.of(values, f"ms/fetch, wall ÷ {total}")


def async_tasks(target: Target, expected: Any, *, tasks: int, rounds: int) -> Figure:
    """Time ``tasks`` concurrent AsyncClient fetches on one event loop; each round gives wall time ÷ tasks."""

    async def main() -> list[float]:
        async with make_client(target, regclient_ext.AsyncClient, cache_size=0) as client:
            await client.get_image_config(target.image, platform=target.platform)  # load Go and create the Go client
            values = []
            for _ in range(rounds):
                begin = time.perf_counter()
                results = await asyncio.gather(*(client.get_image_config(target.image, platform=target.platform) for _ in range(tasks)))
                values.append(per_fetch_ms(time.perf_counter() - begin, tasks))
                check_all(results, expected)
            return values

    return Figure.of(asyncio.run(main()), f"ms/fetch, wall ÷ {tasks}")


def batch(client: regclient_ext.Client, target: Target, expected: Any, *, size: int, rounds: int) -> Figure:
    """Time Client.get_image_configs on ``size`` copies of the image; each round gives wall time ÷ size."""
    images = [target.image] * size
    client.get_image_configs(images[:1], platform=target.platform)
    values = []
    for _ in range(rounds):
        begin = time.perf_counter()
        results = client.get_image_configs(images, platform=target.platform)
        values.append(per_fetch_ms(time.perf_counter() - begin, size))
        check_all(results, expected)
    return Figure.of(values, f"ms/fetch, wall ÷ {size}")


def checked(fetch: Fetch, expected: Any) -> Fetch:
    """Run ``fetch`` once and return it if the config matches ``expected``; raise otherwise."""
    result = fetch()
    if result != expected:
        raise RuntimeError("returned a config that differs from the fixture layout's")
    return fetch


def check_all(results: list[Any], expected: Any) -> None:
    wrong = sum(1 for result in results if result != expected)
    if wrong:
        raise RuntimeError(f"{wrong} of {len(results)} fetches returned a config that differs from the fixture layout's")
