"""Client: a long-lived registry client, and what its calls return."""

from __future__ import annotations

# Locks come from _thread, because importing threading would add about
# 1 ms to the package's import (median of 80 paired runs, CPython 3.11 on
# a 2-vCPU VM).
import _thread
import math
import os

from . import _native
from ._validate import check_platform, check_timeout, require_str
from .errors import ClientClosedError, InvalidContentError, InvalidReferenceError, RegclientError, error_from_record, mask_secrets

__all__ = ["DEFAULT_CACHE_SIZE", "DEFAULT_TIMEOUT", "Client"]

# typing.TYPE_CHECKING without importing typing (type checkers take it as true). The modules below
# load on first use (json on the first call), so importing the package stays light.
# NOTE: typing.get_type_hints() therefore cannot resolve this module's annotations at run time.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import logging
    from collections.abc import Iterable, Sequence
    from types import TracebackType
    from typing import Any

    from ._host import Host
    from ._info import ImageInfo
    from .types import ImageConfig

_logger: logging.Logger | None = None


def get_logger() -> logging.Logger:
    """Return the package's logger, importing logging on first use to keep import light.

    The NullHandler keeps Python's last-resort handler from printing
    regclient's warnings when the application configured no logging.
    """
    global _logger
    if _logger is None:
        import logging

        logger = logging.getLogger("regclient_ext")
        logger.addHandler(logging.NullHandler())
        _logger = logger
    return _logger

DEFAULT_TIMEOUT = 30.0
# Longer than any registry reference or ocidir path (PATH_MAX is 4096).
MAX_REFERENCE_LENGTH = 4096
# Manifests and configs are a few KiB each, so 32 MiB fits thousands.
DEFAULT_CACHE_SIZE = 32 * 1024 * 1024


class BaseClient:
    """Options, the Go client handle and result decoding, shared by Client and AsyncClient."""

    def __init__(
        self,
        *,
        hosts: Iterable[Host] = (),
        docker_config: bool = True,
        docker_certs: bool = True,
        user_agent: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        retry_limit: int | None = None,
        cache_size: int = DEFAULT_CACHE_SIZE,
        allowed_registries: Iterable[str] | None = None,
        block_private_networks: bool = False,
    ) -> None:
        import json

        # A Host is not iterable, so passing one alone raises here too.
        try:
            host_iterator = iter(hosts)
        except TypeError:
            host_iterator = None
        if isinstance(hosts, str) or host_iterator is None:
            raise TypeError("hosts must be a sequence of Host objects")
        host_list = list(host_iterator)
        if host_list:
            from ._host import Host

            for host in host_list:
                if not isinstance(host, Host):
                    raise TypeError(f"hosts must contain Host objects, got {type(host).__name__}")
        names = [host.name.lower() for host in host_list]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"hosts names {', '.join(duplicates)} more than once; merge the settings into one Host")
        if user_agent is not None:
            require_str("user_agent", user_agent)
            if "\0" in user_agent or "\n" in user_agent or "\r" in user_agent:
                raise ValueError("user_agent must not contain NUL or line breaks")
        if retry_limit is not None and (type(retry_limit) is not int or not 0 <= retry_limit <= 100):
            raise ValueError(f"retry_limit must be an int from 0 to 100, or None, got {retry_limit!r}")
        if type(cache_size) is not int or cache_size < 0:
            raise ValueError(f"cache_size must be a non-negative int (bytes), got {cache_size!r}")
        allowed = _check_allowed_registries(allowed_registries)
        self._timeout = check_timeout(timeout)
        self._options = json.dumps(
            {
                "hosts": [host._options() for host in host_list],
                "docker_config_file": _docker_config_file() if docker_config else "",
                "path": os.environ.get("PATH", ""),
                "docker_certs": bool(docker_certs),
                "user_agent": user_agent or "",
                "retry_limit": retry_limit or 0,
                "cache_bytes": cache_size,
                "allowed_registries": allowed,
                "block_private_networks": bool(block_private_networks),
            }
        ).encode()
        self._secrets = tuple(secret for host in host_list for secret in host._secrets())
        if docker_config:
            self._secrets += _docker_config_secrets()
        self._hosts = tuple(host.name for host in host_list)
        self._lock = _thread.allocate_lock()
        self._handle = 0
        self._closed = False

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<regclient_ext.{type(self).__name__} hosts={list(self._hosts)!r} {state}>"

    def __del__(self) -> None:
        try:
            self._free()
        except Exception:  # noqa: BLE001 - never raise from a finalizer
            pass

    def _free(self) -> None:
        """Release the Go client; calls still running end with ClientClosedError."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            handle, self._handle = self._handle, 0
        if handle:
            _native.client_free(handle)

    def _acquire(self) -> int:
        """Return the Go client handle, creating it on first use."""
        with self._lock:
            if self._closed:
                raise ClientClosedError("the client is closed; create a new one")
            if not self._handle:
                handle, error = _native.client_new(self._options)
                if error is not None:
                    import json

                    raise error_from_record(json.loads(error)["error"], self._secrets)
                self._handle = handle
            return self._handle

    def _config_request(self, image: object, platform: object, timeout: object) -> bytes:
        import json

        require_str("image", image)
        if len(image) > MAX_REFERENCE_LENGTH:  # type: ignore[arg-type]
            raise InvalidReferenceError(f"image reference is {len(image)} characters, more than the {MAX_REFERENCE_LENGTH} allowed")  # type: ignore[arg-type]
        seconds = self._timeout if timeout is None else check_timeout(timeout)
        request = {
            "kind": "config",
            "image": image,
            "platform": check_platform(platform),
            "timeout_ms": math.ceil(seconds * 1000),
            "log_level": get_logger().getEffectiveLevel(),
        }
        return json.dumps(request).encode()

    def _decode(self, result: tuple[bool, bytes, bytes]) -> tuple[dict[str, Any], bytes]:
        """Log the records of a native result, then return its metadata and body or raise its error."""
        import json

        ok, meta, body = result
        envelope = json.loads(meta)
        logger = get_logger()
        for record in envelope.get("logs") or ():
            level = int(record.get("level", 30))
            if logger.isEnabledFor(level):
                logger.log(level, "%s", mask_secrets(str(record.get("message", "")), self._secrets))
        if not ok:
            raise error_from_record(envelope["error"], self._secrets)
        return envelope["result"], body

    def _config(self, result: tuple[bool, bytes, bytes]) -> ImageConfig:
        meta, body = self._decode(result)
        get_logger().debug("fetched config %s for %s", meta["config_digest"], meta["reference"])
        return _parse_config(body, meta)

    def _image_info(self, result: tuple[bool, bytes, bytes]) -> ImageInfo:
        from ._info import ImageInfo

        meta, body = self._decode(result)
        return ImageInfo(
            reference=meta["reference"],
            digest=meta["digest"],
            manifest_digest=meta["manifest_digest"],
            config_digest=meta["config_digest"],
            media_type=meta["media_type"],
            platform=meta["platform"],
            config=_parse_config(body, meta),
            platforms=tuple(meta["platforms"]),
        )

    def _config_or_error(self, result: tuple[bool, bytes, bytes], return_exceptions: bool) -> ImageConfig | RegclientError:
        try:
            return self._config(result)
        except RegclientError as error:
            if return_exceptions:
                return error
            raise


class Client(BaseClient):
    """A registry client that keeps its connections, tokens and caches between calls.

    Safe to share between threads. The Go library is loaded on the first
    call, not when the client is made, so a client may be created before
    the process forks. Use it as a context manager, or call close().

    ``allowed_registries`` limits the registries that references may name,
    and redirects may reach; ``block_private_networks`` refuses
    connections to loopback, private, link-local and metadata addresses
    after DNS resolution. Either refuses ``ocidir://`` references, which
    read local files. Refusals raise PolicyError.

    ``cache_size`` bounds, in bytes, the in-memory cache of manifests and
    configs addressed by digest; 0 turns it off. With the cache, a repeated
    lookup of an unchanged tag costs one HEAD request.
    """

    def __enter__(self) -> Client:
        if self._closed:
            raise ClientClosedError("the client is closed; create a new one")
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Release the Go client. Calls still running end with ClientClosedError."""
        self._free()

    def get_image_config(self, image: str, *, platform: str | None = None, timeout: float | None = None) -> ImageConfig:
        """Return the config of ``image`` for ``platform`` (default: the host's) as a dict.

        The dict is the config blob exactly as the registry stores it,
        parsed as JSON, with every field kept.
        """
        return self._config(self._call(self._config_request(image, platform, timeout)))

    def inspect_image(self, image: str, *, platform: str | None = None, timeout: float | None = None) -> ImageInfo:
        """Return the digests, media type, platforms and config of ``image``."""
        return self._image_info(self._call(self._config_request(image, platform, timeout)))

    def get_image_configs(
        self, images: Sequence[str], *, platform: str | None = None, timeout: float | None = None, return_exceptions: bool = False
    ) -> list[ImageConfig | RegclientError]:
        """Return the configs of many images, fetched concurrently, in input order.

        With ``return_exceptions=True`` a failed lookup puts its
        RegclientError in the list instead of raising the first one.
        """
        if isinstance(images, (str, bytes)):
            raise TypeError("images must be a sequence of image references, not a single str")
        requests = [self._config_request(image, platform, timeout) for image in images]
        results = _native.call_many(self._acquire(), requests)
        return [self._config_or_error(result, return_exceptions) for result in results]

    def _parse(self, image: str) -> dict[str, Any]:
        """Parse an image reference in Go; returns reference, registry and scheme."""
        import json

        require_str("image", image)
        meta, _ = self._decode(self._call(json.dumps({"kind": "parse", "image": image}).encode()))
        return meta

    def _call(self, request: bytes) -> tuple[bool, bytes, bytes]:
        return _native.call(self._acquire(), request)


def _parse_config(body: bytes, meta: dict[str, Any]) -> ImageConfig:
    """Parse a config that Go has checked is JSON; Python's parser has limits Go's lacks."""
    import json

    try:
        config: ImageConfig = json.loads(body)
    except (ValueError, RecursionError) as error:
        raise InvalidContentError(
            f"config {meta['config_digest']} of {meta['reference']} cannot be parsed in Python: {type(error).__name__}: {error}",
            reference=meta["reference"],
            registry=meta["registry"],
        ) from None
    if not isinstance(config, dict):
        raise InvalidContentError(f"config {meta['config_digest']} of {meta['reference']} is not a JSON object", reference=meta["reference"], registry=meta["registry"])
    return config


def _docker_config_secrets() -> tuple[str, ...]:
    """Return the passwords and tokens in docker's config.json, so messages can mask them."""
    path = _docker_config_file()
    if not path:
        return ()
    import json

    try:
        with open(path, encoding="utf-8") as file:
            auths = json.load(file).get("auths", {})
    except (OSError, ValueError, AttributeError):
        return ()
    secrets: list[str] = []
    for entry in auths.values() if isinstance(auths, dict) else ():
        if not isinstance(entry, dict):
            continue
        for key in ("auth", "password", "identitytoken", "registrytoken"):
            if isinstance(entry.get(key), str) and entry[key]:
                secrets.append(entry[key])
        if isinstance(entry.get("auth"), str):
            import base64

            try:
                _, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                continue
            if password:
                secrets.append(password)
    return tuple(secrets)


def _check_allowed_registries(allowed: Iterable[str] | None) -> list[str]:
    if allowed is None:
        return []
    if isinstance(allowed, str):
        raise TypeError("allowed_registries must be a sequence of registry names, not a str")
    names = list(allowed)
    if not names:
        raise ValueError("allowed_registries is empty, which would refuse every registry; pass None to allow all")
    from ._host import Host

    for name in names:
        Host(name)  # validates host[:port]
    return names


def _docker_config_file() -> str:
    """Return docker's config.json as docker finds it (DOCKER_CONFIG, else ~/.docker), or "" if absent."""
    directory = os.environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")
    path = os.path.join(directory, "config.json")
    return path if os.path.isfile(path) else ""


