"""Typed views of an OCI image config, with the OCI image spec's field names.

get_image_config returns the config exactly as stored, so these TypedDicts
are total=False: any field may be missing, and fields they do not list
(vendor extensions, Docker-only fields) are kept in the dict as well.
"""

from __future__ import annotations

from typing import Any, TypedDict

__all__ = ["ContainerConfig", "History", "ImageConfig", "RootFS"]


class ContainerConfig(TypedDict, total=False):
    """Container runtime settings: the "config" field of an image config."""

    User: str
    ExposedPorts: dict[str, dict[str, Any]]
    Env: list[str]
    Entrypoint: list[str]
    Cmd: list[str]
    Volumes: dict[str, dict[str, Any]]
    WorkingDir: str
    Labels: dict[str, str]
    StopSignal: str
    ArgsEscaped: bool
    # Docker image fields outside the OCI spec.
    Healthcheck: dict[str, Any]
    OnBuild: list[str]
    Shell: list[str]


class RootFS(TypedDict, total=False):
    """The layer diff IDs of an image: the "rootfs" field."""

    type: str
    diff_ids: list[str]


class History(TypedDict, total=False):
    """One build step: an entry of the "history" field."""

    created: str
    created_by: str
    author: str
    comment: str
    empty_layer: bool


# The functional form allows the dotted field names of the spec.
ImageConfig = TypedDict(
    "ImageConfig",
    {
        "created": str,
        "author": str,
        "architecture": str,
        "os": str,
        "os.version": str,
        "os.features": list[str],
        "variant": str,
        "config": ContainerConfig,
        "rootfs": RootFS,
        "history": list[History],
    },
    total=False,
)
