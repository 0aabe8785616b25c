"""Build the Go library with `go build -buildmode=c-shared`, then the pybind11 module.

The Go library is written next to the extension module inside the package,
where the binding loads it on first use.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from pybind11.setup_helpers import Pybind11Extension
from setuptools import setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import CompileError

ROOT = Path(__file__).resolve().parent
GO_DIR = ROOT / "go"

if sys.platform == "win32":
    GO_LIBRARY = "_regclient_go.dll"
elif sys.platform == "darwin":
    GO_LIBRARY = "_regclient_go.dylib"
else:
    GO_LIBRARY = "_regclient_go.so"


def required_go_version() -> tuple[int, ...]:
    """Read the Go version that go/go.mod requires, the one regclient requires."""
    match = re.search(r"^go (\d+)\.(\d+)(?:\.(\d+))?$", (GO_DIR / "go.mod").read_text(), re.MULTILINE)
    if match is None:
        raise CompileError("go/go.mod has no 'go' line")
    return tuple(int(part or 0) for part in match.groups())


def installed_go_version(go: str) -> tuple[int, ...] | None:
    """Return the version of the `go` command, or None if it cannot tell."""
    try:
        output = subprocess.run([go, "env", "GOVERSION"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    match = re.match(r"go(\d+)\.(\d+)(?:\.(\d+))?", output.strip())
    return tuple(int(part or 0) for part in match.groups()) if match else None


def find_go() -> str:
    """Return the path of a Go toolchain new enough for regclient, or stop the build."""
    needed = required_go_version()
    needed_text = ".".join(map(str, needed))
    go = shutil.which("go")
    version = installed_go_version(go) if go else None
    if version is None or version < needed:
        found = f"found go {'.'.join(map(str, version))} at {go}" if version else "no working 'go' command on PATH"
        raise CompileError(
            f"building regclient-ext needs Go {needed_text} or newer ({found}). "
            "Install it from https://go.dev/dl/ or your package manager, put it on PATH, "
            "and run pip install again; or install a prebuilt wheel, which needs no Go."
        )
    return go


class BuildGoThenExtension(build_ext):
    """Build the Go c-shared library before the pybind11 extension."""

    def run(self) -> None:
        self.build_go_library()
        super().run()

    def build_go_library(self) -> None:
        go = find_go()
        package_dir = Path(self.get_ext_fullpath("regclient_ext._native")).resolve().parent
        package_dir.mkdir(parents=True, exist_ok=True)
        output = package_dir / GO_LIBRARY

        env = dict(os.environ, CGO_ENABLED="1")
        # Keep Go's build cache inside the build directory so rebuilds reuse it.
        env.setdefault("GOCACHE", str(ROOT / "build" / "go-cache"))
        command = [go, "build", "-buildmode=c-shared", "-trimpath", "-ldflags=-s -w", "-o", str(output), "."]
        self.announce(f"building the Go library: {' '.join(command)}", level=2)
        result = subprocess.run(command, cwd=GO_DIR, env=env)
        if result.returncode != 0:
            raise CompileError(f"go build failed with exit code {result.returncode}; its output is above")

        # The generated C header is not used: binding/rcx_abi.h declares the ABI.
        output.with_suffix(".h").unlink(missing_ok=True)


setup(
    ext_modules=[
        Pybind11Extension(
            "regclient_ext._native",
            sources=["binding/native.cpp", "binding/loader.cpp"],
            define_macros=[("RCX_GO_LIBRARY", f'"{GO_LIBRARY}"')],
            cxx_std=17,
        )
    ],
    cmdclass={"build_ext": BuildGoThenExtension},
)
