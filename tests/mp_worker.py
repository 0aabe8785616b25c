"""Worker functions for multiprocessing tests; spawn and forkserver import them by name."""

from __future__ import annotations

import regclient_ext


def architecture_of(image: str, platform: str) -> str:
    return str(regclient_ext.get_image_config(image, platform=platform)["architecture"])
