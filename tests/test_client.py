"""Client: credentials, TLS, platforms, timeouts, interruption, logging and reuse."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import platform
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import regclient_ext
from conftest import BASIC_PASSWORD, BASIC_USER, FIXTURE_LAYOUT, CertificateAuthority, Registry, run_python
from oci_layout import LayoutReader
from servers import ProxyHandler, ProxyServer, StallingServer


def plain_client(*hosts: regclient_ext.Host, **options: object) -> regclient_ext.Client:
    return regclient_ext.Client(hosts=hosts, docker_config=False, docker_certs=False, **options)


def expected_config(reader: LayoutReader, tag: str, platform: str) -> dict[str, object]:
    return json.loads(reader.config_for(tag, platform)[1])


# Credentials


def test_token_auth_and_reuse(token_registry: tuple[Registry, ProxyServer], fixture_layout: LayoutReader) -> None:
    _, proxy = token_registry
    host = regclient_ext.Host(proxy.host, tls="disabled", username=BASIC_USER, password=BASIC_PASSWORD)
    with plain_client(host) as client:
        assert client.get_image_config(f"{proxy.host}/testrepo:v1", platform="linux/amd64") == expected_config(fixture_layout, "v1", "linux/amd64")
        tokens_after_first = len(proxy.stats.paths("/token"))
        connections_after_first = proxy.stats.connections
        assert tokens_after_first >= 1

        assert client.get_image_config(f"{proxy.host}/testrepo:v1", platform="linux/arm64") == expected_config(fixture_layout, "v1", "linux/arm64")
        assert len(proxy.stats.paths("/token")) == tokens_after_first
        assert proxy.stats.connections == connections_after_first


def test_token_auth_wrong_password(token_registry: tuple[Registry, ProxyServer]) -> None:
    _, proxy = token_registry
    with plain_client(regclient_ext.Host(proxy.host, tls="disabled", username=BASIC_USER, password="wrong-" + BASIC_PASSWORD)) as client:
        with pytest.raises(regclient_ext.AuthenticationError) as caught:
            client.get_image_config(f"{proxy.host}/testrepo:v1")
    assert "wrong-" + BASIC_PASSWORD not in str(caught.value)


def write_docker_config(directory: Path, config: dict[str, object], monkeypatch: pytest.MonkeyPatch) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(config))
    monkeypatch.setenv("DOCKER_CONFIG", str(directory))


def test_docker_config_auths(basic_auth_registry: Registry, fixture_layout: LayoutReader, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    auth = base64.b64encode(f"{BASIC_USER}:{BASIC_PASSWORD}".encode()).decode()
    write_docker_config(tmp_path / "docker", {"auths": {basic_auth_registry.host: {"auth": auth}}}, monkeypatch)
    with regclient_ext.Client(hosts=[regclient_ext.Host(basic_auth_registry.host, tls="disabled")]) as client:
        config = client.get_image_config(f"{basic_auth_registry.host}/testrepo:v2", platform="linux/arm/v7")
    assert config == expected_config(fixture_layout, "v2", "linux/arm/v7")


def write_helper(bin_dir: Path, name: str, script: str) -> None:
    bin_dir.mkdir(parents=True, exist_ok=True)
    helper = bin_dir / f"docker-credential-{name}"
    helper.write_text("#!/bin/sh\n" + script)
    helper.chmod(0o755)


def test_docker_credential_helper(basic_auth_registry: Registry, fixture_layout: LayoutReader, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    requests_file = tmp_path / "helper-requests"
    secret = json.dumps({"ServerURL": basic_auth_registry.host, "Username": BASIC_USER, "Secret": BASIC_PASSWORD})
    write_helper(tmp_path / "bin", "rcxtest", f"read host\necho \"$1 $host\" >> {requests_file}\necho '{secret}'\n")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    write_docker_config(tmp_path / "docker", {"credHelpers": {basic_auth_registry.host: "rcxtest"}}, monkeypatch)

    with regclient_ext.Client(hosts=[regclient_ext.Host(basic_auth_registry.host, tls="disabled")]) as client:
        config = client.get_image_config(f"{basic_auth_registry.host}/testrepo:v1", platform="linux/amd64")
    assert config == expected_config(fixture_layout, "v1", "linux/amd64")
    assert requests_file.read_text().splitlines()[0] == f"get {basic_auth_registry.host}"


def test_broken_helper_spares_other_hosts(registry: Registry, fixture_layout: LayoutReader, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_helper(tmp_path / "bin", "broken", "echo 'helper failed' >&2\nexit 1\n")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    write_docker_config(
        tmp_path / "docker",
        {"credsStore": "missing-store", "credHelpers": {"other.example.invalid:5000": "broken", "127.0.0.2:5000": "no-such-helper"}},
        monkeypatch,
    )
    with regclient_ext.Client(hosts=[regclient_ext.Host(registry.host, tls="disabled")]) as client:
        config = client.get_image_config(f"{registry.host}/testrepo:v1", platform="linux/amd64")
    assert config == expected_config(fixture_layout, "v1", "linux/amd64")


# TLS


def test_tls_without_ca_names_certificate_problem(tls_registry: tuple[Registry, CertificateAuthority]) -> None:
    server, _ = tls_registry
    with plain_client(regclient_ext.Host(server.host)) as client:
        with pytest.raises(regclient_ext.RegistryConnectionError) as caught:
            client.get_image_config(f"{server.host}/testrepo:v1", timeout=10)
    assert isinstance(caught.value, ConnectionError)
    assert "certificate signed by unknown authority" in str(caught.value)
    assert caught.value.registry == server.host


@pytest.mark.parametrize("as_file", [False, True])
def test_tls_with_ca_cert(tls_registry: tuple[Registry, CertificateAuthority], fixture_layout: LayoutReader, as_file: bool) -> None:
    server, ca = tls_registry
    ca_cert = str(ca.ca_file) if as_file else ca.ca_pem
    with plain_client(regclient_ext.Host(server.host, ca_cert=ca_cert)) as client:
        assert client.get_image_config(f"{server.host}/testrepo:v1", platform="linux/arm64") == expected_config(fixture_layout, "v1", "linux/arm64")


def test_tls_insecure_skips_verification(tls_registry: tuple[Registry, CertificateAuthority], fixture_layout: LayoutReader) -> None:
    server, _ = tls_registry
    with plain_client(regclient_ext.Host(server.host, tls="insecure")) as client:
        assert client.get_image_config(f"{server.host}/testrepo:v1", platform="linux/amd64") == expected_config(fixture_layout, "v1", "linux/amd64")


def test_module_function_tls_insecure(tls_registry: tuple[Registry, CertificateAuthority], fixture_layout: LayoutReader) -> None:
    server, _ = tls_registry
    config = regclient_ext.get_image_config(f"{server.host}/testrepo:v1", platform="linux/amd64", tls="insecure")
    assert config == expected_config(fixture_layout, "v1", "linux/amd64")


def test_ca_cert_file_missing() -> None:
    with pytest.raises(ValueError, match="neither PEM text"):
        regclient_ext.Host("registry.example.com", ca_cert="/no/such/ca.pem")._options()


# Platforms


@pytest.mark.parametrize(
    ("requested", "chosen"),
    [("linux/x86_64", "linux/amd64"), ("linux/aarch64", "linux/arm64"), ("linux/armhf", "linux/arm/v7"), ("linux/arm", "linux/arm/v7"), ("arm64", "linux/arm64")],
)
def test_platform_aliases(client: regclient_ext.Client, registry: Registry, requested: str, chosen: str) -> None:
    assert client.inspect_image(f"{registry.host}/testrepo:v3", platform=requested).platform == chosen


def test_local_platform_is_default(client: regclient_ext.Client, registry: Registry) -> None:
    default = client.inspect_image(f"{registry.host}/testrepo:v3")
    assert client.inspect_image(f"{registry.host}/testrepo:v3", platform="local").manifest_digest == default.manifest_digest


def test_attestations_not_listed(client: regclient_ext.Client, registry: Registry, fixture_layout: LayoutReader) -> None:
    index = fixture_layout.json_blob(fixture_layout.tag_descriptor("v1")["digest"])
    assert [m["platform"]["os"] for m in index["manifests"]] == ["linux", "linux", "unknown", "unknown"]
    info = client.inspect_image(f"{registry.host}/testrepo:v1", platform="linux/amd64")
    assert info.platforms == ("linux/amd64", "linux/arm64")
    with pytest.raises(regclient_ext.PlatformNotFoundError):
        client.get_image_config(f"{registry.host}/testrepo:v1", platform="unknown/unknown")


@pytest.mark.parametrize(("tag", "artifact_type"), [("ai", "application/example.artifacts"), ("loop", "application/example.loop")])
def test_artifact_index_unsupported(client: regclient_ext.Client, registry: Registry, tag: str, artifact_type: str) -> None:
    # These indexes list manifests without a platform: signatures and SBOMs, not images.
    for reference in (f"{registry.host}/testrepo:{tag}", f"ocidir://{FIXTURE_LAYOUT}:{tag}"):
        with pytest.raises(regclient_ext.UnsupportedMediaTypeError) as caught:
            client.get_image_config(reference, platform="linux/amd64")
        assert f"artifact type {artifact_type}" in str(caught.value)
        assert "no image for any platform" in str(caught.value)


def test_closed_client_rejects_with() -> None:
    client = regclient_ext.Client(docker_config=False)
    client.close()
    with pytest.raises(regclient_ext.ClientClosedError):
        with client:
            pass


def test_closed_async_client_rejects_enter() -> None:
    async def main() -> None:
        client = regclient_ext.AsyncClient(docker_config=False)
        await client.aclose()
        async with client:
            pass

    with pytest.raises(regclient_ext.ClientClosedError):
        asyncio.run(main())


def test_image_info_hashable(client: regclient_ext.Client, registry: Registry) -> None:
    first = client.inspect_image(f"{registry.host}/testrepo:v1", platform="linux/amd64")
    second = client.inspect_image(f"{registry.host}/testrepo:v1", platform="linux/amd64")
    other = client.inspect_image(f"{registry.host}/testrepo:v1", platform="linux/arm64")
    assert first == second
    assert hash(first) == hash(second)
    assert len({first, second, other}) == 2


# Timeouts, interruption and the GIL


def test_timeout_bounds_call() -> None:
    server = StallingServer(delay=None)
    try:
        with plain_client(regclient_ext.Host(server.host, tls="disabled")) as client:
            start = time.monotonic()
            with pytest.raises(regclient_ext.RegistryTimeoutError) as caught:
                client.get_image_config(f"{server.host}/app:v1", timeout=0.5)
            elapsed = time.monotonic() - start
    finally:
        server.stop()
    assert isinstance(caught.value, TimeoutError)
    assert 0.5 <= elapsed < 3
    assert str(caught.value).count("context deadline exceeded") == 1


def retry_after_fault(value: str, *, times: int | None = None) -> object:
    remaining = [times]

    def fault(handler: ProxyHandler) -> bool:
        if "/manifests/" not in handler.path or remaining[0] == 0:
            return False
        if remaining[0] is not None:
            remaining[0] -= 1
        handler.send_body(429, b'{"errors":[{"code":"TOOMANYREQUESTS"}]}', {"Retry-After": value, "Content-Type": "application/json"})
        return True

    return fault


def test_long_retry_after_ends_within_timeout(registry: Registry) -> None:
    proxy = ProxyServer(registry.host, retry_after_fault("3600"))
    try:
        with plain_client(regclient_ext.Host(proxy.host, tls="disabled")) as client:
            start = time.monotonic()
            with pytest.raises(regclient_ext.RateLimitError) as caught:
                client.get_image_config(f"{proxy.host}/testrepo:v1", timeout=2)
            elapsed = time.monotonic() - start
    finally:
        proxy.stop()
    assert elapsed < 2.5
    assert caught.value.retry_after == 3600


def test_registry_response_error_has_status(registry: Registry) -> None:
    def teapot(handler: ProxyHandler) -> bool:
        if "/manifests/" in handler.path:
            handler.send_body(418, b"short and stout")
            return True
        return False

    proxy = ProxyServer(registry.host, teapot)
    try:
        with plain_client(regclient_ext.Host(proxy.host, tls="disabled")) as client:
            with pytest.raises(regclient_ext.RegistryResponseError) as caught:
                client.get_image_config(f"{proxy.host}/testrepo:v1", timeout=10)
    finally:
        proxy.stop()
    assert caught.value.status == 418
    assert caught.value.reference == f"{proxy.host}/testrepo:v1"


def test_ctrl_c_interrupts_call() -> None:
    script = textwrap.dedent(
        f"""
        import os, signal, sys, threading, time
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        import regclient_ext
        from regclient_ext import _native
        from servers import StallingServer

        server = StallingServer(delay=None)
        client = regclient_ext.Client(hosts=[regclient_ext.Host(server.host, tls="disabled")], docker_config=False)
        sent = []
        def interrupt():
            sent.append(time.monotonic())
            os.kill(os.getpid(), signal.SIGINT)
        threading.Timer(0.5, interrupt).start()
        try:
            client.get_image_config(server.host + "/app:v1", timeout=30)
            print("no interrupt")
            sys.exit(1)
        except KeyboardInterrupt:
            latency = time.monotonic() - sent[0]
        # The operation is freed once its goroutine returns.
        deadline = time.monotonic() + 5
        while _native.stats()[1] and time.monotonic() < deadline:
            time.sleep(0.01)
        config = client.get_image_config({f"ocidir://{FIXTURE_LAYOUT}:v1"!r}, platform="linux/amd64")
        print(round(latency, 3), _native.stats()[1], config["architecture"])
        server.stop()
        """
    )
    result = run_python(script, timeout=60)
    assert result.returncode == 0, result.stderr + result.stdout
    latency, live_operations, arch = result.stdout.split()
    assert float(latency) < 0.2
    assert live_operations == "0"
    assert arch == "amd64"


def test_ctrl_c_with_operation_that_ignores_cancel(basic_auth_registry: Registry, tmp_path: Path) -> None:
    # regclient runs credential helpers without a context, so this call
    # cannot be cancelled while its helper sleeps. The helper is Python,
    # because the packaging tests run this with only the venv on PATH.
    helper = tmp_path / "bin" / "docker-credential-slow"
    helper.parent.mkdir()
    helper.write_text(f"#!{sys.executable}\nimport time\ntime.sleep(4)\nprint('{{}}')\n")
    helper.chmod(0o755)
    (tmp_path / "docker").mkdir()
    (tmp_path / "docker" / "config.json").write_text(json.dumps({"credHelpers": {basic_auth_registry.host: "slow"}}))

    script = textwrap.dedent(
        f"""
        import os, signal, sys, threading, time
        import regclient_ext
        client = regclient_ext.Client(hosts=[regclient_ext.Host({basic_auth_registry.host!r}, tls="disabled")])
        threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT)).start()
        began = time.monotonic()
        try:
            client.get_image_config({basic_auth_registry.host!r} + "/testrepo:v1", timeout=30)
            print("no interrupt")
            sys.exit(1)
        except KeyboardInterrupt:
            waited = time.monotonic() - began
        # The same thread calls again, through a new pipe.
        config = client.get_image_config({f"ocidir://{FIXTURE_LAYOUT}:v1"!r}, platform="linux/amd64")
        print(round(waited, 3), config["architecture"])
        """
    )
    environment = dict(os.environ, PATH=f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}", DOCKER_CONFIG=str(tmp_path / "docker"))
    result = run_python(script, timeout=60, env=environment)

    assert result.returncode == 0, result.stderr + result.stdout
    waited, arch = result.stdout.split()
    # The interrupt lands at 0.5 s. The call then waits 2 s for the
    # cancelled operation and leaves it behind before the helper's 4 s end.
    assert 2.4 < float(waited) < 3.8
    assert arch == "amd64"


def test_call_from_signal_handler_during_call() -> None:
    # Both calls wait on the same thread's pipe. The inner one, made by the
    # handler, reads the outer one's result first and must leave it there.
    script = textwrap.dedent(
        f"""
        import signal, sys, time
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        import regclient_ext
        from servers import StallingServer

        outer, inner = StallingServer(delay=0.5), StallingServer(delay=1.5)
        hosts = [regclient_ext.Host(outer.host, tls="disabled"), regclient_ext.Host(inner.host, tls="disabled")]
        client = regclient_ext.Client(hosts=hosts, docker_config=False, retry_limit=0)
        finished = []

        def handler(signum, frame):
            try:
                client.get_image_config(inner.host + "/app:v1", timeout=10)
            except regclient_ext.NotFoundError:
                finished.append("inner")

        signal.signal(signal.SIGALRM, handler)
        signal.setitimer(signal.ITIMER_REAL, 0.2)
        began = time.monotonic()
        try:
            client.get_image_config(outer.host + "/app:v1", timeout=10)
        except regclient_ext.NotFoundError:
            finished.append("outer")
        print(" ".join(finished), round(time.monotonic() - began, 2))
        """
    )
    result = run_python(script, timeout=60)
    assert result.returncode == 0, result.stderr + result.stdout
    order, _, elapsed = result.stdout.rpartition(" ")
    assert order == "inner outer"
    # The outer call waits for the handler (0.2 s + 1.5 s), not for its 10 s timeout.
    assert float(elapsed) < 5


def test_ctrl_c_during_large_batch_cancels_all() -> None:
    script = textwrap.dedent(
        f"""
        import os, signal, sys, threading, time
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        import regclient_ext
        from servers import StallingServer

        server = StallingServer(delay=None)
        client = regclient_ext.Client(hosts=[regclient_ext.Host(server.host, tls="disabled")], docker_config=False)
        requests = [client._config_request(server.host + "/app:v1", None, 30)] * 20000
        handle = client._acquire()
        # The signal is handled right after the last request is handed to
        # Go, before Go has read most of them off the pipe.
        threading.Timer(0.01, os.kill, (os.getpid(), signal.SIGINT)).start()
        try:
            regclient_ext._native.call_many(handle, requests)
            print("no interrupt")
            sys.exit(1)
        except KeyboardInterrupt:
            pass
        deadline = time.monotonic() + 10
        while regclient_ext.diagnostics()["operations"] and time.monotonic() < deadline:
            time.sleep(0.05)
        config = client.get_image_config({f"ocidir://{FIXTURE_LAYOUT}:v1"!r}, platform="linux/amd64")
        print(regclient_ext.diagnostics()["operations"], config["architecture"])
        """
    )
    result = run_python(script, timeout=120)
    assert result.returncode == 0, result.stderr + result.stdout
    live_operations, arch = result.stdout.split()
    # Operations that Go had not read yet when the cancel came must stop too, not run to the 30 s timeout.
    assert live_operations == "0"
    assert arch == "amd64"


def test_other_threads_run_during_call() -> None:
    server = StallingServer(delay=1.0)
    ticks = 0
    done = threading.Event()

    def call() -> None:
        try:
            with plain_client(regclient_ext.Host(server.host, tls="disabled"), retry_limit=1) as client:
                with pytest.raises(regclient_ext.RegclientError):
                    client.get_image_config(f"{server.host}/app:v1", timeout=10)
        finally:
            done.set()

    worker = threading.Thread(target=call)
    start = time.monotonic()
    worker.start()
    while not done.is_set():
        ticks += 1
    worker.join()
    server.stop()
    assert time.monotonic() - start >= 1.0
    # A held GIL would leave this thread a few switch intervals (5 ms each) per second.
    assert ticks > 100_000


# Logging and secrets


def test_requests_logged_at_debug(client: regclient_ext.Client, registry: Registry, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="regclient_ext"):
        client.get_image_config(f"{registry.host}/testrepo:v1", platform="linux/amd64")
    messages = [r.getMessage() for r in caplog.records if r.name == "regclient_ext" and r.levelno == logging.DEBUG]
    assert f"GET http://{registry.host}/v2/testrepo/manifests/v1: 200 OK" in messages


def test_no_secret_in_errors_or_logs(token_registry: tuple[Registry, ProxyServer], caplog: pytest.LogCaptureFixture) -> None:
    _, proxy = token_registry
    password = "wrong-" + BASIC_PASSWORD
    host = regclient_ext.Host(proxy.host, tls="disabled", username=BASIC_USER, password=password, token="identity-token-value")
    with caplog.at_level(logging.DEBUG, logger="regclient_ext"):
        with plain_client(host) as client:
            with pytest.raises(regclient_ext.AuthenticationError) as caught:
                client.get_image_config(f"{proxy.host}/testrepo:v1")
            client_repr = repr(client)
    error = caught.value
    texts = [str(error), repr(error), repr(vars(error)), repr(host), client_repr]
    texts += [r.getMessage() for r in caplog.records]
    encoded = base64.b64encode(f"{BASIC_USER}:{password}".encode()).decode()
    for text in texts:
        assert password not in text
        assert "identity-token-value" not in text
        assert encoded not in text
        assert "Authorization:" not in text
    assert any(r.levelno == logging.DEBUG for r in caplog.records)


def test_closed_client_raises() -> None:
    client = plain_client()
    client.close()
    with pytest.raises(regclient_ext.ClientClosedError):
        client.get_image_config(f"ocidir://{FIXTURE_LAYOUT}:v1")


def test_client_shared_between_threads(client: regclient_ext.Client, registry: Registry, fixture_layout: LayoutReader) -> None:
    platforms = fixture_layout.platforms("v3")
    results: dict[int, dict[str, object]] = {}

    def work(i: int) -> None:
        results[i] = client.get_image_config(f"{registry.host}/testrepo:v3", platform=platforms[i % len(platforms)])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(16):
        assert results[i] == expected_config(fixture_layout, "v3", platforms[i % len(platforms)])


def test_mirror_serves_host(registry: Registry, fixture_layout: LayoutReader) -> None:
    down = StallingServer(delay=None)
    down.stop()  # nothing listens on its port any more
    hosts = [regclient_ext.Host(down.host, tls="disabled", mirrors=[registry.host]), regclient_ext.Host(registry.host, tls="disabled")]
    with plain_client(*hosts) as client:
        config = client.get_image_config(f"{down.host}/testrepo:v1", platform="linux/arm64", timeout=10)
    assert config == expected_config(fixture_layout, "v1", "linux/arm64")


def test_host_rejects_bad_settings() -> None:
    with pytest.raises(ValueError):
        regclient_ext.Host("https://registry.example.com")
    with pytest.raises(ValueError):
        regclient_ext.Host("registry.example.com/path")
    with pytest.raises(ValueError):
        regclient_ext.Host("registry.example.com", tls="maybe")
    with pytest.raises(ValueError):
        regclient_ext.Host("registry.example.com", concurrency=0)
    with pytest.raises(ValueError):
        regclient_ext.Host("registry.example.com", client_cert="-----BEGIN CERTIFICATE-----")
    with pytest.raises(TypeError):
        regclient_ext.Host("registry.example.com", mirrors="mirror.example.com")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        regclient_ext.Host(5000)  # type: ignore[arg-type]


@pytest.mark.parametrize("platform", ["windows/amd64", "darwin/arm64", "freebsd/amd64"])
def test_requested_os_must_match(client: regclient_ext.Client, registry: Registry, platform: str) -> None:
    with pytest.raises(regclient_ext.PlatformNotFoundError) as caught:
        client.get_image_config(f"{registry.host}/testrepo:v1", platform=platform)
    assert caught.value.platforms == ("linux/amd64", "linux/arm64")


def test_requested_os_must_match_single_platform(client: regclient_ext.Client, registry: Registry) -> None:
    with pytest.raises(regclient_ext.PlatformNotFoundError):
        client.get_image_config(f"{registry.host}/made:single-riscv64", platform="windows/riscv64")


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="the host's platform is amd64 only on x86_64")
def test_host_platform_omits_cpu_level(client: regclient_ext.Client, registry: Registry) -> None:
    # regclient gives the host's platform the CPU level as its variant (amd64 "v2" to "v4").
    with pytest.raises(regclient_ext.PlatformNotFoundError) as caught:
        client.get_image_config(f"{registry.host}/made:index-riscv64")
    assert str(caught.value).startswith("platform linux/amd64 not found in ")


def test_empty_platform_rejected() -> None:
    with pytest.raises(regclient_ext.InvalidPlatformError):
        regclient_ext.get_image_config(f"ocidir://{FIXTURE_LAYOUT}:v1", platform="")


def test_invalid_tls_rejected_for_ocidir() -> None:
    with pytest.raises(ValueError, match="invalid tls"):
        regclient_ext.get_image_config(f"ocidir://{FIXTURE_LAYOUT}:v1", tls="disable")


def test_duplicate_hosts_rejected() -> None:
    with pytest.raises(ValueError, match="more than once"):
        regclient_ext.Client(hosts=[regclient_ext.Host("r.example.com"), regclient_ext.Host("R.example.com", tls="disabled")])


def test_hosts_accepts_indexed_sequence() -> None:
    class IndexedHosts:
        """A sequence with only __getitem__, which iter() walks until IndexError."""

        def __getitem__(self, index: int) -> regclient_ext.Host:
            if index > 0:
                raise IndexError(index)
            return regclient_ext.Host("r.example.com")

    client = regclient_ext.Client(hosts=IndexedHosts(), docker_config=False)  # type: ignore[arg-type]
    assert "r.example.com" in repr(client)
    client.close()


@pytest.mark.parametrize("hosts", [regclient_ext.Host("r.example.com"), "r.example.com", None, 5])
def test_hosts_rejects_non_sequence(hosts: object) -> None:
    with pytest.raises(TypeError, match="hosts must be a sequence of Host objects"):
        regclient_ext.Client(hosts=hosts)  # type: ignore[arg-type]


def test_eviction_spares_running_call() -> None:
    # 32 other credential sets evict the running call's cached client.
    slow = StallingServer(delay=1.0)  # responds 404 after 1 s
    fast = StallingServer(delay=0.0)
    errors: list[BaseException] = []

    def slow_call() -> None:
        try:
            regclient_ext.get_image_config(f"{slow.host}/app:v1", username="slow", password="slow-password", tls="disabled", timeout=10)
        except regclient_ext.RegclientError as error:
            errors.append(error)

    thread = threading.Thread(target=slow_call)
    try:
        thread.start()
        time.sleep(0.3)
        for index in range(32):
            with pytest.raises(regclient_ext.NotFoundError):
                regclient_ext.get_image_config(f"{fast.host}/app:v1", username="fast", password=f"password-{index}", tls="disabled", timeout=10)
        thread.join(15)
    finally:
        slow.stop()
        fast.stop()
    assert [type(error) for error in errors] == [regclient_ext.NotFoundError]


def test_password_needs_username() -> None:
    with pytest.raises(ValueError, match="needs a username"):
        regclient_ext.Host("r.example.com", password="secret")


def test_host_settings_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        regclient_ext.Host("r.example.com", "disabled")  # type: ignore[misc]


def test_error_message_is_one_line(client: regclient_ext.Client, registry: Registry) -> None:
    with pytest.raises(regclient_ext.NotFoundError) as caught:
        client.get_image_config(f"{registry.host}/testrepo:no-such-tag")
    assert "\n" not in str(caught.value)
    assert str(caught.value).count(f"{registry.host}/testrepo:no-such-tag") == 1


def test_plain_http_registry_hint(registry: Registry) -> None:
    with plain_client(regclient_ext.Host(registry.host)) as client:
        with pytest.raises(regclient_ext.RegistryConnectionError, match="tls='disabled'"):
            client.get_image_config(f"{registry.host}/testrepo:v1", timeout=10)


def test_module_inspect_takes_credentials(basic_auth_registry: Registry, fixture_layout: LayoutReader) -> None:
    info = regclient_ext.inspect_image(
        f"{basic_auth_registry.host}/testrepo:v1", platform="linux/arm64", username=BASIC_USER, password=BASIC_PASSWORD, tls="disabled"
    )
    assert info.config == expected_config(fixture_layout, "v1", "linux/arm64")
    assert "config=" not in repr(info)
