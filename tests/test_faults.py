"""A fault-injecting proxy between the client and a real registry on 127.0.0.1.

Every fault ends in the right value or the right error class within the
call's timeout, and the client keeps working afterwards.
"""

from __future__ import annotations

import email.utils
import json
import socket
import struct
import time
from collections.abc import Callable, Iterator

import pytest

import regclient_ext
from conftest import BASIC_PASSWORD, BASIC_USER, Registry
from oci_layout import LayoutReader
from servers import ProxyHandler, ProxyServer

V1_AMD64 = ("v1", "linux/amd64")


def expected(reader: LayoutReader, tag: str, platform: str) -> dict[str, object]:
    return json.loads(reader.config_for(tag, platform)[1])


@pytest.fixture
def make_proxy(server: Registry) -> Iterator[Callable[..., ProxyServer]]:
    """Make fault-injecting proxies in front of each registry implementation in turn."""
    proxies: list[ProxyServer] = []

    def make(fault: Callable[[ProxyHandler], bool], upstream: str | None = None) -> ProxyServer:
        proxy = ProxyServer(upstream or server.host, fault)
        proxies.append(proxy)
        return proxy

    yield make
    for proxy in proxies:
        proxy.stop()


def client_for(proxy: ProxyServer, retry_limit: int | None = None) -> regclient_ext.Client:
    return regclient_ext.Client(hosts=[regclient_ext.Host(proxy.host, tls="disabled")], docker_config=False, docker_certs=False, retry_limit=retry_limit)


def times(count: int, fault: Callable[[ProxyHandler], bool]) -> Callable[[ProxyHandler], bool]:
    """Apply a fault to the first ``count`` requests it matches, then pass requests through."""
    remaining = [count]

    def limited(handler: ProxyHandler) -> bool:
        if remaining[0] <= 0:
            return False
        if fault(handler):
            remaining[0] -= 1
            return True
        return False

    return limited


def on_manifest(status: int, headers: dict[str, str] | None = None) -> Callable[[ProxyHandler], bool]:
    def fault(handler: ProxyHandler) -> bool:
        if "/manifests/" not in handler.path:
            return False
        handler.send_body(status, b'{"errors":[{"code":"UNAVAILABLE"}]}', {"Content-Type": "application/json", **(headers or {})})
        return True

    return fault


def assert_still_works(client: regclient_ext.Client, proxy: ProxyServer, reader: LayoutReader) -> None:
    assert client.get_image_config(f"{proxy.host}/testrepo:v2", platform="linux/arm/v7", timeout=20) == expected(reader, "v2", "linux/arm/v7")


# Rate limits and server errors


@pytest.mark.parametrize("retry_after", ["1", "date", None])
def test_429_then_success(make_proxy: Callable[..., ProxyServer], fixture_layout: LayoutReader, retry_after: str | None) -> None:
    headers = {}
    if retry_after == "date":
        headers["Retry-After"] = email.utils.formatdate(time.time() + 1, usegmt=True)
    elif retry_after is not None:
        headers["Retry-After"] = retry_after
    proxy = make_proxy(times(1, on_manifest(429, headers)))
    with client_for(proxy) as client:
        assert client.get_image_config(f"{proxy.host}/testrepo:v1", platform="linux/amd64", timeout=20) == expected(fixture_layout, *V1_AMD64)
        assert_still_works(client, proxy, fixture_layout)


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_error_then_success(make_proxy: Callable[..., ProxyServer], fixture_layout: LayoutReader, status: int) -> None:
    proxy = make_proxy(times(1, on_manifest(status)))
    with client_for(proxy) as client:
        assert client.get_image_config(f"{proxy.host}/testrepo:v1", platform="linux/amd64", timeout=20) == expected(fixture_layout, *V1_AMD64)
        assert_still_works(client, proxy, fixture_layout)


def test_429_forever_raises_rate_limit(make_proxy: Callable[..., ProxyServer], fixture_layout: LayoutReader) -> None:
    proxy = make_proxy(times(1_000_000, on_manifest(429, {"Retry-After": "1"})))
    with client_for(proxy) as client:
        start = time.monotonic()
        with pytest.raises(regclient_ext.RateLimitError) as caught:
            client.get_image_config(f"{proxy.host}/testrepo:v1", timeout=3)
        assert time.monotonic() - start < 4
        assert caught.value.retry_after == 1
        assert caught.value.registry == proxy.host
    with client_for(proxy) as fresh:
        proxy.fault = None
        assert_still_works(fresh, proxy, fixture_layout)


# Broken bodies


def config_path(reader: LayoutReader, tag: str = "v1", platform: str = "linux/amd64") -> str:
    return f"/v2/testrepo/blobs/{reader.config_for(tag, platform)[0]}"


def reset_connection(handler: ProxyHandler) -> None:
    handler.wfile.flush()
    handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    handler.connection.close()
    handler.close_connection = True


def test_reset_mid_body(make_proxy: Callable[..., ProxyServer], fixture_layout: LayoutReader) -> None:
    path = config_path(fixture_layout)

    def fault(handler: ProxyHandler) -> bool:
        if handler.path != path:
            return False
        status, headers, body = handler.fetch_upstream()
        handler.send_response(status)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body[: len(body) // 2])
        reset_connection(handler)
        return True

    proxy = make_proxy(fault)
    with client_for(proxy) as client:
        with pytest.raises(regclient_ext.RegistryConnectionError):
            client.get_image_config(f"{proxy.host}/testrepo:v1", platform="linux/amd64", timeout=10)
        proxy.fault = None
        assert client.get_image_config(f"{proxy.host}/testrepo:v1", platform="linux/amd64", timeout=10) == expected(fixture_layout, *V1_AMD64)


def test_body_shorter_than_content_length(make_proxy: Callable[..., ProxyServer], fixture_layout: LayoutReader) -> None:
    path = config_path(fixture_layout)

    def fault(handler: ProxyHandler) -> bool:
        if handler.path != path:
            return False
        status, headers, body = handler.fetch_upstream()
        handler.send_upstream(status, headers, body[:-10], content_length=len(body))
        handler.close_connection = True
        return True

    proxy = make_proxy(fault)
    # Fewer retries keep the host's backoff, and so this test, short.
    with client_for(proxy, retry_limit=2) as client:
        with pytest.raises(regclient_ext.RegistryConnectionError):
            client.get_image_config(f"{proxy.host}/testrepo:v1", platform="linux/amd64", timeout=10)
        proxy.fault = None
        assert_still_works(client, proxy, fixture_layout)


def test_trickling_body_times_out(make_proxy: Callable[..., ProxyServer], fixture_layout: LayoutReader) -> None:
    path = config_path(fixture_layout)

    def fault(handler: ProxyHandler) -> bool:
        if handler.path != path:
            return False
        status, headers, body = handler.fetch_upstream()
        handler.send_response(status)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        try:
            for byte in body:
                handler.wfile.write(bytes([byte]))
                handler.wfile.flush()
                time.sleep(0.2)
        except OSError:
            pass
        return True

    proxy = make_proxy(fault)
    with client_for(proxy) as client:
        start = time.monotonic()
        with pytest.raises(regclient_ext.RegistryTimeoutError):
            client.get_image_config(f"{proxy.host}/testrepo:v1", platform="linux/amd64", timeout=1.5)
        assert time.monotonic() - start < 3
        proxy.fault = None
        assert_still_works(client, proxy, fixture_layout)


# Redirects


def test_blob_redirect_drops_credentials(basic_auth_registry: Registry, registry: Registry, fixture_layout: LayoutReader) -> None:
    # Both upstreams are olareg: the basic-auth one first, the anonymous one second.
    second = ProxyServer(registry.host)
    path = config_path(fixture_layout)

    def redirect(handler: ProxyHandler) -> bool:
        if handler.path != path:
            return False
        handler.send_body(307, b"", {"Location": f"http://{second.host}{handler.path}"})
        return True

    first = ProxyServer(basic_auth_registry.host, redirect)
    hosts = [
        regclient_ext.Host(first.host, tls="disabled", username=BASIC_USER, password=BASIC_PASSWORD),
        regclient_ext.Host(second.host, tls="disabled"),
    ]
    try:
        with regclient_ext.Client(hosts=hosts, docker_config=False) as client:
            config = client.get_image_config(f"{first.host}/testrepo:v1", platform="linux/amd64", timeout=10)
    finally:
        first.stop()
        second.stop()
    assert config == expected(fixture_layout, *V1_AMD64)
    assert first.stats.authorization_headers != []
    assert second.stats.paths() == [path]
    assert second.stats.authorization_headers == []


def test_redirect_loop(make_proxy: Callable[..., ProxyServer], fixture_layout: LayoutReader) -> None:
    path = config_path(fixture_layout)

    def loop(handler: ProxyHandler) -> bool:
        if not handler.path.startswith(path):
            return False
        handler.send_body(307, b"", {"Location": f"{path}?hop={len(handler.server.stats.requests)}"})
        return True

    proxy = make_proxy(loop)
    with client_for(proxy, retry_limit=2) as client:
        with pytest.raises(regclient_ext.RegistryResponseError, match="redirects"):
            client.get_image_config(f"{proxy.host}/testrepo:v1", platform="linux/amd64", timeout=10)
        proxy.fault = None
        assert_still_works(client, proxy, fixture_layout)


# Wrong content


def replace_body(match: Callable[[ProxyHandler], bool], change: Callable[[bytes], bytes]) -> Callable[[ProxyHandler], bool]:
    def fault(handler: ProxyHandler) -> bool:
        if not match(handler):
            return False
        status, headers, body = handler.fetch_upstream()
        handler.send_upstream(status, headers, change(body))
        return True

    return fault


def test_blob_digest_mismatch(make_proxy: Callable[..., ProxyServer], fixture_layout: LayoutReader) -> None:
    path = config_path(fixture_layout)
    proxy = make_proxy(replace_body(lambda h: h.path == path, lambda body: body.replace(b'"amd64"', b'"arm64"')))
    with client_for(proxy) as client:
        with pytest.raises(regclient_ext.DigestMismatchError):
            client.get_image_config(f"{proxy.host}/testrepo:v1", platform="linux/amd64", timeout=10)
        proxy.fault = None
        assert client.get_image_config(f"{proxy.host}/testrepo:v1", platform="linux/amd64", timeout=10) == expected(fixture_layout, *V1_AMD64)


def test_manifest_digest_mismatch(make_proxy: Callable[..., ProxyServer], fixture_layout: LayoutReader) -> None:
    index = fixture_layout.json_blob(fixture_layout.tag_descriptor("v1")["digest"])
    amd64 = next(m["digest"] for m in index["manifests"] if m["platform"]["architecture"] == "amd64")
    proxy = make_proxy(replace_body(lambda h: h.path.endswith(f"/manifests/{amd64}"), lambda body: body.replace(b"{", b"{ ", 1)))
    with client_for(proxy) as client:
        with pytest.raises(regclient_ext.DigestMismatchError):
            client.get_image_config(f"{proxy.host}/testrepo:v1", platform="linux/amd64", timeout=10)
        proxy.fault = None
        assert client.get_image_config(f"{proxy.host}/testrepo:v1", platform="linux/amd64", timeout=10) == expected(fixture_layout, *V1_AMD64)


def test_config_not_json(client: regclient_ext.Client, registry: Registry) -> None:
    with pytest.raises(regclient_ext.InvalidContentError, match="not valid JSON"):
        client.get_image_config(f"{registry.host}/made:not-json")


def test_config_larger_than_descriptor(make_proxy: Callable[..., ProxyServer], fixture_layout: LayoutReader) -> None:
    path = config_path(fixture_layout)
    sent = [0]

    def huge(handler: ProxyHandler) -> bool:
        if handler.path != path:
            return False
        handler.send_response(200)
        handler.send_header("Content-Type", "application/octet-stream")
        handler.end_headers()  # no Content-Length: the body runs until the connection closes
        handler.close_connection = True
        chunk = b" " * 65536
        try:
            for _ in range(1600):  # 100 MiB if the client kept reading
                handler.wfile.write(chunk)
                sent[0] += len(chunk)
        except OSError:
            pass
        return True

    proxy = make_proxy(huge)
    with client_for(proxy) as client:
        with pytest.raises(regclient_ext.SizeLimitError):
            client.get_image_config(f"{proxy.host}/testrepo:v1", platform="linux/amd64", timeout=20)
        proxy.fault = None
        assert_still_works(client, proxy, fixture_layout)
    assert sent[0] < 100 * 1024 * 1024


def test_content_length_larger_than_descriptor(make_proxy: Callable[..., ProxyServer], fixture_layout: LayoutReader) -> None:
    path = config_path(fixture_layout)
    proxy = make_proxy(replace_body(lambda h: h.path == path, lambda body: body + b" " * 1_000_000))
    with client_for(proxy) as client:
        with pytest.raises(regclient_ext.SizeLimitError):
            client.get_image_config(f"{proxy.host}/testrepo:v1", platform="linux/amd64", timeout=10)


def test_manifest_over_limit(make_proxy: Callable[..., ProxyServer]) -> None:
    def huge_manifest(handler: ProxyHandler) -> bool:
        if "/manifests/v1" not in handler.path or handler.command != "GET":
            return False
        body = b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[],"pad":"' + b"x" * (20 * 1024 * 1024) + b'"}'
        handler.send_body(200, body, {"Content-Type": "application/vnd.oci.image.index.v1+json"})
        return True

    proxy = make_proxy(huge_manifest)
    with client_for(proxy) as client:
        with pytest.raises(regclient_ext.SizeLimitError):
            client.get_image_config(f"{proxy.host}/testrepo:v1", timeout=20)


@pytest.mark.parametrize(
    "content_type",
    [
        "application/vnd.oci.image.index.v1+json; charset=utf-8",
        "Application/VND.OCI.Image.Index.v1+JSON",
        None,
    ],
)
def test_odd_content_type(make_proxy: Callable[..., ProxyServer], fixture_layout: LayoutReader, content_type: str | None) -> None:
    def retype(handler: ProxyHandler) -> bool:
        if not handler.path.endswith("/manifests/v1"):
            return False
        status, headers, body = handler.fetch_upstream()
        headers = [(k, v) for k, v in headers if k.lower() != "content-type"]
        if content_type is not None:
            headers.append(("Content-Type", content_type))
        handler.send_upstream(status, headers, body)
        return True

    proxy = make_proxy(retype)
    with client_for(proxy) as client:
        assert client.get_image_config(f"{proxy.host}/testrepo:v1", platform="linux/arm64", timeout=10) == expected(fixture_layout, "v1", "linux/arm64")
