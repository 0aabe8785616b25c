"""Exceptions raised by regclient_ext.

Every exception derives from RegclientError, and many also derive from the
builtin that fits, so ``except LookupError:`` or ``except TimeoutError:``
work as they would anywhere else::

    RegclientError
    ├── InvalidReferenceError        (ValueError)
    ├── InvalidPlatformError         (ValueError)
    ├── InvalidArgumentError         (ValueError)
    ├── NotFoundError                (LookupError)
    │   └── PlatformNotFoundError
    ├── AuthenticationError          (PermissionError)
    ├── UnsupportedMediaTypeError
    ├── RateLimitError
    ├── RegistryTimeoutError         (TimeoutError)
    ├── RegistryConnectionError      (ConnectionError)
    ├── InvalidContentError
    │   ├── DigestMismatchError
    │   └── SizeLimitError
    ├── RegistryResponseError
    ├── PolicyError                  (PermissionError)
    ├── ClientClosedError
    └── ForkError                    (RuntimeError)
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from typing import Any

__all__ = [
    "AuthenticationError",
    "ClientClosedError",
    "DigestMismatchError",
    "ForkError",
    "InvalidArgumentError",
    "InvalidContentError",
    "InvalidPlatformError",
    "InvalidReferenceError",
    "NotFoundError",
    "PlatformNotFoundError",
    "PolicyError",
    "RateLimitError",
    "RegclientError",
    "RegistryConnectionError",
    "RegistryResponseError",
    "RegistryTimeoutError",
    "SizeLimitError",
    "UnsupportedMediaTypeError",
]


class RegclientError(Exception):
    """Base class of every error that regclient_ext raises.

    ``reference`` is the image reference as parsed (fully qualified).
    ``registry`` is the registry host, or the ``ocidir://`` path. Either is
    None when the error happened before it was known.
    """

    def __init__(self, message: str, *, reference: str | None = None, registry: str | None = None) -> None:
        super().__init__(message)
        self.reference = reference
        self.registry = registry


class InvalidReferenceError(RegclientError, ValueError):
    """The image reference cannot be parsed. Raised before any network traffic."""


class InvalidPlatformError(RegclientError, ValueError):
    """The platform string is not "os/arch[/variant][,osver=X]"."""


class InvalidArgumentError(RegclientError, ValueError):
    """An option value that the Go layer rejected."""


class NotFoundError(RegclientError, LookupError):
    """The repository, tag, manifest or blob does not exist."""


class PlatformNotFoundError(NotFoundError):
    """The image has no entry for the requested platform.

    ``platforms`` lists the platforms the image has, as "os/arch[/variant]".
    """

    def __init__(self, message: str, *, platforms: Iterable[str] = (), **context: Any) -> None:
        super().__init__(message, **context)
        self.platforms = tuple(platforms)


class AuthenticationError(RegclientError, PermissionError):
    """The registry rejected the credentials, or requires credentials that were not given."""


class UnsupportedMediaTypeError(RegclientError):
    """The manifest or its config is not a container image, for example an OCI artifact."""


class RateLimitError(RegclientError):
    """The registry responded with 429 Too Many Requests.

    ``retry_after`` is the number of seconds the registry requested to wait,
    or None when it sent no Retry-After header.
    """

    def __init__(self, message: str, *, retry_after: float | None = None, **context: Any) -> None:
        super().__init__(message, **context)
        self.retry_after = retry_after


class RegistryTimeoutError(RegclientError, TimeoutError):
    """The call did not finish within its timeout."""


class RegistryConnectionError(RegclientError, ConnectionError):
    """The registry could not be reached: connection refused, DNS or TLS failure."""


class InvalidContentError(RegclientError):
    """The registry returned content that is not what was requested, such as a config that is not JSON."""


class DigestMismatchError(InvalidContentError):
    """The content's digest differs from the digest it was requested by."""


class SizeLimitError(InvalidContentError):
    """The content is larger than its descriptor states or than the size limit."""


class RegistryResponseError(RegclientError):
    """The registry responded with an unexpected HTTP status, stored in ``status``."""

    def __init__(self, message: str, *, status: int | None = None, **context: Any) -> None:
        super().__init__(message, **context)
        self.status = status


class PolicyError(RegclientError, PermissionError):
    """The client's network policy rejected a registry, a redirect or an address. The message names the host."""


class ClientClosedError(RegclientError):
    """The client was closed before or during the call."""


class ForkError(RegclientError, RuntimeError):
    """This process was forked after the Go runtime started in its parent."""


# Error kinds from the Go layer, with the class and the advice for each.
_KINDS: dict[str, tuple[type[RegclientError], str]] = {
    "invalid_reference": (InvalidReferenceError, "expected [registry/]repository[:tag][@digest] or ocidir://path[:tag]"),
    "invalid_platform": (InvalidPlatformError, ""),
    "invalid_argument": (InvalidArgumentError, ""),
    "not_found": (NotFoundError, "check the repository name and the tag"),
    "platform_not_found": (PlatformNotFoundError, ""),
    "authentication": (AuthenticationError, "check the credentials for that registry, or run docker login"),
    "unsupported_media_type": (UnsupportedMediaTypeError, ""),
    "rate_limit": (RateLimitError, "wait before retrying, or authenticate to get a higher limit"),
    "timeout": (RegistryTimeoutError, "raise the timeout if the registry is slow"),
    "connection": (RegistryConnectionError, "check the registry address and its TLS settings"),
    "invalid_content": (InvalidContentError, ""),
    "digest_mismatch": (DigestMismatchError, ""),
    "size_limit": (SizeLimitError, ""),
    "response": (RegistryResponseError, ""),
    "policy": (PolicyError, ""),
    "canceled": (ClientClosedError, "the client was closed while the call ran"),
    "forked": (
        ForkError,
        "use the 'spawn' or 'forkserver' start method, or fork before the first regclient_ext call "
        "(importing regclient_ext before fork is fine)",
    ),
}


# Secrets shorter than this are masked only where they stand alone: a
# password like "e" would otherwise turn every "e" of a message into ***.
_SHORT_SECRET = 8


def mask_secrets(text: str, secrets: Iterable[str]) -> str:
    """Replace each secret in text with ***; a short secret only where no letter or digit adjoins it."""
    import re

    for secret in sorted(secrets, key=len, reverse=True):
        if not secret:
            continue
        if len(secret) >= _SHORT_SECRET:
            text = text.replace(secret, "***")
        else:
            text = re.sub(rf"(?<![A-Za-z0-9]){re.escape(secret)}(?![A-Za-z0-9])", "***", text)
    return text


def error_from_record(record: Mapping[str, Any], secrets: Iterable[str] = ()) -> RegclientError:
    """Build the exception for an error record from the Go layer.

    Every secret in ``secrets`` is masked in the message. The client passes
    the passwords and tokens it was given or read from docker's config, so a
    registry that echoes one cannot leak it into logs or tracebacks.
    Credentials that a credential helper returns are not known here.
    """
    kind = str(record.get("kind", "internal"))
    cls, advice = _KINDS.get(kind, (RegclientError, ""))
    reference = record.get("reference") or None
    registry = record.get("registry") or None

    # Registry responses quoted in messages may span lines, but a message is one line.
    message = " ".join(str(record.get("message", "unknown error")).split())
    if reference and reference not in message:
        message += f" (image {reference})"
    elif registry and registry not in message:
        message += f" (registry {registry})"
    platforms = record.get("platforms") or []
    if cls is PlatformNotFoundError and platforms:
        message += f"; the image has: {', '.join(platforms)}"
    if kind == "connection" and "HTTP response to HTTPS client" in message:
        advice = "the registry speaks plain HTTP: use tls='disabled' (--tls disabled) for it"
    if kind == "not_found" and str(registry or "").startswith("ocidir://"):
        advice = "check the layout path and the tag"
    if advice:
        message += f"; {advice}"
    message = mask_secrets(message, secrets)
    if not isinstance(record.get("retry_after"), (int, float)):
        record = {**record, "retry_after": None}

    context: dict[str, Any] = {"reference": reference, "registry": registry}
    if cls is PlatformNotFoundError:
        context["platforms"] = platforms
    elif cls is RegistryResponseError:
        context["status"] = record.get("status")
    elif cls is RateLimitError:
        context["retry_after"] = record.get("retry_after")
    return cls(message, **context)
