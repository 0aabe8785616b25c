"""Go toolchain checks shared by setup.py and the PEP 517 backend."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

GO_MOD = Path(__file__).resolve().parent.parent / "go" / "go.mod"


def required_go_version() -> tuple[int, ...]:
    """Read the Go version that go/go.mod requires, which is the one regclient requires."""
    match = re.search(r"^go (\d+)\.(\d+)(?:\.(\d+))?$", GO_MOD.read_text(), re.MULTILINE)
    if match is None:
        raise RuntimeError(f"{GO_MOD} has no 'go' line")
    return tuple(int(part or 0) for part in match.groups())


def go_version(go: str) -> tuple[int, ...] | None:
    """Return the version of a go command, or None when it does not run."""
    try:
        output = subprocess.run([go, "env", "GOVERSION"], capture_output=True, text=True, check=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.match(r"go(\d+)\.(\d+)(?:\.(\d+))?", output.strip())
    return tuple(int(part or 0) for part in match.groups()) if match else None
