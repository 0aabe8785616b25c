"""Checks of argument types and values shared by the public functions."""

from __future__ import annotations

import math

from .errors import InvalidPlatformError

# The maximum timeout, one day, so a typo in units fails loudly.
MAX_TIMEOUT = 24 * 3600.0


def require_str(name: str, value: object) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}")


def check_timeout(timeout: object) -> float:
    """Return a timeout in seconds, or raise TypeError or ValueError."""
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"timeout must be a number of seconds, got {type(timeout).__name__}")
    if math.isnan(timeout) or not 0 < timeout <= MAX_TIMEOUT:
        raise ValueError(f"timeout must be more than 0 and at most {MAX_TIMEOUT:.0f} seconds, got {timeout!r}")
    return float(timeout)


def check_platform(platform: object) -> str:
    """Return the platform for a request: "" means the host's."""
    if platform is None:
        return ""
    require_str("platform", platform)
    if not platform.strip():  # type: ignore[attr-defined]
        raise InvalidPlatformError('platform is empty: pass None or "local" for the host\'s platform, or "os/arch[/variant]"')
    return platform  # type: ignore[return-value]
