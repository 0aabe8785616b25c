"""Processes, load from many threads, leaks and memory."""

from __future__ import annotations

import json
import textwrap
import threading
import time
from pathlib import Path

import pytest

import regclient_ext
from conftest import BASIC_USER, FIXTURE_LAYOUT, Registry, run_python
from oci_layout import LayoutReader

TESTS = Path(__file__).resolve().parent


@pytest.mark.parametrize("method", ["spawn", "forkserver", "fork"])
def test_multiprocessing_start_methods(method: str) -> None:
    # A fresh interpreter that only imported regclient_ext, as a gunicorn or
    # Celery parent does; the pytest process itself has loaded Go already.
    script = textwrap.dedent(
        f"""
        import multiprocessing, sys
        sys.path.insert(0, {str(TESTS)!r})
        import regclient_ext
        from mp_worker import architecture_of

        if __name__ == "__main__":
            context = multiprocessing.get_context({method!r})
            image = {f"ocidir://{FIXTURE_LAYOUT}:v3"!r}
            with context.Pool(2) as pool:
                print(pool.starmap(architecture_of, [(image, "linux/amd64"), (image, "linux/arm64"), (image, "linux/arm/v6")]))
        """
    )
    result = run_python(script, timeout=120, cwd=TESTS)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['amd64', 'arm64', 'arm']"


def wait_for_operations_to_drain(deadline: float = 5.0) -> int:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        operations = regclient_ext.diagnostics()["operations"]
        if operations == 0:
            return 0
        time.sleep(0.01)
    return int(regclient_ext.diagnostics()["operations"])


def test_many_threads_share_one_client(registry: Registry, basic_auth_registry: Registry, fixture_layout: LayoutReader) -> None:
    hosts = [
        regclient_ext.Host(registry.host, tls="disabled"),
        regclient_ext.Host(basic_auth_registry.host, tls="disabled", username=BASIC_USER, password="wrong-password"),
    ]
    client = regclient_ext.Client(hosts=hosts, docker_config=False, docker_certs=False)
    platforms = fixture_layout.platforms("v3")
    expected = {p: json.loads(fixture_layout.config_for("v3", p)[1]) for p in platforms}
    failures: list[str] = []

    def work(worker: int) -> None:
        for i in range(200):
            case = (worker + i) % 4
            try:
                if case == 0:
                    platform = platforms[i % len(platforms)]
                    if client.get_image_config(f"{registry.host}/testrepo:v3", platform=platform) != expected[platform]:
                        failures.append(f"wrong config for {platform}")
                elif case == 1:
                    with pytest.raises(regclient_ext.NotFoundError):
                        client.get_image_config(f"{registry.host}/testrepo:missing-{i}")
                elif case == 2:
                    with pytest.raises(regclient_ext.PlatformNotFoundError):
                        client.get_image_config(f"{registry.host}/testrepo:v1", platform="linux/s390x")
                else:
                    with pytest.raises(regclient_ext.AuthenticationError):
                        client.get_image_config(f"{basic_auth_registry.host}/testrepo:v1")
            except BaseException as error:  # noqa: BLE001 - collect every failure from every thread
                failures.append(f"worker {worker} call {i}: {error!r}")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not any(thread.is_alive() for thread in threads)
    assert failures == []

    assert wait_for_operations_to_drain() == 0
    clients_open = regclient_ext.diagnostics()["clients"]
    client.close()
    assert regclient_ext.diagnostics()["clients"] == clients_open - 1


def test_rss_stays_flat(registry: Registry) -> None:
    script = textwrap.dedent(
        f"""
        import regclient_ext

        def rss_kib():
            for line in open("/proc/self/status"):
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])

        client = regclient_ext.Client(hosts=[regclient_ext.Host({registry.host!r}, tls="disabled")], docker_config=False)
        images = [{f"{registry.host}/testrepo:v3"!r}, {f"{registry.host}/testrepo:v1"!r}]
        missing = {f"{registry.host}/testrepo:missing"!r}

        def run(count):
            for i in range(count):
                if i % 10 == 9:
                    try:
                        client.get_image_config(missing)
                    except regclient_ext.NotFoundError:
                        pass
                else:
                    client.get_image_config(images[i % 2], platform="linux/arm64")

        run(1000)
        before = rss_kib()
        run(20000)
        after = rss_kib()
        print(before, after)
        """
    )
    result = run_python(script, timeout=600)
    assert result.returncode == 0, result.stderr
    before, after = map(int, result.stdout.split())
    assert after - before < 10 * 1024, f"RSS grew from {before} KiB to {after} KiB"
