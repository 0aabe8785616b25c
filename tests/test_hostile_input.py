"""Property-based tests: any input ends in a documented exception, never a crash, hang or stray request."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import regclient_ext
from conftest import FIXTURE_LAYOUT
from servers import CountingListener

# Classes a caller may see for bad input; anything else is a bug.
DOCUMENTED = (regclient_ext.RegclientError, ValueError, TypeError)

# CI runs a fixed set of examples, so a result can be reproduced; a local run
# explores new ones. HYPOTHESIS_EXAMPLES raises the count for a longer hunt.
SETTINGS = settings(
    max_examples=int(os.environ.get("HYPOTHESIS_EXAMPLES", "150")),
    derandomize=os.environ.get("CI") == "true",
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

nasty_text = st.one_of(
    st.text(),
    st.text(alphabet=st.characters(codec="utf-8")),
    st.text(alphabet="\x00\n\r\t /:@.\\%?#[]-_aZ9\u00e9\u202e\ufeff", max_size=64),
    st.sampled_from(["\ud800", "a\udfffb", "x" * 100_000, "/" * 5000, ":" * 5000, "@" * 5000, "\x00" * 10]),
)
wrong_types = st.one_of(st.none(), st.integers(), st.floats(allow_nan=True), st.binary(), st.booleans(), st.lists(st.integers(), max_size=3))


@pytest.fixture(scope="module")
def listener() -> Iterator[CountingListener]:
    server = CountingListener()
    yield server
    server.close()


@pytest.fixture(scope="module")
def fenced_client(listener: CountingListener) -> Iterator[regclient_ext.Client]:
    """A client that may reach only the counting listener: every other registry is refused before DNS."""
    with regclient_ext.Client(
        hosts=[regclient_ext.Host(listener.host, tls="disabled")], docker_config=False, docker_certs=False, allowed_registries=[listener.host], retry_limit=1
    ) as client:
        yield client


@SETTINGS
@given(image=nasty_text)
def test_any_reference_fails_cleanly(fenced_client: regclient_ext.Client, listener: CountingListener, image: str) -> None:
    before = listener.count
    with pytest.raises(DOCUMENTED):
        fenced_client.get_image_config(image, timeout=5)
    assert listener.count == before


@SETTINGS
@given(suffix=nasty_text)
def test_references_to_listener_fail_cleanly(fenced_client: regclient_ext.Client, listener: CountingListener, suffix: str) -> None:
    with pytest.raises(DOCUMENTED):
        fenced_client.get_image_config(f"{listener.host}/{suffix}", timeout=5)


@SETTINGS
@given(platform=nasty_text)
def test_any_platform_fails_or_matches(platform: str) -> None:
    try:
        config = regclient_ext.get_image_config(f"ocidir://{FIXTURE_LAYOUT}:v3", platform=platform, timeout=5)
    except DOCUMENTED:
        return
    assert config["os"] == "linux"


@SETTINGS
@given(name=nasty_text, username=st.one_of(st.none(), nasty_text), password=st.one_of(st.none(), nasty_text), tls=st.one_of(nasty_text, st.sampled_from(["enabled", "disabled", "insecure"])))
def test_any_host_settings_fail_cleanly(name: str, username: str | None, password: str | None, tls: str) -> None:
    try:
        host = regclient_ext.Host(name, tls=tls, username=username, password=password)
    except (ValueError, TypeError):
        return
    assert "\x00" not in host.name
    with regclient_ext.Client(hosts=[host], docker_config=False, allowed_registries=["registry.invalid"]) as client:
        with pytest.raises(DOCUMENTED):
            client.get_image_config(f"{host.name}/app:v1", timeout=5)


@SETTINGS
@given(value=st.one_of(wrong_types, nasty_text))
def test_wrong_types_raise_type_or_value_error(value: object) -> None:
    for call in (
        lambda: regclient_ext.get_image_config(value),  # type: ignore[arg-type]
        lambda: regclient_ext.get_image_config(f"ocidir://{FIXTURE_LAYOUT}:v1", platform=value),  # type: ignore[arg-type]
        lambda: regclient_ext.get_image_config(f"ocidir://{FIXTURE_LAYOUT}:v1", timeout=value),  # type: ignore[arg-type]
        lambda: regclient_ext.Client(timeout=value),  # type: ignore[arg-type]
        lambda: regclient_ext.Client(cache_size=value),  # type: ignore[arg-type]
        lambda: regclient_ext.Host("r.example.com", concurrency=value),  # type: ignore[arg-type]
        lambda: regclient_ext.Host("r.example.com", requests_per_second=value),  # type: ignore[arg-type]
    ):
        try:
            call()
        except DOCUMENTED:
            pass


@pytest.mark.parametrize("timeout", [0, -1, math.nan, math.inf, 1e308, True])
def test_bad_timeouts(timeout: float) -> None:
    with pytest.raises((ValueError, TypeError)):
        regclient_ext.get_image_config(f"ocidir://{FIXTURE_LAYOUT}:v1", timeout=timeout)
