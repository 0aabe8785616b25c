"""ImageInfo: what inspect_image returns.

It lives apart from the client so that importing the package does not
import dataclasses; the package loads this module on first use.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Imported at run time, not only for type checkers, so typing.get_type_hints() resolves the fields.
from .types import ImageConfig

__all__ = ["ImageInfo"]


@dataclass(frozen=True)
class ImageInfo:
    """Digests, media type, platforms and config of one platform of an image.

    ``digest`` is what the reference resolves to, an index for a
    multi-platform image. ``manifest_digest`` is the chosen platform's
    manifest. ``platforms`` lists every platform in the index, attestation
    entries excluded, and is empty for a single-platform image.
    """

    reference: str
    digest: str
    manifest_digest: str
    config_digest: str
    media_type: str
    platform: str
    # Left out of the hash, because a dict is not hashable. Equal objects still hash alike.
    config: ImageConfig = field(repr=False, hash=False)
    platforms: tuple[str, ...] = ()
