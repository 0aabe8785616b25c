"""The source build's check for a usable Go toolchain."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT


def run_build_ext(tmp_path: Path, fake_go: str | None) -> subprocess.CompletedProcess[str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    if fake_go is not None:
        go = bin_dir / "go"
        go.write_text(f"#!/bin/sh\n{fake_go}\n")
        go.chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{Path(sys.executable).parent}")
    return subprocess.run(
        [sys.executable, str(ROOT / "setup.py"), "build_ext", "--build-lib", str(tmp_path / "lib"), "--build-temp", str(tmp_path / "temp")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("fake_go", "found"),
    [
        (None, "no working 'go' command on PATH"),
        ("echo go1.21.4", "found go 1.21.4"),
        ("exit 3", "no working 'go' command on PATH"),
    ],
)
def test_build_stops_without_suitable_go(tmp_path: Path, fake_go: str | None, found: str) -> None:
    result = run_build_ext(tmp_path, fake_go)
    assert result.returncode != 0
    assert "needs Go 1.26.0 or newer" in result.stderr
    assert found in result.stderr
    assert "https://go.dev/dl/" in result.stderr
    assert "Traceback" not in result.stderr
