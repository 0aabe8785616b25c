"""The Client class, its Host settings and the module-level functions."""

from __future__ import annotations

import json
import logging
import math
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from . import _native
from .errors import ClientClosedError, RegclientError, error_from_record

__all__ = ["Client", "Host", "ImageInfo", "get_image_config", "inspect_image"]

logger = logging.getLogger("regclient_ext")

TLS_MODES = ("enabled", "disabled", "insecure")
DEFAULT_TIMEOUT = 30.0


@dataclass(frozen=True)
class Host:
    """Settings for one registry host.

    ``name`` is the registry as it appears in image references, with a port
    if it has one ("registry.example.com:5000"). "docker.io",
    "index.docker.io" and "registry-1.docker.io" all mean Docker Hub.
    ``tls`` is "enabled" (HTTPS, verified), "disabled" (plain HTTP) or
    "insecure" (HTTPS without certificate verification). ``ca_cert``,
    ``client_cert`` and ``client_key`` take PEM text or a file path.
    ``token`` is an identity token, as ``docker login`` stores for some
    registries. ``mirrors`` names other hosts to try first for this one.
    ``concurrency`` bounds parallel requests to this host and
    ``requests_per_second`` their rate.
    """

    name: str
    tls: str = "enabled"
    ca_cert: str | None = field(default=None, repr=False)
    client_cert: str | None = field(default=None, repr=False)
    client_key: str | None = field(default=None, repr=False)
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    mirrors: tuple[str, ...] = ()
    concurrency: int | None = None
    requests_per_second: float | None = None

    def __post_init__(self) -> None:
        _require_str("name", self.name)
        if not _HOST_NAME.fullmatch(self.name):
            raise ValueError(f"invalid host name {self.name!r}: expected host[:port], such as registry.example.com:5000")
        if self.tls not in TLS_MODES:
            raise ValueError(f"invalid tls {self.tls!r} for host {self.name}: expected one of {', '.join(TLS_MODES)}")
        for name in ("ca_cert", "client_cert", "client_key", "username", "password", "token"):
            value = getattr(self, name)
            if value is not None:
                _require_str(name, value)
                if "\0" in value:
                    raise ValueError(f"{name} for host {self.name} contains a NUL character")
        if (self.client_cert is None) != (self.client_key is None):
            raise ValueError(f"client_cert and client_key for host {self.name} must be given together")
        if isinstance(self.mirrors, str):
            raise TypeError("mirrors must be a sequence of host names, not a str")
        object.__setattr__(self, "mirrors", tuple(self.mirrors))
        for mirror in self.mirrors:
            _require_str("mirror", mirror)
            if not _HOST_NAME.fullmatch(mirror):
                raise ValueError(f"invalid mirror {mirror!r} for host {self.name}: expected host[:port]")
        if self.concurrency is not None and (type(self.concurrency) is not int or not 1 <= self.concurrency <= 1024):
            raise ValueError(f"concurrency for host {self.name} must be an int from 1 to 1024, got {self.concurrency!r}")
        rate = self.requests_per_second
        if rate is not None and (isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 < rate < math.inf):
            raise ValueError(f"requests_per_second for host {self.name} must be a positive number, got {rate!r}")

    def __repr__(self) -> str:
        parts = [f"name={self.name!r}", f"tls={self.tls!r}"]
        if self.username is not None:
            parts.append(f"username={self.username!r}")
        parts.extend(f"{name}='***'" for name in ("password", "token", "client_key") if getattr(self, name) is not None)
        if self.mirrors:
            parts.append(f"mirrors={self.mirrors!r}")
        return f"Host({', '.join(parts)})"

    def _secrets(self) -> tuple[str, ...]:
        return tuple(value for value in (self.password, self.token) if value)

    def _options(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "tls": self.tls,
            "ca_cert": _read_pem("ca_cert", self.ca_cert),
            "client_cert": _read_pem("client_cert", self.client_cert),
            "client_key": _read_pem("client_key", self.client_key),
            "username": self.username or "",
            "password": self.password or "",
            "token": self.token or "",
            "mirrors": list(self.mirrors),
            "concurrency": self.concurrency or 0,
            "requests_per_second": float(self.requests_per_second or 0),
        }


# host[:port]: a DNS name, an IPv4 address or a bracketed IPv6 address.
_HOST_NAME = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")


def _docker_config_file() -> str:
    """Return docker's config.json as docker finds it (DOCKER_CONFIG, else ~/.docker), or "" if absent."""
    directory = os.environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")
    path = os.path.join(directory, "config.json")
    return path if os.path.isfile(path) else ""


def _read_pem(name: str, value: str | None) -> str:
    """Return PEM text given as text or as a file path."""
    if value is None:
        return ""
    if "-----BEGIN" in value:
        return value
    try:
        with open(value, encoding="ascii") as file:
            text = file.read()
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"{name}: cannot read PEM file {value!r}: {error}") from None
    if "-----BEGIN" not in text:
        raise ValueError(f"{name}: {value!r} is not a PEM file")
    return text


@dataclass(frozen=True)
class ImageInfo:
    """What inspect_image learned about one platform of an image.

    ``digest`` is what the reference resolves to (an index for a
    multi-platform image), ``manifest_digest`` the chosen platform's
    manifest and ``platforms`` every platform in the index, attestation
    entries excluded; it is empty for a single-platform image.
    """

    reference: str
    digest: str
    manifest_digest: str
    config_digest: str
    media_type: str
    platform: str
    config: dict[str, Any]
    platforms: tuple[str, ...]


class Client:
    """A registry client that keeps its connections and tokens between calls.

    Safe to share between threads. The Go library is loaded on the first
    call, not when the client is made, so a client may be created before
    the process forks. Use it as a context manager, or call close().
    """

    def __init__(
        self,
        *,
        hosts: Iterable[Host] = (),
        docker_config: bool = True,
        docker_certs: bool = True,
        user_agent: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        retry_limit: int | None = None,
    ) -> None:
        host_list = list(hosts)
        for host in host_list:
            if not isinstance(host, Host):
                raise TypeError(f"hosts must contain Host objects, got {type(host).__name__}")
        if user_agent is not None:
            _require_str("user_agent", user_agent)
        if retry_limit is not None and (type(retry_limit) is not int or retry_limit < 0):
            raise ValueError(f"retry_limit must be a non-negative int or None, got {retry_limit!r}")
        self._timeout = _check_timeout(timeout)
        self._options = json.dumps(
            {
                "hosts": [host._options() for host in host_list],
                "docker_config_file": _docker_config_file() if docker_config else "",
                "path": os.environ.get("PATH", ""),
                "docker_certs": bool(docker_certs),
                "user_agent": user_agent or "",
                "retry_limit": retry_limit or 0,
            }
        ).encode()
        self._secrets = tuple(secret for host in host_list for secret in host._secrets())
        self._hosts = tuple(host.name for host in host_list)
        self._lock = threading.Lock()
        self._handle = 0
        self._closed = False

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<regclient_ext.Client hosts={list(self._hosts)!r} {state}>"

    def __enter__(self) -> Client:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - never raise from a finalizer
            pass

    def close(self) -> None:
        """Release the Go client. Calls still running end with ClientClosedError."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            handle, self._handle = self._handle, 0
        if handle:
            _native.client_free(handle)

    def get_image_config(self, image: str, *, platform: str | None = None, timeout: float | None = None) -> dict[str, Any]:
        """Return the config of ``image`` for ``platform`` (default: the host's) as a dict.

        The dict is the config blob exactly as the registry stores it,
        parsed as JSON, with every field kept.
        """
        _, config = self._fetch(image, platform, timeout)
        return config

    def inspect_image(self, image: str, *, platform: str | None = None, timeout: float | None = None) -> ImageInfo:
        """Return the digests, media type, platforms and config of ``image``."""
        meta, config = self._fetch(image, platform, timeout)
        return ImageInfo(
            reference=meta["reference"],
            digest=meta["digest"],
            manifest_digest=meta["manifest_digest"],
            config_digest=meta["config_digest"],
            media_type=meta["media_type"],
            platform=meta["platform"],
            config=config,
            platforms=tuple(meta["platforms"]),
        )

    def _fetch(self, image: str, platform: str | None, timeout: float | None) -> tuple[dict[str, Any], dict[str, Any]]:
        _require_str("image", image)
        if platform is not None:
            _require_str("platform", platform)
        seconds = self._timeout if timeout is None else _check_timeout(timeout)
        request = {"kind": "config", "image": image, "platform": platform or "", "timeout_ms": math.ceil(seconds * 1000)}
        meta, body = self._call(request)
        logger.debug("fetched config %s for %s", meta["config_digest"], meta["reference"])
        return meta, json.loads(body)

    def _parse(self, image: str) -> dict[str, Any]:
        """Parse an image reference in Go; returns reference, registry and scheme."""
        meta, _ = self._call({"kind": "parse", "image": image})
        return meta

    def _call(self, request: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
        request["log_level"] = logger.getEffectiveLevel()
        ok, meta, body = _native.call(self._acquire(), json.dumps(request).encode())
        envelope = json.loads(meta)
        self._emit_logs(envelope.get("logs") or ())
        if not ok:
            raise error_from_record(envelope["error"], self._secrets)
        return envelope["result"], body

    def _emit_logs(self, records: Iterable[dict[str, Any]]) -> None:
        """Log the Go side's records under this package's logger, with secrets masked."""
        for record in records:
            level = int(record.get("level", logging.WARNING))
            if logger.isEnabledFor(level):
                logger.log(level, "%s", _mask(str(record.get("message", "")), self._secrets))

    def _acquire(self) -> int:
        """Return the Go client handle, creating it on first use."""
        with self._lock:
            if self._closed:
                raise ClientClosedError("the client is closed; create a new Client")
            if not self._handle:
                handle, error = _native.client_new(self._options)
                if error is not None:
                    raise error_from_record(json.loads(error)["error"], self._secrets)
                self._handle = handle
            return self._handle


def _mask(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def _require_str(name: str, value: object) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}")


def _check_timeout(timeout: object) -> float:
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"timeout must be a number of seconds, got {type(timeout).__name__}")
    if not (0 < timeout <= 24 * 3600) or math.isnan(timeout):
        raise ValueError(f"timeout must be more than 0 and at most 86400 seconds, got {timeout!r}")
    return float(timeout)


# Clients for the module-level functions: one default, plus one per set of
# credentials and TLS settings, least recently used first.
_MAX_CACHED_CLIENTS = 32
_clients_lock = threading.Lock()
_default_client: Client | None = None
_cached_clients: OrderedDict[tuple[Host, ...], Client] = OrderedDict()


def _shared_client(hosts: tuple[Host, ...] = ()) -> Client:
    global _default_client
    with _clients_lock:
        if not hosts:
            if _default_client is None:
                _default_client = Client()
            return _default_client
        client = _cached_clients.pop(hosts, None) or Client(hosts=hosts)
        _cached_clients[hosts] = client
        if len(_cached_clients) > _MAX_CACHED_CLIENTS:
            _, evicted = _cached_clients.popitem(last=False)
            evicted.close()
        return client


def _hosts_for_call(image: str, username: str | None, password: str | None, tls_hostname: str | None, tls: str | None) -> tuple[Host, ...]:
    """Build the host entries that the per-call credentials and TLS mode ask for."""
    if username is None and password is None and tls is None:
        if tls_hostname is not None:
            raise ValueError("tls_hostname needs tls: pass tls='enabled', 'disabled' or 'insecure'")
        return ()
    if (username is None) != (password is None):
        raise ValueError("username and password must be given together")
    _require_str("image", image)
    registry = _shared_client()._parse(image)
    if registry["scheme"] != "reg":
        return ()

    registry_name = registry["registry"]
    tls_host = tls_hostname if tls_hostname is not None else registry_name
    hosts = []
    if username is not None or tls_host == registry_name:
        hosts.append(Host(registry_name, tls=tls if tls and tls_host == registry_name else "enabled", username=username, password=password))
    if tls and tls_host != registry_name:
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
) -> dict[str, Any]:
    """Return the config of ``image`` as a dict, using a shared client.

    ``username`` and ``password`` apply to the image's registry. ``tls`` is
    "enabled", "disabled" (plain HTTP) or "insecure" (no certificate
    verification) and applies to the image's registry, or to
    ``tls_hostname`` when that is given. ``platform`` is
    "os/arch[/variant]" and defaults to the host's.
    """
    hosts = _hosts_for_call(image, username, password, tls_hostname, tls)
    return _shared_client(hosts).get_image_config(image, platform=platform, timeout=timeout)


def inspect_image(image: str, *, platform: str | None = None, timeout: float = DEFAULT_TIMEOUT) -> ImageInfo:
    """Return the digests, platforms and config of ``image``, using the shared default client."""
    return _shared_client().inspect_image(image, platform=platform, timeout=timeout)
