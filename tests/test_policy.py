"""The network policy, with servers on different loopback addresses and ports."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

import regclient_ext
from conftest import FIXTURE_LAYOUT, Registry
from oci_layout import LayoutReader
from regclient_ext._diagnostics import address_is_internal
from servers import ProxyHandler, ProxyServer


@pytest.fixture
def two_hosts(registry: Registry) -> Iterator[tuple[ProxyServer, ProxyServer]]:
    first = ProxyServer(registry.host, address="127.0.0.2")
    second = ProxyServer(registry.host, address="127.0.0.3")
    yield first, second
    first.stop()
    second.stop()


def policy_client(*proxies: ProxyServer, **policy: object) -> regclient_ext.Client:
    hosts = [regclient_ext.Host(proxy.host, tls="disabled") for proxy in proxies]
    return regclient_ext.Client(hosts=hosts, docker_config=False, docker_certs=False, **policy)


def test_allow_list_refuses_other_registry(two_hosts: tuple[ProxyServer, ProxyServer], fixture_layout: LayoutReader) -> None:
    allowed, other = two_hosts
    with policy_client(allowed, other, allowed_registries=[allowed.host]) as client:
        config = client.get_image_config(f"{allowed.host}/testrepo:v1", platform="linux/amd64")
        with pytest.raises(regclient_ext.PolicyError) as caught:
            client.get_image_config(f"{other.host}/testrepo:v1")
    assert config == json.loads(fixture_layout.config_for("v1", "linux/amd64")[1])
    assert other.host in str(caught.value)
    assert isinstance(caught.value, PermissionError)
    assert other.stats.connections == 0


def test_allow_list_refuses_redirect(registry: Registry, fixture_layout: LayoutReader) -> None:
    other = ProxyServer(registry.host, address="127.0.0.3")
    path = f"/v2/testrepo/blobs/{fixture_layout.config_for('v1', 'linux/amd64')[0]}"

    def redirect(handler: ProxyHandler) -> bool:
        if handler.path != path:
            return False
        handler.send_body(307, b"", {"Location": f"http://{other.host}{path}"})
        return True

    allowed = ProxyServer(registry.host, redirect, address="127.0.0.2")
    try:
        with policy_client(allowed, other, allowed_registries=[allowed.host]) as client:
            with pytest.raises(regclient_ext.PolicyError) as caught:
                client.get_image_config(f"{allowed.host}/testrepo:v1", platform="linux/amd64", timeout=10)
    finally:
        allowed.stop()
        other.stop()
    assert other.host in str(caught.value)
    assert other.stats.connections == 0


def test_block_private_networks_refuses_loopback(two_hosts: tuple[ProxyServer, ProxyServer]) -> None:
    target, _ = two_hosts
    with policy_client(target, block_private_networks=True) as client:
        with pytest.raises(regclient_ext.PolicyError) as caught:
            client.get_image_config(f"{target.host}/testrepo:v1", timeout=10)
    assert target.host.split(":")[0] in str(caught.value)
    assert target.stats.connections == 0


def test_block_private_networks_checks_resolved_names(registry: Registry) -> None:
    proxy = ProxyServer(registry.host)
    port = proxy.host.rsplit(":", 1)[1]
    try:
        with regclient_ext.Client(hosts=[regclient_ext.Host(f"localhost:{port}", tls="disabled")], docker_config=False, block_private_networks=True) as client:
            with pytest.raises(regclient_ext.PolicyError, match="127.0.0.1"):
                client.get_image_config(f"localhost:{port}/testrepo:v1", timeout=10)
    finally:
        proxy.stop()
    assert proxy.stats.connections == 0


def test_block_private_networks_refuses_redirect(registry: Registry, fixture_layout: LayoutReader) -> None:
    path = f"/v2/testrepo/blobs/{fixture_layout.config_for('v1', 'linux/amd64')[0]}"
    other = ProxyServer(registry.host, address="127.0.0.3")

    def redirect(handler: ProxyHandler) -> bool:
        if handler.path != path:
            return False
        handler.send_body(307, b"", {"Location": f"http://{other.host}{path}"})
        return True

    first = ProxyServer(registry.host, redirect, address="127.0.0.2")
    try:
        with policy_client(first, other) as open_client:
            assert open_client.get_image_config(f"{first.host}/testrepo:v1", platform="linux/amd64", timeout=10)["architecture"] == "amd64"
        assert other.stats.connections == 1
        with policy_client(first, other, allowed_registries=[first.host, other.host], block_private_networks=True) as client:
            with pytest.raises(regclient_ext.PolicyError):
                client.get_image_config(f"{first.host}/testrepo:v1", platform="linux/amd64", timeout=10)
    finally:
        first.stop()
        other.stop()
    assert first.stats.connections == 1
    assert other.stats.connections == 1


def test_policy_refuses_ocidir() -> None:
    with regclient_ext.Client(docker_config=False, allowed_registries=["registry.example.com"]) as client:
        with pytest.raises(regclient_ext.PolicyError, match="ocidir"):
            client.get_image_config(f"ocidir://{FIXTURE_LAYOUT}:v1")


def test_empty_allow_list_rejected() -> None:
    with pytest.raises(ValueError, match="pass None"):
        regclient_ext.Client(allowed_registries=[])


@pytest.mark.parametrize(
    ("address", "internal"),
    [
        ("127.0.0.1", True),
        ("127.0.0.3", True),
        ("10.1.2.3", True),
        ("172.16.0.1", True),
        ("192.168.1.1", True),
        ("169.254.169.254", True),
        ("100.100.100.200", True),
        ("0.0.0.0", True),
        ("224.0.0.1", True),
        ("::1", True),
        ("fe80::1", True),
        ("fd00:ec2::254", True),
        ("::ffff:10.0.0.1", True),
        ("::ffff:169.254.169.254", True),
        ("1.1.1.1", False),
        ("93.184.216.34", False),
        ("2606:4700:4700::1111", False),
    ],
)
def test_internal_address_classes(address: str, internal: bool) -> None:
    assert address_is_internal(address) is internal
