"""get_image_config against olareg on 127.0.0.1 and against OCI layouts read directly."""

from __future__ import annotations

import json
import platform as host_platform
from collections.abc import Iterator
from pathlib import Path

import pytest

import regclient_ext
from conftest import BASIC_PASSWORD, BASIC_USER, FIXTURE_LAYOUT, Distribution, Registry
from oci_layout import LayoutReader
from servers import CountingListener

FIXTURE_TAGS = ["v1", "v2", "v3"]


def host_platform_name() -> str:
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}[host_platform.machine().lower()]
    return f"linux/{arch}"


def fixture_cases() -> list[tuple[str, str]]:
    reader = LayoutReader(FIXTURE_LAYOUT)
    return [(tag, platform) for tag in FIXTURE_TAGS for platform in reader.platforms(tag)]


def test_fixture_tags_have_expected_platforms(fixture_layout: LayoutReader) -> None:
    assert fixture_layout.platforms("v1") == ["linux/amd64", "linux/arm64"]
    assert fixture_layout.platforms("v2") == ["linux/amd64", "linux/arm64", "linux/arm/v7"]
    assert fixture_layout.platforms("v3") == ["linux/amd64", "linux/arm64", "linux/arm/v7", "linux/arm/v6"]


@pytest.mark.parametrize(("tag", "platform"), fixture_cases())
def test_registry_config_equals_stored_blob(server_client: regclient_ext.Client, server: Registry | Distribution, fixture_layout: LayoutReader, tag: str, platform: str) -> None:
    _, blob = fixture_layout.config_for(tag, platform)
    config = server_client.get_image_config(f"{server.host}/testrepo:{tag}", platform=platform)
    assert config == json.loads(blob)


@pytest.mark.parametrize(("tag", "platform"), fixture_cases())
def test_ocidir_config_equals_stored_blob(fixture_layout: LayoutReader, tag: str, platform: str) -> None:
    _, blob = fixture_layout.config_for(tag, platform)
    config = regclient_ext.get_image_config(f"ocidir://{FIXTURE_LAYOUT}:{tag}", platform=platform)
    assert config == json.loads(blob)


@pytest.mark.parametrize("tag", FIXTURE_TAGS)
def test_default_platform_is_host(server_client: regclient_ext.Client, server: Registry | Distribution, fixture_layout: LayoutReader, tag: str) -> None:
    _, blob = fixture_layout.config_for(tag, host_platform_name())
    assert server_client.get_image_config(f"{server.host}/testrepo:{tag}") == json.loads(blob)
    assert regclient_ext.get_image_config(f"ocidir://{FIXTURE_LAYOUT}:{tag}") == json.loads(blob)


def test_inspect_reports_digests(server_client: regclient_ext.Client, server: Registry | Distribution, fixture_layout: LayoutReader) -> None:
    info = server_client.inspect_image(f"{server.host}/testrepo:v3", platform="linux/arm/v6")
    config_digest, blob = fixture_layout.config_for("v3", "linux/arm/v6")
    index = fixture_layout.json_blob(fixture_layout.tag_descriptor("v3")["digest"])
    arm_v6 = next(m for m in index["manifests"] if m.get("platform", {}).get("variant") == "v6")

    assert info.reference == f"{server.host}/testrepo:v3"
    assert info.digest == fixture_layout.tag_descriptor("v3")["digest"]
    assert info.manifest_digest == arm_v6["digest"]
    assert info.config_digest == config_digest
    assert info.media_type == "application/vnd.oci.image.manifest.v1+json"
    assert info.platform == "linux/arm/v6"
    assert info.platforms == ("linux/amd64", "linux/arm64", "linux/arm/v7", "linux/arm/v6")
    assert info.config == json.loads(blob)


def test_docker_media_types(server_client: regclient_ext.Client, server: Registry | Distribution, made_layout: LayoutReader) -> None:
    for platform in ("linux/amd64", "linux/arm64"):
        _, blob = made_layout.config_for("docker-list", platform)
        assert server_client.get_image_config(f"{server.host}/made:docker-list", platform=platform) == json.loads(blob)


def test_unknown_fields_are_kept(server_client: regclient_ext.Client, server: Registry | Distribution, made_layout: LayoutReader) -> None:
    _, blob = made_layout.config_for("odd-fields", "linux/amd64")
    config = server_client.get_image_config(f"{server.host}/made:odd-fields")
    assert config == json.loads(blob)
    assert config["x-vendor-field"] == {"nested": [1, 2.5, None, "ünïcode"]}


def test_single_platform_image_without_platform(server_client: regclient_ext.Client, server: Registry | Distribution, made_layout: LayoutReader) -> None:
    _, blob = made_layout.config_for("single-riscv64", "linux/riscv64")
    assert server_client.get_image_config(f"{server.host}/made:single-riscv64") == json.loads(blob)


def test_single_platform_image_other_platform(server_client: regclient_ext.Client, server: Registry | Distribution) -> None:
    with pytest.raises(regclient_ext.PlatformNotFoundError) as caught:
        server_client.get_image_config(f"{server.host}/made:single-riscv64", platform="linux/amd64")
    assert caught.value.platforms == ("linux/riscv64",)


@pytest.mark.parametrize("tag", ["a1", "a2", "a3", "a-example", "a-docker", "a-docker-oci", "child", "mirror"])
def test_artifact_raises_unsupported_media_type(server_client: regclient_ext.Client, server: Registry | Distribution, tag: str) -> None:
    with pytest.raises(regclient_ext.UnsupportedMediaTypeError) as caught:
        server_client.get_image_config(f"{server.host}/testrepo:{tag}")
    assert caught.value.reference == f"{server.host}/testrepo:{tag}"
    assert caught.value.registry == server.host
    assert f"{server.host}/testrepo:{tag}" in str(caught.value)


def test_missing_tag_raises_not_found(server_client: regclient_ext.Client, server: Registry | Distribution) -> None:
    with pytest.raises(regclient_ext.NotFoundError) as caught:
        server_client.get_image_config(f"{server.host}/testrepo:no-such-tag")
    assert type(caught.value) is regclient_ext.NotFoundError
    assert isinstance(caught.value, LookupError)
    assert caught.value.reference == f"{server.host}/testrepo:no-such-tag"
    assert server.host in str(caught.value)


def test_missing_repository_raises_not_found(server_client: regclient_ext.Client, server: Registry | Distribution) -> None:
    with pytest.raises(regclient_ext.NotFoundError):
        server_client.get_image_config(f"{server.host}/no-such-repo:v1")


def test_missing_ocidir_tag_raises_not_found() -> None:
    with pytest.raises(regclient_ext.NotFoundError) as caught:
        regclient_ext.get_image_config(f"ocidir://{FIXTURE_LAYOUT}:no-such-tag")
    assert str(caught.value).endswith("; check the layout path and the tag")


def test_missing_ocidir_path_raises_not_found(tmp_path: Path) -> None:
    with pytest.raises(regclient_ext.NotFoundError) as caught:
        regclient_ext.get_image_config(f"ocidir://{tmp_path / 'no-such-layout'}:v1")
    assert str(tmp_path / "no-such-layout") in str(caught.value)
    assert str(caught.value).endswith("; check the layout path and the tag")


def test_missing_platform_lists_available(server_client: regclient_ext.Client, server: Registry | Distribution) -> None:
    with pytest.raises(regclient_ext.PlatformNotFoundError) as caught:
        server_client.get_image_config(f"{server.host}/testrepo:v1", platform="linux/s390x")
    assert caught.value.platforms == ("linux/amd64", "linux/arm64")
    assert "linux/amd64, linux/arm64" in str(caught.value)
    assert isinstance(caught.value, regclient_ext.NotFoundError)


def test_arm_v6_not_in_v2(server_client: regclient_ext.Client, server: Registry | Distribution) -> None:
    with pytest.raises(regclient_ext.PlatformNotFoundError):
        server_client.get_image_config(f"{server.host}/testrepo:v2", platform="linux/arm/v6")


@pytest.fixture
def connection_counter() -> Iterator[CountingListener]:
    counter = CountingListener()
    yield counter
    counter.close()


@pytest.mark.parametrize(
    "image",
    [
        "{host}/Upper/Case:v1",
        "{host}/repo:bad tag",
        "{host}/repo:" + "t" * 200,
        "{host}/repo@sha256:not-hex",
        "{host}/repo:v1@md5:1234",
        "{host}//repo:v1",
        "{host}/repo:v1\x00",
        "",
        "   ",
    ],
)
def test_malformed_reference_sends_nothing(connection_counter: CountingListener, image: str) -> None:
    client = regclient_ext.Client(hosts=[regclient_ext.Host(connection_counter.host, tls="disabled")], docker_config=False)
    with pytest.raises(regclient_ext.InvalidReferenceError) as caught:
        client.get_image_config(image.format(host=connection_counter.host))
    assert isinstance(caught.value, ValueError)
    assert connection_counter.count == 0


def test_wrong_types_raise_type_error() -> None:
    with pytest.raises(TypeError):
        regclient_ext.get_image_config(b"ocidir://x:v1")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        regclient_ext.get_image_config(f"ocidir://{FIXTURE_LAYOUT}:v1", platform=7)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        regclient_ext.get_image_config(f"ocidir://{FIXTURE_LAYOUT}:v1", timeout="5")  # type: ignore[arg-type]


def test_invalid_platform_raises_value_error() -> None:
    with pytest.raises(regclient_ext.InvalidPlatformError) as caught:
        regclient_ext.get_image_config(f"ocidir://{FIXTURE_LAYOUT}:v1", platform="linux/amd64/../../x")
    assert isinstance(caught.value, ValueError)


def test_basic_auth_credentials_reach_registry(basic_auth_registry: Registry, fixture_layout: LayoutReader) -> None:
    _, blob = fixture_layout.config_for("v1", "linux/arm64")
    config = regclient_ext.get_image_config(
        f"{basic_auth_registry.host}/testrepo:v1", platform="linux/arm64", username=BASIC_USER, password=BASIC_PASSWORD, tls="disabled"
    )
    assert config == json.loads(blob)


def test_basic_auth_wrong_password(basic_auth_registry: Registry) -> None:
    wrong = "not-the-password-" + BASIC_PASSWORD
    with pytest.raises(regclient_ext.AuthenticationError) as caught:
        regclient_ext.get_image_config(f"{basic_auth_registry.host}/testrepo:v1", username=BASIC_USER, password=wrong, tls="disabled")
    assert isinstance(caught.value, PermissionError)
    assert caught.value.registry == basic_auth_registry.host
    assert wrong not in str(caught.value)
    assert wrong not in repr(caught.value)


def test_basic_auth_missing_credentials(basic_auth_registry: Registry) -> None:
    with pytest.raises(regclient_ext.AuthenticationError):
        regclient_ext.get_image_config(f"{basic_auth_registry.host}/testrepo:v1", tls="disabled")


def test_tls_hostname_applies_to_named_host(registry: Registry, fixture_layout: LayoutReader) -> None:
    _, blob = fixture_layout.config_for("v1", "linux/amd64")
    config = regclient_ext.get_image_config(f"{registry.host}/testrepo:v1", platform="linux/amd64", tls_hostname=registry.host, tls="disabled")
    assert config == json.loads(blob)


def test_tls_enabled_against_plain_http_fails(registry: Registry) -> None:
    with pytest.raises(regclient_ext.RegistryConnectionError):
        regclient_ext.get_image_config(f"{registry.host}/testrepo:v1", tls="enabled", timeout=10)
