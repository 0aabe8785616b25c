"""Caches, batches and AsyncClient: request counts, ordering, threads and cancellation."""

from __future__ import annotations

import array
import asyncio
import json
import os
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import regclient_ext
from conftest import FIXTURE_LAYOUT, Registry, run_python
from oci_layout import LayoutReader
from servers import ProxyHandler, ProxyServer, StallingServer


@pytest.fixture
def proxy(registry: Registry) -> Iterator[ProxyServer]:
    server = ProxyServer(registry.host)
    yield server
    server.stop()


def proxy_client(proxy: ProxyServer, **options: object) -> regclient_ext.Client:
    return regclient_ext.Client(hosts=[regclient_ext.Host(proxy.host, tls="disabled")], docker_config=False, docker_certs=False, **options)


def expected(reader: LayoutReader, tag: str, platform: str) -> dict[str, object]:
    return json.loads(reader.config_for(tag, platform)[1])


# Content cache


def test_first_lookup_is_three_gets(proxy: ProxyServer) -> None:
    with proxy_client(proxy) as client:
        client.get_image_config(f"{proxy.host}/testrepo:v1", platform="linux/amd64")
    methods = [method for method, path in proxy.stats.requests if path != "/v2/"]
    assert methods == ["GET", "GET", "GET"]


def test_repeat_of_unchanged_tag_is_one_head(proxy: ProxyServer, fixture_layout: LayoutReader) -> None:
    with proxy_client(proxy) as client:
        first = client.get_image_config(f"{proxy.host}/testrepo:v1", platform="linux/amd64")
        before = len(proxy.stats.requests)
        second = client.get_image_config(f"{proxy.host}/testrepo:v1", platform="linux/amd64")
        repeat = proxy.stats.requests[before:]
    assert first == second == expected(fixture_layout, "v1", "linux/amd64")
    assert repeat == [("HEAD", "/v2/testrepo/manifests/v1")]


def test_known_digest_costs_no_request(proxy: ProxyServer, fixture_layout: LayoutReader) -> None:
    digest = fixture_layout.tag_descriptor("v2")["digest"]
    with proxy_client(proxy) as client:
        client.get_image_config(f"{proxy.host}/testrepo@{digest}", platform="linux/arm64")
        before = len(proxy.stats.requests)
        config = client.get_image_config(f"{proxy.host}/testrepo@{digest}", platform="linux/arm64")
        assert proxy.stats.requests[before:] == []
    assert config == expected(fixture_layout, "v2", "linux/arm64")


def test_other_platform_reuses_index(proxy: ProxyServer) -> None:
    with proxy_client(proxy) as client:
        client.get_image_config(f"{proxy.host}/testrepo:v3", platform="linux/amd64")
        before = len(proxy.stats.requests)
        client.get_image_config(f"{proxy.host}/testrepo:v3", platform="linux/arm64")
        methods = [method for method, _ in proxy.stats.requests[before:]]
    # HEAD the tag, then the arm64 manifest and config, which are new.
    assert methods == ["HEAD", "GET", "GET"]


def test_moved_tag_is_fetched_again(registry: Registry, fixture_layout: LayoutReader) -> None:
    target = {"tag": "v1"}

    def retag(handler: ProxyHandler) -> bool:
        handler.path = handler.path.replace("/manifests/moving", f"/manifests/{target['tag']}")
        return False

    proxy = ProxyServer(registry.host, retag)
    try:
        with proxy_client(proxy) as client:
            assert client.get_image_config(f"{proxy.host}/testrepo:moving", platform="linux/amd64") == expected(fixture_layout, "v1", "linux/amd64")
            target["tag"] = "v2"
            assert client.get_image_config(f"{proxy.host}/testrepo:moving", platform="linux/amd64") == expected(fixture_layout, "v2", "linux/amd64")
    finally:
        proxy.stop()


def test_cache_off_always_gets(proxy: ProxyServer) -> None:
    with proxy_client(proxy, cache_size=0) as client:
        for _ in range(2):
            client.get_image_config(f"{proxy.host}/testrepo:v1", platform="linux/amd64")
    methods = [method for method, path in proxy.stats.requests if path != "/v2/"]
    assert methods == ["GET"] * 6


# Batch


def test_batch_keeps_input_order(client: regclient_ext.Client, registry: Registry, fixture_layout: LayoutReader) -> None:
    tags = ["v3", "v1", "v2", "v1", "v3"]
    configs = client.get_image_configs([f"{registry.host}/testrepo:{tag}" for tag in tags], platform="linux/arm64")
    assert configs == [expected(fixture_layout, tag, "linux/arm64") for tag in tags]


def test_batch_return_exceptions(client: regclient_ext.Client, registry: Registry, fixture_layout: LayoutReader) -> None:
    images = [f"{registry.host}/testrepo:v1", f"{registry.host}/testrepo:missing", "Not A Reference", f"{registry.host}/testrepo:a1"]
    results = client.get_image_configs(images, platform="linux/amd64", return_exceptions=True)
    assert results[0] == expected(fixture_layout, "v1", "linux/amd64")
    assert type(results[1]) is regclient_ext.NotFoundError
    assert type(results[2]) is regclient_ext.InvalidReferenceError
    assert type(results[3]) is regclient_ext.UnsupportedMediaTypeError
    with pytest.raises(regclient_ext.NotFoundError):
        client.get_image_configs(images, platform="linux/amd64")


def test_batch_runs_concurrently() -> None:
    server = StallingServer(delay=0.5)
    try:
        with regclient_ext.Client(hosts=[regclient_ext.Host(server.host, tls="disabled")], docker_config=False, retry_limit=1) as client:
            start = time.monotonic()
            results = client.get_image_configs([f"{server.host}/app{i}:v1" for i in range(20)], return_exceptions=True, timeout=10)
            elapsed = time.monotonic() - start
    finally:
        server.stop()
    assert all(isinstance(r, regclient_ext.NotFoundError) for r in results)
    # 20 lookups of 0.5 s each, one after another, would take 10 s.
    assert elapsed < 5


def os_threads() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("Threads:"))


def test_batch_rejects_single_string(client: regclient_ext.Client) -> None:
    with pytest.raises(TypeError):
        client.get_image_configs("ocidir://x:v1")  # type: ignore[arg-type]


# AsyncClient


def async_client(registry: Registry) -> regclient_ext.AsyncClient:
    return regclient_ext.AsyncClient(hosts=[regclient_ext.Host(registry.host, tls="disabled")], docker_config=False, docker_certs=False)


def test_async_methods(registry: Registry, fixture_layout: LayoutReader) -> None:
    async def main() -> tuple[object, ...]:
        async with async_client(registry) as client:
            config = await client.get_image_config(f"{registry.host}/testrepo:v2", platform="linux/arm/v7")
            info = await client.inspect_image(f"{registry.host}/testrepo:v3", platform="linux/arm/v6")
            batch = await client.get_image_configs([f"{registry.host}/testrepo:v1", f"{registry.host}/testrepo:nope"], platform="linux/amd64", return_exceptions=True)
            with pytest.raises(regclient_ext.NotFoundError):
                await client.get_image_config(f"{registry.host}/testrepo:nope")
            return config, info, batch

    config, info, batch = asyncio.run(main())
    assert config == expected(fixture_layout, "v2", "linux/arm/v7")
    assert info.platform == "linux/arm/v6"
    assert info.config == expected(fixture_layout, "v3", "linux/arm/v6")
    assert batch[0] == expected(fixture_layout, "v1", "linux/amd64")
    assert isinstance(batch[1], regclient_ext.NotFoundError)


class TimedNative:
    """Wraps the native module to time each call that runs on the event loop."""

    def __init__(self, native: object) -> None:
        self.native = native
        self.durations: dict[str, list[float]] = {"start": [], "finish": []}

    def __getattr__(self, name: str) -> object:
        function = getattr(self.native, name)
        if name not in self.durations:
            return function

        def timed(*args: object) -> object:
            begin = time.perf_counter()
            try:
                return function(*args)
            finally:
                self.durations[name].append(time.perf_counter() - begin)

        return timed


def test_async_thousand_calls_bounded_threads(registry: Registry, fixture_layout: LayoutReader, monkeypatch: pytest.MonkeyPatch) -> None:
    import regclient_ext._async as async_module

    platforms = fixture_layout.platforms("v3")
    timed = TimedNative(async_module._native)
    monkeypatch.setattr(async_module, "_native", timed)
    decode_times: list[float] = []
    max_threads = 0

    async def fetch(client: regclient_ext.AsyncClient, platform: str) -> dict[str, object]:
        nonlocal max_threads
        result = await client._run(client._config_request(f"{registry.host}/testrepo:v3", platform, None))
        max_threads = max(max_threads, threading.active_count())
        begin = time.perf_counter()
        config = client._config(result)
        decode_times.append(time.perf_counter() - begin)
        return config

    async def main() -> list[dict[str, object]]:
        async with async_client(registry) as client:
            await client.get_image_config(f"{registry.host}/testrepo:v3")  # load Go and make the client first
            return await asyncio.gather(*(fetch(client, platforms[i % 4]) for i in range(1000)))

    threads_before = threading.active_count()
    results = asyncio.run(main())
    for i, config in enumerate(results):
        assert config == expected(fixture_layout, "v3", platforms[i % 4])
    # Every call went through the pipe, with no thread per call. How long
    # each call blocks the loop is measured by the benchmark, not asserted
    # here: on a shared machine a scheduler hiccup would fail a timed test.
    assert len(timed.durations["start"]) == 1001
    assert len(timed.durations["finish"]) == 1001
    assert len(decode_times) == 1000
    assert max_threads <= threads_before + 1


def queued_bytes(fd: int) -> int:
    """Return how many bytes wait in a pipe."""
    import fcntl
    import termios

    count = array.array("i", [0])
    fcntl.ioctl(fd, termios.FIONREAD, count)
    return count[0]


@pytest.mark.skipif(sys.platform == "win32", reason="AsyncClient waits on a thread per call on Windows")
def test_reader_collects_bounded_bursts(registry: Registry, fixture_layout: LayoutReader, monkeypatch: pytest.MonkeyPatch) -> None:
    import regclient_ext._async as async_module

    timed = TimedNative(async_module._native)
    monkeypatch.setattr(async_module, "_native", timed)
    per_callback: list[int] = []
    collect = async_module.AsyncClient._collect

    def counting_collect(client: regclient_ext.AsyncClient) -> None:
        before = len(timed.durations["finish"])
        collect(client)
        per_callback.append(len(timed.durations["finish"]) - before)

    monkeypatch.setattr(async_module.AsyncClient, "_collect", counting_collect)

    async def main() -> list[object]:
        async with async_client(registry) as client:
            await client.get_image_config(f"{registry.host}/testrepo:v1", platform="linux/amd64")
            # Hold the loop while the calls finish, so their results arrive as one burst.
            tasks = [asyncio.create_task(client.get_image_config(f"{registry.host}/testrepo:v1", platform="linux/amd64")) for _ in range(300)]
            await asyncio.sleep(0)
            deadline = time.monotonic() + 30
            while queued_bytes(client._read_fd) < 300 * 8 and time.monotonic() < deadline:
                time.sleep(0.01)
            return list(await asyncio.gather(*tasks))

    results = asyncio.run(main())
    assert all(config == expected(fixture_layout, "v1", "linux/amd64") for config in results)
    assert sum(per_callback) == 301
    assert max(per_callback) == 64


def test_async_cancel_cancels_go_operation() -> None:
    server = StallingServer(delay=None)

    async def main() -> tuple[float, int]:
        client = regclient_ext.AsyncClient(hosts=[regclient_ext.Host(server.host, tls="disabled")], docker_config=False)
        task = asyncio.create_task(client.get_image_config(f"{server.host}/app:v1", timeout=30))
        await asyncio.sleep(0.3)
        start = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        elapsed = time.monotonic() - start
        await client.aclose()
        return elapsed, regclient_ext._native.stats()[1]

    try:
        elapsed, live = asyncio.run(main())
    finally:
        server.stop()
    assert elapsed < 0.2
    assert live == 0


def test_async_client_in_forked_child_raises_fork_error() -> None:
    script = textwrap.dedent(
        f"""
        import asyncio, os
        import regclient_ext
        regclient_ext.get_image_config({f"ocidir://{FIXTURE_LAYOUT}:v1"!r})
        pid = os.fork()
        if pid == 0:
            async def main():
                client = regclient_ext.AsyncClient()
                await client.get_image_config({f"ocidir://{FIXTURE_LAYOUT}:v1"!r})
            try:
                asyncio.run(main())
            except regclient_ext.ForkError:
                os._exit(0)
            os._exit(1)
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status))
        """
    )
    result = run_python(script, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "0"


# The Go runtime's parallelism


def max_procs_over_calls(registry: Registry, **env: str) -> list[int]:
    """Run one call, a batch of 50, then wait; return GOMAXPROCS after each step."""
    script = textwrap.dedent(
        f"""
        import json, time
        import regclient_ext
        client = regclient_ext.Client(hosts=[regclient_ext.Host({registry.host!r}, tls="disabled")], docker_config=False, cache_size=0)
        image = {registry.host!r} + "/testrepo:v3"
        client.get_image_config(image, platform="linux/amd64")
        seen = [regclient_ext.diagnostics()["go_max_procs"]]
        client.get_image_configs([image] * 50, platform="linux/amd64")
        seen.append(regclient_ext.diagnostics()["go_max_procs"])
        time.sleep(1.0)
        seen.append(regclient_ext.diagnostics()["go_max_procs"])
        print(json.dumps(seen))
        """
    )
    environment = {key: value for key, value in os.environ.items() if key != "GOMAXPROCS"} | env
    result = run_python(script, env=environment)
    assert result.returncode == 0, result.stderr
    return list(json.loads(result.stdout))


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="with one CPU the runtime's default is already one P")
def test_runtime_widens_only_while_calls_overlap(registry: Registry) -> None:
    alone, overlapping, quiet = max_procs_over_calls(registry)
    assert (alone, quiet) == (1, 1)
    assert overlapping > 1


def test_gomaxprocs_variable_turns_adapting_off(registry: Registry) -> None:
    assert max_procs_over_calls(registry, GOMAXPROCS="3") == [3, 3, 3]


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="counts threads through /proc")
def test_async_results_overflowing_pipe(registry: Registry, fixture_layout: LayoutReader) -> None:
    # A known digest costs no request, so 12000 calls finish while the loop
    # is blocked and their records overflow the 64 KiB (8192 record) pipe.
    async def main() -> tuple[list[dict[str, object]], int, int]:
        async with async_client(registry) as client:
            info = await client.inspect_image(f"{registry.host}/testrepo:v1", platform="linux/amd64")
            image = f"{registry.host}/testrepo@{info.manifest_digest}"
            threads_before = os_threads()
            calls = [asyncio.create_task(client.get_image_config(image, platform="linux/amd64")) for _ in range(12000)]
            await asyncio.sleep(0)  # every task submits its call
            time.sleep(3)  # block the loop while Go finishes them all
            threads_blocked = os_threads()
            return await asyncio.gather(*calls), threads_before, threads_blocked

    configs, threads_before, threads_blocked = asyncio.run(main())
    assert len(configs) == 12000
    assert all(config == expected(fixture_layout, "v1", "linux/amd64") for config in configs)
    # Goroutines wait for room in the pipe asleep, not in blocked writes that each hold a thread.
    assert threads_blocked < threads_before + 50


def os_threads() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("Threads:"))


def test_finish_before_done_raises() -> None:
    server = StallingServer(delay=None)
    read_fd, write_fd = os.pipe()
    try:
        with regclient_ext.Client(hosts=[regclient_ext.Host(server.host, tls="disabled")], docker_config=False) as client:
            native = regclient_ext._native
            operation = native.start(client._acquire(), client._config_request(f"{server.host}/app:v1", None, 30), write_fd)
            with pytest.raises(ValueError, match="has not finished"):
                native.finish(operation)
            native.cancel(operation)
            record = os.read(read_fd, 8)
            ok, _, _ = native.finish(operation)
    finally:
        os.close(read_fd)
        os.close(write_fd)
        server.stop()
    assert int.from_bytes(record, sys.byteorder) == operation
    assert not ok


def open_sockets() -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
        except FileNotFoundError:
            pass  # the descriptor listdir used, or one closed since
    return count


@pytest.mark.skipif(not os.path.exists("/proc/self/fd"), reason="counts sockets through /proc")
def test_close_closes_connections(registry: Registry) -> None:
    before = open_sockets()
    client = regclient_ext.Client(hosts=[regclient_ext.Host(registry.host, tls="disabled")], docker_config=False, cache_size=0)
    client.get_image_configs([f"{registry.host}/testrepo:v3"] * 30, platform="linux/amd64")
    opened = open_sockets() - before
    client.close()
    deadline = time.monotonic() + 5
    while open_sockets() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert opened > 0
    assert open_sockets() <= before


@pytest.mark.skipif(not os.path.exists("/proc/self/fd"), reason="counts descriptors through /proc")
def test_dropped_async_client_releases_calls() -> None:
    script = textwrap.dedent(
        f"""
        import asyncio, gc, os, sys, time
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        import regclient_ext
        from servers import StallingServer

        def pipes():
            return sum(os.readlink(f"/proc/self/fd/{{fd}}").startswith("pipe:") for fd in os.listdir("/proc/self/fd") if os.path.exists(f"/proc/self/fd/{{fd}}"))

        server = StallingServer(delay=None)
        regclient_ext._native.preload()
        pipes_before = pipes()

        # The loop closes while the call still runs, so nothing will ever
        # collect its result through the loop.
        loop = asyncio.new_event_loop()
        client = regclient_ext.AsyncClient(hosts=[regclient_ext.Host(server.host, tls="disabled")], docker_config=False)
        task = loop.create_task(client.get_image_config(server.host + "/app:v1", timeout=30))
        loop.run_until_complete(asyncio.sleep(0.3))
        loop.close()
        pending = regclient_ext.diagnostics()["operations"]
        del client, task
        gc.collect()
        deadline = time.monotonic() + 5
        while regclient_ext.diagnostics()["operations"] and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.1)  # the reaper closes the pipe after freeing the call
        diagnostics = regclient_ext.diagnostics()
        server.stop()
        print(pending, diagnostics["operations"], diagnostics["clients"], pipes() - pipes_before)
        """
    )
    result = run_python(script, timeout=60)
    assert result.returncode == 0, result.stderr
    pending, operations, clients, extra_pipes = result.stdout.split()
    assert pending == "1"
    assert operations == "0"
    assert clients == "0"
    assert extra_pipes == "0"


def test_call_during_aclose_raises_closed() -> None:
    server = StallingServer(delay=None)

    async def main() -> BaseException | None:
        client = regclient_ext.AsyncClient(hosts=[regclient_ext.Host(server.host, tls="disabled")], docker_config=False)
        first = asyncio.create_task(client.get_image_config(f"{server.host}/app:v1", timeout=30))
        await asyncio.sleep(0.2)

        async def late() -> object:
            # Runs in the loop turn where aclose() finds the pipe drained.
            assert client._drained is not None
            await client._drained.wait()
            return await client.get_image_config(f"{server.host}/app:v2", timeout=30)

        late_task = asyncio.create_task(late())
        await asyncio.sleep(0)
        await client.aclose()
        await asyncio.gather(first, return_exceptions=True)
        try:
            await asyncio.wait_for(late_task, 5)
        except BaseException as error:  # noqa: BLE001 - the test inspects it
            return error
        return None

    try:
        error = asyncio.run(main())
    finally:
        server.stop()
    assert type(error) is regclient_ext.ClientClosedError


def test_aclose_from_another_loop() -> None:
    server = StallingServer(delay=None)
    own = asyncio.new_event_loop()
    thread = threading.Thread(target=own.run_forever, daemon=True)
    thread.start()
    try:
        client = regclient_ext.AsyncClient(hosts=[regclient_ext.Host(server.host, tls="disabled")], docker_config=False)
        calls = [asyncio.run_coroutine_threadsafe(client.get_image_config(f"{server.host}/app:{i}", timeout=30), own) for i in range(3)]
        time.sleep(0.3)
        began = time.monotonic()
        asyncio.run(asyncio.wait_for(client.aclose(), 10))
        elapsed = time.monotonic() - began
        errors = [call.exception(timeout=5) for call in calls]
    finally:
        own.call_soon_threadsafe(own.stop)
        thread.join(5)
        own.close()
        server.stop()
    # It closed the client on the client's own loop, which ended its calls.
    assert elapsed < 2
    assert all(type(error) is regclient_ext.ClientClosedError for error in errors)
    assert regclient_ext.diagnostics()["operations"] == 0


def test_aclose_after_loop_closed() -> None:
    server = StallingServer(delay=None)
    loop = asyncio.new_event_loop()
    client = regclient_ext.AsyncClient(hosts=[regclient_ext.Host(server.host, tls="disabled")], docker_config=False)
    tasks = [loop.create_task(client.get_image_config(f"{server.host}/app:{i}", timeout=30)) for i in range(3)]
    loop.run_until_complete(asyncio.sleep(0.3))
    loop.close()
    try:
        began = time.monotonic()
        asyncio.run(asyncio.wait_for(client.aclose(), 10))
        elapsed = time.monotonic() - began
        deadline = time.monotonic() + 5
        while regclient_ext.diagnostics()["operations"] and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        server.stop()
    del tasks
    assert elapsed < 2
    assert regclient_ext.diagnostics()["operations"] == 0


def test_aclose_while_loop_stopped() -> None:
    server = StallingServer(delay=None)
    loop = asyncio.new_event_loop()
    client = regclient_ext.AsyncClient(hosts=[regclient_ext.Host(server.host, tls="disabled")], docker_config=False)
    tasks = [loop.create_task(client.get_image_config(f"{server.host}/app:{i}", timeout=30)) for i in range(3)]
    batch = loop.create_task(client.get_image_configs([f"{server.host}/app:batch"], timeout=30, return_exceptions=True))
    try:
        loop.run_until_complete(asyncio.sleep(0.3))
        own_close = loop.create_task(client.aclose())
        loop.call_soon(loop.stop)  # the loop stops while its own aclose() waits for Go
        loop.run_forever()
        asyncio.run(asyncio.wait_for(client.aclose(), 10))
        # The stopped loop runs again: its calls and its aclose() end instead of waiting forever.
        done, _ = loop.run_until_complete(asyncio.wait([*tasks, batch, own_close], timeout=5))
    finally:
        loop.close()
        server.stop()
    assert len(done) == 5
    assert all(type(task.exception()) is regclient_ext.ClientClosedError for task in tasks)
    assert [type(error) for error in batch.result()] == [regclient_ext.ClientClosedError]
    assert own_close.exception() is None


def test_aclose_from_another_loop_that_stops() -> None:
    server = StallingServer(delay=None)
    loop = asyncio.new_event_loop()
    client = regclient_ext.AsyncClient(hosts=[regclient_ext.Host(server.host, tls="disabled")], docker_config=False)
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    busy = threading.Event()

    def busy_then_stop() -> None:
        # The loop counts as running until this callback returns, so aclose() hands the close to it first.
        busy.set()
        time.sleep(0.5)
        loop.stop()

    try:
        thread.start()
        calls = [asyncio.run_coroutine_threadsafe(client.get_image_config(f"{server.host}/app:{i}", timeout=30), loop) for i in range(3)]
        time.sleep(0.3)
        loop.call_soon_threadsafe(busy_then_stop)
        busy.wait(5)
        began = time.monotonic()
        asyncio.run(asyncio.wait_for(client.aclose(), 10))
        elapsed = time.monotonic() - began
        thread.join(5)
        assert not thread.is_alive()
        # Run the loop once more, as an application that restarts it would, so the calls can end.
        loop.run_until_complete(asyncio.sleep(0.1))
        errors = [call.exception(timeout=5) for call in calls]
    finally:
        loop.close()
        server.stop()
    assert elapsed < 5
    assert repr(client).endswith("closed>")
    assert all(type(error) is regclient_ext.ClientClosedError for error in errors)


def test_dropped_async_client_collected_while_loop_runs(registry: Registry) -> None:
    import gc

    async def one() -> None:
        client = async_client(registry)
        await client.get_image_config(f"{registry.host}/testrepo:v1", platform="linux/amd64")

    async def main() -> tuple[int, int]:
        await one()
        gc.collect()
        clients_before = regclient_ext.diagnostics()["clients"]
        for _ in range(20):
            await one()
        gc.collect()
        await asyncio.sleep(0)  # the loop runs the released readers' removals
        return clients_before, regclient_ext.diagnostics()["clients"]

    clients_before, clients_after = asyncio.run(main())
    assert clients_after == clients_before


def test_call_after_aclose_of_unused_client() -> None:
    async def main() -> None:
        client = regclient_ext.AsyncClient(docker_config=False)
        await client.aclose()
        await client.get_image_config(f"ocidir://{FIXTURE_LAYOUT}:v1")

    with pytest.raises(regclient_ext.ClientClosedError):
        asyncio.run(main())


def test_abandon_gives_up_on_closed_pipe() -> None:
    # Internal API misuse must not spin a CPU: the ids never arrive on a closed pipe.
    script = textwrap.dedent(
        """
        import os, time
        from regclient_ext import _native
        _native.preload()
        read_fd, write_fd = os.pipe()
        os.close(read_fd)
        os.close(write_fd)
        _native.abandon([12345], read_fd, write_fd, b"")
        began = time.process_time()
        time.sleep(1)
        print(round(time.process_time() - began, 3))
        """
    )
    result = run_python(script, timeout=60)
    assert result.returncode == 0, result.stderr
    assert float(result.stdout) < 0.3


# Spinning while a lone call waits


def run_spin_script(script: str, **env: str) -> str:
    """Run script in a fresh interpreter that has imported regclient_ext and loaded Go; return its output.

    The tests directory is on sys.path, and REGCLIENT_EXT_SPIN_US comes
    only from env.
    """
    code = textwrap.dedent(
        f"""
        import json, sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        import regclient_ext
        regclient_ext._native.preload()
        """
    ) + textwrap.dedent(script)
    environment = {key: value for key, value in os.environ.items() if key != "REGCLIENT_EXT_SPIN_US"} | env
    result = run_python(code, env=environment)
    assert result.returncode == 0, result.stderr
    return result.stdout


def spin_diagnostics(script: str, **env: str) -> dict[str, int]:
    """Run script as run_spin_script does; return the spin and submit-poll figures of diagnostics() after it."""
    output = run_spin_script(
        textwrap.dedent(script)
        + textwrap.dedent(
            """
            diagnostics = regclient_ext.diagnostics()
            print(json.dumps({key: value for key, value in diagnostics.items() if key.startswith(("spin_", "submit_"))}))
            """
        ),
        **env,
    )
    return dict(json.loads(output))


def layout_calls(count: int) -> str:
    """Return a script that makes count calls on one Client to the fixture layout."""
    return f"""
client = regclient_ext.Client(docker_config=False)
for _ in range({count}):
    client.get_image_config("ocidir://{FIXTURE_LAYOUT}:v1", platform="linux/amd64")
"""


LAYOUT_CALLS = layout_calls(20)


def test_fast_calls_finish_while_spinning() -> None:
    # A hundred calls that read a local layout take well under the 10 ms
    # budget, and each comes well within the 2 ms that Go polls after the
    # one before. A loaded machine can still deschedule a spinning thread
    # past its budget, so only some of them must be caught.
    figures = spin_diagnostics(layout_calls(100), REGCLIENT_EXT_SPIN_US="10000")
    assert figures["spin_budget_us"] == 10000
    assert 1 <= figures["spin_waits"] <= 100
    assert 1 <= figures["spin_waits_finished"] <= figures["spin_waits"]
    assert 1 <= figures["submit_polls"] <= 100
    assert 1 <= figures["submit_polls_finished"] <= figures["submit_polls"]


def test_slow_calls_stop_spinning() -> None:
    # Each call waits 50 ms for the server, far past the 1 ms budget. Only
    # the first call spins, because the one before it was not slow.
    script = """
    from servers import StallingServer
    server = StallingServer(delay=0.05)
    client = regclient_ext.Client(hosts=[regclient_ext.Host(server.host, tls="disabled")], docker_config=False)
    for _ in range(4):
        try:
            client.get_image_config(server.host + "/app:v1", timeout=10)
        except regclient_ext.NotFoundError:
            pass
    server.stop()
    """
    figures = spin_diagnostics(script)
    assert figures["spin_budget_us"] == 1000
    assert figures["spin_waits"] == 1
    assert figures["spin_waits_finished"] == 0
    assert figures["submit_polls"] == 0


def test_module_functions_stop_spinning() -> None:
    # With tls= each call first parses the reference on the default client,
    # which is fast. Only the first fetch on the per-host client gives up a spin.
    script = """
    from servers import StallingServer
    server = StallingServer(delay=0.05)
    for _ in range(4):
        try:
            regclient_ext.get_image_config(server.host + "/app:v1", tls="disabled", timeout=10)
        except regclient_ext.NotFoundError:
            pass
    server.stop()
    """
    # A 10 ms budget leaves the parse calls room on a busy machine, and is
    # still far below the server's 50 ms.
    figures = spin_diagnostics(script, REGCLIENT_EXT_SPIN_US="10000")
    assert figures["spin_waits"] - figures["spin_waits_finished"] == 1


def test_interrupted_call_stops_spinning() -> None:
    script = """
    import signal
    from servers import StallingServer

    class Alarm(Exception):
        pass

    def raise_alarm(signum, frame):
        raise Alarm()

    signal.signal(signal.SIGALRM, raise_alarm)
    server = StallingServer(delay=0.05)
    client = regclient_ext.Client(hosts=[regclient_ext.Host(server.host, tls="disabled")], docker_config=False)
    layout = "ocidir://" + sys.path[0] + "/data/regclient-testrepo:v1"
    for _ in range(3):
        client.get_image_config(layout, platform="linux/amd64")
    signal.setitimer(signal.ITIMER_REAL, 0.02)
    try:
        client.get_image_config(server.host + "/app:v1", timeout=10)
    except Alarm:
        pass
    before = regclient_ext.diagnostics()["spin_waits"]
    try:
        client.get_image_config(server.host + "/app:v1", timeout=10)
    except regclient_ext.NotFoundError:
        pass
    print(regclient_ext.diagnostics()["spin_waits"] - before)
    server.stop()
    """
    assert run_spin_script(script).strip() == "0"


def test_batch_of_one_does_not_spin() -> None:
    script = f"""
    client = regclient_ext.Client(docker_config=False)
    for _ in range(5):
        client.get_image_configs(["ocidir://{FIXTURE_LAYOUT}:v1"], platform="linux/amd64")
    """
    assert spin_diagnostics(script)["spin_waits"] == 0


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_reports_no_spins() -> None:
    script = LAYOUT_CALLS + """
import os
pid = os.fork()
if pid == 0:
    figures = regclient_ext.diagnostics()
    os._exit(0 if figures["spin_waits"] == 0 and figures["spin_waits_finished"] == 0 else 1)
_, status = os.waitpid(pid, 0)
assert os.waitstatus_to_exitcode(status) == 0, "the child saw the parent's spin counts"
"""
    assert spin_diagnostics(script)["spin_waits"] > 0


@pytest.mark.parametrize(
    ("value", "budget"),
    [("0", 0), ("250", 250), ("010", 10), ("abc", 1000), ("-5", 1000), ("-0", 1000), ("+5", 1000), (" 5", 1000), ("5 ", 1000), ("10001", 1000), ("", 1000)],
)
def test_spin_budget_variable(value: str, budget: int) -> None:
    figures = spin_diagnostics(LAYOUT_CALLS, REGCLIENT_EXT_SPIN_US=value)
    assert figures["spin_budget_us"] == budget
    if budget == 0:
        assert figures["spin_waits"] == 0
        assert figures["submit_polls"] == 0
