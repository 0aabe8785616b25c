"""Read container image configs from OCI and Docker registries.

regclient_ext runs the Go library regclient in-process. Importing this
package does not start the Go runtime; the first call does.

    >>> import regclient_ext
    >>> config = regclient_ext.get_image_config("ocidir://tests/data/regclient-testrepo:v1")
"""

from ._client import Client
from ._default import get_image_config, inspect_image
from ._diagnostics import diagnostics
from ._version import __version__
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

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from ._async import AsyncClient
    from ._host import Host
    from ._info import ImageInfo
    from .types import ContainerConfig, History, ImageConfig, RootFS
del TYPE_CHECKING  # not part of the package's namespace

# Names loaded on first use. AsyncClient needs asyncio, Host and ImageInfo dataclasses, and the
# TypedDicts typing: each import takes longer than the rest of the package's (python -X importtime).
_LAZY_NAMES = {
    "AsyncClient": "_async",
    "Host": "_host",
    "ImageInfo": "_info",
    "ContainerConfig": "types",
    "History": "types",
    "ImageConfig": "types",
    "RootFS": "types",
}


def __getattr__(name: str) -> object:
    if name == "types":
        # A public submodule that the package does not import itself. A
        # "from . import" would look the name up here again.
        import importlib

        return importlib.import_module(f"{__name__}.types")
    module = _LAZY_NAMES.get(name)
    if module is None:
        raise AttributeError(f"module 'regclient_ext' has no attribute {name!r}")
    value = getattr(__import__(module, globals(), None, [name], 1), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY_NAMES) | {"types"})


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
