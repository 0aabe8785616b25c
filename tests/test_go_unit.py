"""The Go layer's own unit tests (go/*_test.go), run with go test."""

from __future__ import annotations

import os
import subprocess

from conftest import ROOT


def test_go_unit_tests_pass() -> None:
    env = dict(os.environ)
    env.setdefault("GOCACHE", str(ROOT / "build" / "go-cache"))
    result = subprocess.run(["go", "test", "-count=1", "./..."], cwd=ROOT / "go", env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("ok "), result.stdout
