"""Benchmark regclient_ext against an http.client floor and against its peers, and print one Markdown table.

Usage: python benchmarks/run.py [--quick]

It builds and starts olareg and distribution on 127.0.0.1, and both serve
the fixture layout tests/data/regclient-testrepo. Every row reads the
linux/amd64 config of testrepo:v3 (a multi-platform index), first directly
and then through a proxy that adds 20 ms to every request. Progress goes to
stderr, the table to stdout. docs/benchmarks.md explains the rows and
records a run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar, Union

BENCHMARKS = Path(__file__).resolve().parent
ROOT = BENCHMARKS.parent
sys.path.insert(0, str(ROOT / "tests"))

import regclient_ext  # noqa: E402
from conftest import FIXTURE_LAYOUT, Distribution, Registry, build_go_tool  # noqa: E402
from oci_layout import LayoutReader  # noqa: E402
from push import push_layout  # noqa: E402

import event_loop  # noqa: E402
import startup  # noqa: E402
from fetchers import (  # noqa: E402
    FloorFetcher,
    RegctlConfig,
    Target,
    ThreadLocalFloor,
    build_regctl,
    fetch_with_new_client,
    make_client,
    oras_fetcher,
    python_dxf_fetcher,
    skopeo_fetcher,
)
from measure import CPU_UNIT, Figure, async_tasks, batch, checked, interleaved, sequential, thread_pool  # noqa: E402

REPOSITORY = "testrepo"
TAG = "v3"
PLATFORM = "linux/amd64"
ADDED_LATENCY = 0.020  # seconds the proxy waits before forwarding each request
WORKERS = 16
CONCURRENT_FETCHES = 200
EVENT_LOOP_CALLS = 1000
EVENT_LOOP_RUNS = 3
BENCH_BIN = ROOT / "build" / "bench-bin"
GO_CACHE = ROOT / "build" / "go-cache"

# A cell is a measured Figure, or text that explains why there is no figure.
Cell = Union[Figure, str]
T = TypeVar("T")


@dataclass(frozen=True)
class Plan:
    """How many rounds each row runs, and how many fetches each round makes, for one latency setting."""

    rounds: int
    sequential: int
    new_client: int
    python_peer: int
    command_rounds: int


DIRECT_PLAN = Plan(rounds=11, sequential=100, new_client=20, python_peer=30, command_rounds=11)
DELAYED_PLAN = Plan(rounds=7, sequential=5, new_client=3, python_peer=3, command_rounds=7)
QUICK_PLAN = Plan(rounds=3, sequential=3, new_client=2, python_peer=2, command_rounds=2)

# Each row: key, label, unit. Rows in ms/fetch also get their ratio to the floor.
FETCH_ROWS = [
    ("floor", "floor: http.client, 3 GETs on one keep-alive connection", "ms/fetch"),
    ("floor_pool", f"floor, {WORKERS} threads, {CONCURRENT_FETCHES} fetches (control for the thread pool)", f"ms/fetch, wall ÷ {CONCURRENT_FETCHES}"),
    ("warm", "regclient_ext warm sequential (one Client, cache_size=0)", "ms/fetch"),
    ("cached", "regclient_ext cached repeat (default cache: 1 HEAD)", "ms/fetch"),
    ("floor_cpu", "floor: CPU time of the process", CPU_UNIT),
    ("warm_cpu", "regclient_ext warm sequential: CPU time of the process", CPU_UNIT),
    ("cached_cpu", "regclient_ext cached repeat: CPU time of the process", CPU_UNIT),
    ("new_client", "regclient_ext one Client per call", "ms/fetch"),
    ("pool", f"regclient_ext thread pool of {WORKERS}, {CONCURRENT_FETCHES} fetches", f"ms/fetch, wall ÷ {CONCURRENT_FETCHES}"),
    ("async", f"regclient_ext AsyncClient, {CONCURRENT_FETCHES} tasks", f"ms/fetch, wall ÷ {CONCURRENT_FETCHES}"),
    ("batch", f"regclient_ext Client.get_image_configs of {CONCURRENT_FETCHES}", f"ms/fetch, wall ÷ {CONCURRENT_FETCHES}"),
    ("dxf", "python-dxf, one DXF reused", "ms/fetch"),
    ("oras", "oras-py, one OrasClient reused", "ms/fetch"),
    ("skopeo", "skopeo inspect --config, process per fetch", "ms/fetch"),
    ("regctl", "regctl image config, process per fetch", "ms/fetch"),
    ("fastest_peer", "fastest peer's time ÷ regclient_ext warm sequential", "ratio"),
]
PEER_ROWS = ["dxf", "oras", "skopeo", "regctl"]
PEER_NAMES = {"dxf": "python-dxf", "oras": "oras-py", "skopeo": "skopeo", "regctl": "regctl"}
CONCURRENCY_ROWS = [
    ("pool_speedup", f"throughput of {WORKERS} threads ÷ 1 thread (warm sequential)", "ratio"),
    ("async_vs_one", f"{CONCURRENT_FETCHES} async tasks' total time ÷ one warm fetch", "ratio"),
    ("batch_vs_pool", f"batch of {CONCURRENT_FETCHES}, time ÷ thread pool's time for {CONCURRENT_FETCHES}", "ratio"),
]
STARTUP_ROWS = [
    ("interpreter", "interpreter start, python -c pass (no registry)", "ms"),
    ("import", "import regclient_ext, added to interpreter start (no registry)", "ms"),
    ("import_asyncio", "import asyncio alone, added to interpreter start (no registry)", "ms"),
    ("first_call", "first call's extra time over a warm call", "ms"),
    ("rss", "VmRSS added by the first call (loads the Go runtime)", "MiB"),
]
LOOP_ROWS = [
    ("blocked_p50", "event loop blocked per call (start + finish + decode), p50", "ms"),
    ("blocked_p99", "event loop blocked per call (start + finish + decode), p99", "ms"),
    ("blocked_max", "event loop blocked per call (start + finish + decode), max", "ms"),
    ("blocked_max_cpu", "thread CPU time within that longest call", "ms"),
    ("gc_max", "longest pause of Python's garbage collector during the calls", "ms"),
    ("blocked_max_without_gc", "event loop blocked per call less the collector's pauses in it, max", "ms"),
    ("cpu_max_without_gc", "thread CPU time per call less the collector's pauses in it, max (the call's own work)", "ms"),
    ("reader_max", "longest pipe-reader callback (finishes many calls at once)", "ms"),
    ("native_max", "longest single _native.start or _native.finish", "ms"),
    ("native_max_cpu", "thread CPU time within that longest call", "ms"),
    ("steps_waited", "steps (start, finish, decode) that waited: a voluntary context switch", "steps"),
    ("steps_preempted", "steps that the OS preempted: an involuntary context switch", "steps"),
]
Row = tuple[str, str, str]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def attempt(run: Callable[[], T]) -> T | str:
    """Run one measurement; a failure becomes the text of its rows instead of ending the benchmark."""
    try:
        return run()
    except Exception as error:  # noqa: BLE001 - any failure is reported in the table
        text = str(error).splitlines()[0] if str(error) else type(error).__name__
        return f"failed: {type(error).__name__}: {text}"


# Servers


def build_delay_proxy() -> Path:
    """Build benchmarks/delayproxy into build/bench-bin, reusing a binary built from the same source."""
    source = BENCHMARKS / "delayproxy"
    digest = hashlib.sha256((source / "go.mod").read_bytes() + (source / "main.go").read_bytes()).hexdigest()[:16]
    binary = BENCH_BIN / f"delayproxy-{digest}"
    if not binary.exists():
        BENCH_BIN.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, CGO_ENABLED="0", GOCACHE=str(GO_CACHE))
        subprocess.run(["go", "build", "-trimpath", "-o", str(binary), "."], cwd=source, env=env, check=True)
    return binary


class DelayProxy:
    """The delaying proxy (benchmarks/delayproxy) in its own process, in front of ``upstream``."""

    def __init__(self, binary: Path, upstream: str, delay: float) -> None:
        command = [str(binary), upstream, str(delay)]
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        self.host = self.process.stdout.readline().strip()
        if not self.host:
            raise RuntimeError(f"the delaying proxy exited with {self.process.wait()} before it printed its address")

    def stop(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_registries(workdir: Path) -> dict[str, Registry | Distribution]:
    """Start olareg and distribution on 127.0.0.1, each serving the fixture layout as testrepo."""
    olareg_binary = build_go_tool("github.com/olareg/olareg/cmd/olareg", "olareg")
    distribution_binary = build_go_tool("github.com/distribution/distribution/v3/cmd/registry", "distribution")

    olareg_directory = workdir / "olareg"
    shutil.copytree(FIXTURE_LAYOUT, olareg_directory / REPOSITORY)
    servers: dict[str, Registry | Distribution] = {"olareg": Registry(olareg_binary, olareg_directory, "--api-push=false")}

    distribution_directory = workdir / "distribution"
    distribution_directory.mkdir()
    servers["distribution"] = Distribution(distribution_binary, distribution_directory)
    push_layout(servers["distribution"].host, REPOSITORY, FIXTURE_LAYOUT)
    return servers


# Measurements


def python_peer(make_fetcher: Callable[[Target], Any], target: Target, expected: Any, plan: Plan) -> Cell:
    try:
        fetch, _ = make_fetcher(target)
    except ImportError as error:
        return f"not available: {error} (pip install python-dxf oras)"
    return sequential(checked(fetch, expected), rounds=plan.rounds, per_round=plan.python_peer)


def command_peer(make_fetcher: Callable[[Target], Any], target: Target, expected: Any, plan: Plan) -> Cell:
    try:
        fetch, _ = make_fetcher(target)
    except FileNotFoundError as error:
        return f"not available: {error}"
    return sequential(checked(fetch, expected), rounds=plan.command_rounds, per_round=1)


def measure_fetches(target: Target, expected: Any, plan: Plan, regctl: RegctlConfig | str) -> dict[str, Cell]:
    """Measure every fetch row against one registry address (direct or through the proxy)."""
    cells: dict[str, Cell] = {}
    floor = FloorFetcher(target)
    client = make_client(target, cache_size=0)
    cached_client = make_client(target)

    def fetch() -> Any:
        return client.get_image_config(target.image, platform=target.platform)

    def fetch_cached() -> Any:
        return cached_client.get_image_config(target.image, platform=target.platform)

    def compared_with_floor() -> dict[str, Figure]:
        fetches = {"floor": checked(floor.fetch, expected), "warm": checked(fetch, expected), "cached": checked(fetch_cached, expected)}
        return interleaved(fetches, rounds=plan.rounds, per_round=plan.sequential)

    def floor_pool() -> Cell:
        threaded_floor = ThreadLocalFloor(target)
        try:
            return thread_pool(threaded_floor.fetch, expected, workers=WORKERS, total=CONCURRENT_FETCHES, rounds=plan.rounds)
        finally:
            threaded_floor.close()

    try:
        figures = attempt(compared_with_floor)
        for key in ("floor", "warm", "cached", "floor_cpu", "warm_cpu", "cached_cpu"):
            cells[key] = figures[key] if isinstance(figures, dict) else figures
        cells["floor_pool"] = attempt(floor_pool)
        cells["pool"] = attempt(lambda: thread_pool(fetch, expected, workers=WORKERS, total=CONCURRENT_FETCHES, rounds=plan.rounds))
        cells["batch"] = attempt(lambda: batch(client, target, expected, size=CONCURRENT_FETCHES, rounds=plan.rounds))
    finally:
        floor.close()
        client.close()
        cached_client.close()

    cells["new_client"] = attempt(
        lambda: sequential(checked(lambda: fetch_with_new_client(target), expected), rounds=plan.rounds, per_round=plan.new_client)
    )
    cells["async"] = attempt(lambda: async_tasks(target, expected, tasks=CONCURRENT_FETCHES, rounds=plan.rounds))

    cells["dxf"] = attempt(lambda: python_peer(python_dxf_fetcher, target, expected, plan))
    cells["oras"] = attempt(lambda: python_peer(oras_fetcher, target, expected, plan))
    cells["skopeo"] = attempt(lambda: command_peer(skopeo_fetcher, target, expected, plan))
    if isinstance(regctl, str):
        cells["regctl"] = regctl
    else:
        cells["regctl"] = attempt(lambda: command_peer(regctl.fetcher, target, expected, plan))

    cells["fastest_peer"] = fastest_peer(cells)
    return cells


def fastest_peer(cells: dict[str, Cell]) -> Cell:
    warm = cells["warm"]
    peers = []
    for key in PEER_ROWS:
        cell = cells[key]
        if isinstance(cell, Figure):
            peers.append((cell.median, key))
    if not isinstance(warm, Figure) or not peers:
        return "no figure: a row it needs failed"
    fastest, key = min(peers)
    return f"{format_number(fastest / warm.median)}× ({PEER_NAMES[key]})"


def concurrency_ratios(cells: dict[str, Cell]) -> dict[str, Cell]:
    """Derive the concurrency figures from the fetch rows measured behind the delaying proxy."""
    warm, pool, async_run, batch_run = cells["warm"], cells["pool"], cells["async"], cells["batch"]
    ratios: dict[str, Cell] = {}
    if isinstance(warm, Figure) and isinstance(pool, Figure):
        # Both are ms per fetch, so 1 thread's time per fetch over the pool's is the throughput ratio.
        ratios["pool_speedup"] = (
            f"{format_number(warm.median / pool.median)}× "
            f"({format_number(1000 / warm.median)} vs {format_number(1000 / pool.median)} fetches/s)"
        )
    if isinstance(warm, Figure) and isinstance(async_run, Figure):
        total = async_run.median * CONCURRENT_FETCHES
        ratios["async_vs_one"] = f"{format_number(total / warm.median)}× ({format_number(total)} vs {format_number(warm.median)} ms)"
    if isinstance(batch_run, Figure) and isinstance(pool, Figure):
        batch_total, pool_total = batch_run.median * CONCURRENT_FETCHES, pool.median * CONCURRENT_FETCHES
        ratios["batch_vs_pool"] = f"{format_number(batch_total / pool_total)}× ({format_number(batch_total)} vs {format_number(pool_total)} ms)"
    for key, _, _ in CONCURRENCY_ROWS:
        ratios.setdefault(key, "no figure: a row it needs failed")
    return ratios


def measure_startup(targets: dict[str, Target], runs: int, warm_calls: int) -> dict[str, dict[str, Cell]]:
    interpreter, added, added_by_asyncio = startup.import_time(runs)
    # Rows that use no registry are shown once, in the first registry's column.
    rows: dict[str, dict[str, Cell]] = {
        "interpreter": {"olareg": interpreter},
        "import": {"olareg": added},
        "import_asyncio": {"olareg": added_by_asyncio},
        "first_call": {},
        "rss": {},
    }
    for name, target in targets.items():
        log(f"start-up: first call against {name}")
        result = attempt(partial(startup.first_call, target, runs // 2, warm_calls))
        rows["first_call"][name], rows["rss"][name] = result if isinstance(result, tuple) else (result, result)
    return rows


# Table


def format_number(value: float) -> str:
    if abs(value) >= 100:
        return f"{value:.1f}"
    if abs(value) >= 10:
        return f"{value:.2f}"
    return f"{value:.3f}"


def format_cell(cell: Cell | None) -> str:
    if cell is None:
        return "—"
    if isinstance(cell, str):
        return cell.replace("|", "\\|")
    if cell.low == cell.high:
        return format_number(cell.median)
    return f"{format_number(cell.median)} ({format_number(cell.low)}–{format_number(cell.high)})"


def format_ratio(cell: Cell | None, floor: Cell | None) -> str:
    if not isinstance(cell, Figure) or not isinstance(floor, Figure):
        return "—"
    return f"{format_number(cell.median / floor.median)}×"


def floor_for(cell: Cell | None, cells: dict[str, dict[str, Cell]], name: str) -> Cell | None:
    """Return the floor figure that cell is compared with (wall or CPU time per fetch), or None."""
    if not isinstance(cell, Figure):
        return None
    if cell.unit.startswith("ms/fetch"):
        return cells.get("floor", {}).get(name)
    if cell.unit == CPU_UNIT:
        return cells.get("floor_cpu", {}).get(name)
    return None


Section = tuple[str, list[Row], dict[str, dict[str, Cell]]]


def render_table(sections: list[Section], registries: list[str]) -> str:
    """Render the sections as one Markdown table, with a value and a ratio-to-floor column per registry."""
    header = ["Measurement", "Unit"]
    for name in registries:
        header += [name, "× floor"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    for title, rows, cells in sections:
        lines.append("| " + " | ".join([f"**{title}**"] + [""] * (len(header) - 1)) + " |")
        for key, label, unit in rows:
            row_cells = cells.get(key, {})
            line = [label, unit]
            for name in registries:
                cell = row_cells.get(name)
                line += [format_cell(cell), format_ratio(cell, floor_for(cell, cells, name))]
            lines.append("| " + " | ".join(line) + " |")
    return "\n".join(lines)


def describe_machine() -> str:
    with open("/proc/cpuinfo") as cpuinfo:
        model = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "unknown")
    with open("/proc/meminfo") as meminfo:
        memory = next((line.split(":", 1)[1].strip() for line in meminfo if line.startswith("MemTotal")), "unknown")
    go_version = subprocess.run(["go", "version"], capture_output=True, text=True).stdout.strip()
    return (
        f"{os.cpu_count()} CPUs ({model}), MemTotal {memory}, {platform.platform()}, "
        f"Python {platform.python_version()}, {go_version}, regclient_ext {regclient_ext.__version__}"
    )


def peer_versions(target: Target, regctl: RegctlConfig | str) -> str:
    versions = []
    for name, make_fetcher in (("python-dxf", python_dxf_fetcher), ("oras-py", oras_fetcher), ("skopeo", skopeo_fetcher)):
        try:
            versions.append(f"{name} {make_fetcher(target)[1]}")
        except (ImportError, FileNotFoundError):
            versions.append(f"{name} not available")
    versions.append(f"regctl {regctl.fetcher(target)[1]}" if isinstance(regctl, RegctlConfig) else "regctl not available")
    return ", ".join(versions)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="run a few rounds of each row, to check that every row works")
    arguments = parser.parse_args()
    direct_plan = QUICK_PLAN if arguments.quick else DIRECT_PLAN
    delayed_plan = QUICK_PLAN if arguments.quick else DELAYED_PLAN
    startup_runs = 4 if arguments.quick else 30
    event_loop_calls = 100 if arguments.quick else EVENT_LOOP_CALLS
    event_loop_runs = 1 if arguments.quick else EVENT_LOOP_RUNS

    expected = json.loads(LayoutReader(FIXTURE_LAYOUT).config_for(TAG, PLATFORM)[1])
    try:
        regctl: RegctlConfig | str = RegctlConfig(build_regctl(BENCH_BIN, GO_CACHE))
    except (OSError, subprocess.CalledProcessError) as error:
        regctl = f"not available: building regctl failed: {error}"

    proxy_binary = build_delay_proxy()
    workdir = Path(tempfile.mkdtemp(prefix="regclient-ext-bench-"))
    servers = start_registries(workdir)
    proxies: dict[str, DelayProxy] = {}
    try:
        for name, server in servers.items():
            proxies[name] = DelayProxy(proxy_binary, server.host, ADDED_LATENCY)
        direct = {name: Target(server.host, REPOSITORY, TAG, PLATFORM) for name, server in servers.items()}
        delayed = {name: Target(proxy.host, REPOSITORY, TAG, PLATFORM) for name, proxy in proxies.items()}

        direct_cells: dict[str, dict[str, Cell]] = {key: {} for key, _, _ in FETCH_ROWS}
        delayed_cells: dict[str, dict[str, Cell]] = {key: {} for key, _, _ in FETCH_ROWS + CONCURRENCY_ROWS}
        loop_cells: dict[str, dict[str, Cell]] = {key: {} for key, _, _ in LOOP_ROWS}
        for name in servers:
            log(f"{name}: direct")
            for key, cell in measure_fetches(direct[name], expected, direct_plan, regctl).items():
                direct_cells[key][name] = cell
            log(f"{name}: {ADDED_LATENCY * 1000:.0f} ms per request")
            measured = measure_fetches(delayed[name], expected, delayed_plan, regctl)
            measured.update(concurrency_ratios(measured))
            for key, cell in measured.items():
                delayed_cells[key][name] = cell
            log(f"{name}: event loop, {event_loop_calls} calls")
            blocking = attempt(partial(event_loop.measure_loop_blocking, direct[name], expected, event_loop_calls, event_loop_runs))
            for key, _, _ in LOOP_ROWS:
                loop_cells[key][name] = blocking[key] if isinstance(blocking, dict) else blocking

        log("start-up")
        startup_cells = measure_startup(direct, startup_runs, warm_calls=20)
        versions = peer_versions(direct["olareg"], regctl)
    finally:
        for proxy in proxies.values():
            proxy.stop()
        for server in servers.values():
            server.stop()
        if isinstance(regctl, RegctlConfig):
            regctl.close()
        shutil.rmtree(workdir, ignore_errors=True)

    sections = [
        ("Direct to the registry on 127.0.0.1", FETCH_ROWS, direct_cells),
        (f"Through a proxy that adds {ADDED_LATENCY * 1000:.0f} ms to every request", FETCH_ROWS + CONCURRENCY_ROWS, delayed_cells),
        ("Start-up, fresh interpreter per run", STARTUP_ROWS, startup_cells),
        (f"Event loop, {event_loop_runs} × {event_loop_calls} concurrent AsyncClient calls (direct)", LOOP_ROWS, loop_cells),
    ]
    print(render_table(sections, list(servers)))
    log(f"machine: {describe_machine()}")
    log(f"peers: {versions}")


if __name__ == "__main__":
    main()
