"""Per-registry settings for a Client."""

from __future__ import annotations

import math
from dataclasses import KW_ONLY, dataclass, field

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from typing import Any

from ._validate import require_str

__all__ = ["TLS_MODES", "Host"]

TLS_MODES = ("enabled", "disabled", "insecure")


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
    _: KW_ONLY
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
        require_str("name", self.name)
        if not _valid_host_name(self.name):
            raise ValueError(f"invalid host name {self.name!r}: expected host[:port] with a port from 1 to 65535, such as registry.example.com:5000")
        if self.tls not in TLS_MODES:
            raise ValueError(f"invalid tls {self.tls!r} for host {self.name}: expected one of {', '.join(TLS_MODES)}")
        for name in ("ca_cert", "client_cert", "client_key", "username", "password", "token"):
            value = getattr(self, name)
            if value is not None:
                require_str(name, value)
                if "\0" in value:
                    raise ValueError(f"{name} for host {self.name} contains a NUL character")
                if not value.isascii():
                    try:
                        value.encode("utf-8")
                    except UnicodeEncodeError:
                        raise ValueError(f"{name} for host {self.name} is not valid Unicode text: it contains a lone surrogate") from None
        if self.password is not None and self.username is None:
            raise ValueError(f"password for host {self.name} needs a username")
        if (self.client_cert is None) != (self.client_key is None):
            raise ValueError(f"client_cert and client_key for host {self.name} must be given together")
        if isinstance(self.mirrors, str):
            raise TypeError("mirrors must be a sequence of host names, not a str")
        object.__setattr__(self, "mirrors", tuple(self.mirrors))
        for mirror in self.mirrors:
            require_str("mirror", mirror)
            if not _valid_host_name(mirror):
                raise ValueError(f"invalid mirror {mirror!r} for host {self.name}: expected host[:port]")
        if self.concurrency is not None and (type(self.concurrency) is not int or not 1 <= self.concurrency <= 1024):
            raise ValueError(f"concurrency for host {self.name} must be an int from 1 to 1024, got {self.concurrency!r}")
        # regclient's rate limiter waits without the call's timeout, so a rate
        # below one per second could hold a call well past it.
        rate = self.requests_per_second
        if rate is not None and (isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 1 <= rate <= 1e6):
            raise ValueError(f"requests_per_second for host {self.name} must be a number from 1 to 1000000, got {rate!r}")

    def __repr__(self) -> str:
        parts = [f"name={self.name!r}", f"tls={self.tls!r}"]
        if self.username is not None:
            parts.append(f"username={self.username!r}")
        parts.extend(f"{name}='***'" for name in ("password", "token", "client_key") if getattr(self, name) is not None)
        if self.mirrors:
            parts.append(f"mirrors={self.mirrors!r}")
        return f"Host({', '.join(parts)})"

    def _secrets(self) -> tuple[str, ...]:
        """Return the values that messages must never show, with the Basic auth encoding of the password."""
        secrets = [value for value in (self.password, self.token) if value]
        if self.username is not None and self.password:
            import base64

            secrets.append(base64.b64encode(f"{self.username}:{self.password}".encode()).decode())
        return tuple(secrets)

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
_HOST_NAME = r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?"


def _valid_host_name(name: str) -> bool:
    import re  # re caches compiled patterns

    match = re.fullmatch(_HOST_NAME, name)
    if match is None:
        return False
    port = name.rpartition(":")[2] if not name.endswith("]") and ":" in name else None
    return port is None or 1 <= int(port) <= 65535


def _read_pem(name: str, value: str | None) -> str:
    """Return PEM text given as text or as a file path."""
    if value is None:
        return ""
    if "-----BEGIN" in value:
        return value
    try:
        with open(value, encoding="ascii") as file:
            text = file.read()
    except (OSError, UnicodeError, ValueError) as error:
        raise ValueError(f"{name} is neither PEM text (-----BEGIN ...) nor a readable PEM file: {error}") from None
    if "-----BEGIN" not in text:
        raise ValueError(f"{name}: {value!r} is not a PEM file")
    return text
