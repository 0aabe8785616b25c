"""mypy --strict on the installed package and on a sample of user code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import regclient_ext

SAMPLE = Path(__file__).resolve().parent / "typing" / "user_code.py"


def run_mypy(*targets: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", *targets], capture_output=True, text=True, timeout=300
    )


def test_package_passes_mypy_strict() -> None:
    package = Path(regclient_ext.__file__).parent
    assert (package / "py.typed").is_file()
    assert (package / "_native.pyi").is_file()
    result = run_mypy("-p", "regclient_ext")
    assert result.returncode == 0, result.stdout + result.stderr


def test_user_code_passes_mypy_strict() -> None:
    result = run_mypy(str(SAMPLE))
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_catches_misuse(tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.py"
    wrong.write_text('import regclient_ext\nconfig = regclient_ext.get_image_config("x", platform=5)\nport: int = config["config"]["User"]\n')
    result = run_mypy(str(wrong))
    assert result.returncode == 1
    assert 'Argument "platform" to "get_image_config" has incompatible type "int"' in result.stdout
