"""Module-level functions, on a shared default client or cached clients for per-call settings."""

from __future__ import annotations

import _thread

from ._client import DEFAULT_TIMEOUT, Client
from ._validate import require_str

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from ._host import Host
    from ._info import ImageInfo
    from .types import ImageConfig

__all__ = ["get_image_config", "inspect_image"]

# Clients for per-call credentials and TLS settings, least recently used
# first. Each keeps its own connections and tokens.
MAX_CACHED_CLIENTS = 32

_lock = _thread.allocate_lock()
_default_client: Client | None = None
# A dict keeps insertion order, so popping and inserting again moves a key to the end.
_cached_clients: dict[tuple[Host, ...], Client] = {}


def shared_client(hosts: tuple[Host, ...] = ()) -> Client:
    """Return the default client, or the cached client for these host settings."""
    global _default_client
    with _lock:
        if not hosts:
            if _default_client is None:
                _default_client = Client()
            return _default_client
        client = _cached_clients.pop(hosts, None) or Client(hosts=hosts)
        _cached_clients[hosts] = client
        if len(_cached_clients) > MAX_CACHED_CLIENTS:
            # Not closed here, because closing would end its calls still running.
            # It frees its Go side when the last of those calls returns.
            del _cached_clients[next(iter(_cached_clients))]
        return client


def _hosts_for_call(image: str, username: str | None, password: str | None, tls_hostname: str | None, tls: str | None) -> tuple[Host, ...]:
    """Build the host entries that per-call credentials and a TLS mode ask for."""
    from ._host import TLS_MODES, Host

    if tls is not None and tls not in TLS_MODES:
        raise ValueError(f"invalid tls {tls!r}: expected one of {', '.join(TLS_MODES)}")
    if username is None and password is None and tls is None:
        if tls_hostname is not None:
            raise ValueError("tls_hostname needs tls: pass tls='enabled', 'disabled' or 'insecure'")
        return ()
    if (username is None) != (password is None):
        raise ValueError("username and password must be given together")
    require_str("image", image)
    parsed = shared_client()._parse(image)
    if parsed["scheme"] != "reg":
        return ()

    registry = parsed["registry"]
    tls_host = tls_hostname if tls_hostname is not None else registry
    hosts = []
    if username is not None or tls_host == registry:
        registry_tls = tls if tls is not None and tls_host == registry else "enabled"
        hosts.append(Host(registry, tls=registry_tls, username=username, password=password))
    if tls is not None and tls_host != registry:
        hosts.append(Host(tls_host, tls=tls))
    return tuple(hosts)


def get_image_config(
    image: str,
    *,
    platform: str | None = None,
    username: str | None = None,
    password: str | None = None,
    tls_hostname: str | None = None,
    tls: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> ImageConfig:
    """Return the config of ``image`` as a dict, using a shared client.

    ``username`` and ``password`` apply to the image's registry. ``tls`` is
    "enabled", "disabled" (plain HTTP) or "insecure" (no certificate
    verification) and applies to the image's registry, or to
    ``tls_hostname`` when that is given. ``platform`` is
    "os/arch[/variant]" and defaults to the host's.
    """
    hosts = _hosts_for_call(image, username, password, tls_hostname, tls)
    return shared_client(hosts).get_image_config(image, platform=platform, timeout=timeout)


def inspect_image(
    image: str,
    *,
    platform: str | None = None,
    username: str | None = None,
    password: str | None = None,
    tls_hostname: str | None = None,
    tls: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> ImageInfo:
    """Return the digests, platforms and config of ``image``, using a shared client.

    The arguments are those of get_image_config.
    """
    hosts = _hosts_for_call(image, username, password, tls_hostname, tls)
    return shared_client(hosts).inspect_image(image, platform=platform, timeout=timeout)
