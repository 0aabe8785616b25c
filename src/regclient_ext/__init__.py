"""Read container image configs from OCI and Docker registries.

regclient_ext runs the Go library regclient in-process. Importing this
package does not start the Go runtime; the first call does.

    >>> import regclient_ext
    >>> config = regclient_ext.get_image_config("ocidir://tests/data/regclient-testrepo:v1")
"""

from typing import TYPE_CHECKING, Any

from ._client import Client, ImageInfo
from ._default import get_image_config, inspect_image
from ._diagnostics import diagnostics
from ._host import Host
from ._version import __version__
from .types import ContainerConfig, History, ImageConfig, RootFS
from .errors import (
    AuthenticationError,
    ClientClosedError,
    DigestMismatchError,
    ForkError,
    InvalidArgumentError,
    InvalidContentError,
    InvalidPlatformError,
    InvalidReferenceError,
    NotFoundError,
    PlatformNotFoundError,
    PolicyError,
    RateLimitError,
    RegclientError,
    RegistryConnectionError,
    RegistryResponseError,
    RegistryTimeoutError,
    SizeLimitError,
    UnsupportedMediaTypeError,
)

if TYPE_CHECKING:
    from ._async import AsyncClient


def __getattr__(name: str) -> Any:
    # AsyncClient needs asyncio, whose import costs more than this whole
    # package; load it on first use.
    if name == "AsyncClient":
        from ._async import AsyncClient

        return AsyncClient
    raise AttributeError(f"module 'regclient_ext' has no attribute {name!r}")


__all__ = [
    "AsyncClient",
    "AuthenticationError",
    "Client",
    "ContainerConfig",
    "ClientClosedError",
    "DigestMismatchError",
    "ForkError",
    "History",
    "Host",
    "ImageConfig",
    "ImageInfo",
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
    "RootFS",
    "SizeLimitError",
    "UnsupportedMediaTypeError",
    "__version__",
    "diagnostics",
    "get_image_config",
    "inspect_image",
]
