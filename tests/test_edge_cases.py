"""Edge cases found by attacking the package: huge input, odd files, echoed secrets, overflowing headers."""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import textwrap
import time
from pathlib import Path

import pytest

import regclient_ext
from conftest import BASIC_PASSWORD, BASIC_USER, FIXTURE_LAYOUT, Registry, run_python
from servers import ProxyHandler, ProxyServer


def test_huge_reference_is_rejected_without_crash() -> None:
    with pytest.raises(regclient_ext.InvalidReferenceError, match="more than the 4096 allowed"):
        regclient_ext.get_image_config("ocidir:///tmp/" + "a" * 10_000_000)


def test_fifo_index_fails_fast(tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    shutil.copytree(FIXTURE_LAYOUT, layout)
    (layout / "index.json").unlink()
    os.mkfifo(layout / "index.json")
    start = time.monotonic()
    with pytest.raises(regclient_ext.InvalidContentError, match="not a regular file"):
        regclient_ext.get_image_config(f"ocidir://{layout}:v1", timeout=5)
    assert time.monotonic() - start < 2


def test_config_too_deep_for_python(client: regclient_ext.Client, registry: Registry) -> None:
    with pytest.raises(regclient_ext.InvalidContentError, match="RecursionError"):
        client.get_image_config(f"{registry.host}/made:too-deep")


def test_echoed_credentials_are_masked(basic_auth_registry: Registry) -> None:
    def echo(handler: ProxyHandler) -> bool:
        if "/manifests/" not in handler.path or "Authorization" not in handler.headers:
            return False
        handler.send_body(403, f"denied: {handler.headers['Authorization']} pw={BASIC_PASSWORD}".encode())
        return True

    proxy = ProxyServer(basic_auth_registry.host, echo)
    try:
        host = regclient_ext.Host(proxy.host, tls="disabled", username=BASIC_USER, password=BASIC_PASSWORD)
        with regclient_ext.Client(hosts=[host], docker_config=False) as client:
            with pytest.raises(regclient_ext.AuthenticationError) as caught:
                client.get_image_config(f"{proxy.host}/testrepo:v1", timeout=10)
    finally:
        proxy.stop()
    message = str(caught.value)
    assert "denied" in message
    assert BASIC_PASSWORD not in message
    assert base64.b64encode(f"{BASIC_USER}:{BASIC_PASSWORD}".encode()).decode() not in message


def test_docker_config_passwords_are_masked(basic_auth_registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def echo(handler: ProxyHandler) -> bool:
        if "/manifests/" not in handler.path or "Authorization" not in handler.headers:
            return False
        handler.send_body(403, f"denied pw={BASIC_PASSWORD}".encode())
        return True

    proxy = ProxyServer(basic_auth_registry.host, echo)
    auth = base64.b64encode(f"{BASIC_USER}:{BASIC_PASSWORD}".encode()).decode()
    (tmp_path / "config.json").write_text(json.dumps({"auths": {proxy.host: {"auth": auth}}}))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    try:
        with regclient_ext.Client(hosts=[regclient_ext.Host(proxy.host, tls="disabled")]) as client:
            with pytest.raises(regclient_ext.AuthenticationError) as caught:
                client.get_image_config(f"{proxy.host}/testrepo:v1", timeout=10)
    finally:
        proxy.stop()
    assert "denied pw=***" in str(caught.value)


def test_huge_retry_after_is_capped(registry: Registry) -> None:
    def limited(handler: ProxyHandler) -> bool:
        if "/manifests/" not in handler.path:
            return False
        handler.send_body(429, b"slow down", {"Retry-After": "9223372036854775807"})
        return True

    proxy = ProxyServer(registry.host, limited)
    try:
        with regclient_ext.Client(hosts=[regclient_ext.Host(proxy.host, tls="disabled")], docker_config=False) as client:
            start = time.monotonic()
            with pytest.raises(regclient_ext.RateLimitError) as caught:
                client.get_image_config(f"{proxy.host}/testrepo:v1", timeout=5)
            assert time.monotonic() - start < 1
    finally:
        proxy.stop()
    assert caught.value.retry_after == 1e9


def test_refused_connection_within_short_timeout() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    host = f"127.0.0.1:{port}"
    with regclient_ext.Client(hosts=[regclient_ext.Host(host, tls="disabled")], docker_config=False) as client:
        with pytest.raises(regclient_ext.RegistryConnectionError, match="connection refused"):
            client.get_image_config(f"{host}/app:v1", timeout=1)


@pytest.mark.parametrize("name", ["r.example.com:0", "r.example.com:99999", "127.0.0.1:65536"])
def test_host_port_out_of_range(name: str) -> None:
    with pytest.raises(ValueError, match="port from 1 to 65535"):
        regclient_ext.Host(name)


def test_slow_rate_rejected() -> None:
    with pytest.raises(ValueError, match="from 1 to 1000000"):
        regclient_ext.Host("r.example.com", requests_per_second=0.001)


def test_invalid_platform_message_names_value_once() -> None:
    with pytest.raises(regclient_ext.InvalidPlatformError) as caught:
        regclient_ext.get_image_config(f"ocidir://{FIXTURE_LAYOUT}:v1", platform="linux/\x00")
    assert str(caught.value).count("linux/") == 1


def test_warnings_do_not_reach_stderr_without_handler(registry: Registry) -> None:
    # regclient warns when a Host changes TLS settings read from docker's
    # config; with no logging configured, nothing may reach stderr.
    script = textwrap.dedent(
        f"""
        import json, os, tempfile
        directory = tempfile.mkdtemp()
        json.dump({{"auths": {{{registry.host!r}: {{"auth": "dXNlcjpwYXNz"}}}}}}, open(os.path.join(directory, "config.json"), "w"))
        os.environ["DOCKER_CONFIG"] = directory
        import regclient_ext
        client = regclient_ext.Client(hosts=[regclient_ext.Host({registry.host!r}, tls="disabled")])
        print(client.get_image_config({f"{registry.host}/testrepo:v1"!r}, platform="linux/amd64")["architecture"])
        """
    )
    result = run_python(script)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "amd64"
    assert result.stderr == ""


@pytest.mark.parametrize(
    ("text", "secret", "masked"),
    [
        # A one-letter password must not turn every "e" into ***.
        ("connection refused, check the registry", "e", "connection refused, check the registry"),
        ("password is e here", "e", "password is *** here"),
        ("pw=abc123;", "abc123", "pw=***;"),
        ("userabc123", "abc123", "userabc123"),
        # Long secrets are masked wherever they appear.
        ("tokenS3cretValue99x", "S3cretValue99", "token***x"),
    ],
)
def test_mask_secrets_cases(text: str, secret: str, masked: str) -> None:
    assert regclient_ext.errors.mask_secrets(text, [secret]) == masked


def test_mask_secrets_longest_first() -> None:
    # A password inside its own base64 pair must not leave a partly masked pair behind.
    assert regclient_ext.errors.mask_secrets("auth=dXNlcjpwYXNzd29yZA== pw=password", ["password", "dXNlcjpwYXNzd29yZA=="]) == "auth=*** pw=***"
