"""Import, fork and the command line, each observed in a fresh interpreter."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from conftest import FIXTURE_LAYOUT, run_python
from oci_layout import LayoutReader

V1 = f"ocidir://{FIXTURE_LAYOUT}:v1"


def test_import_does_not_load_go() -> None:
    result = run_python(
        textwrap.dedent(
            """
            import regclient_ext
            from regclient_ext import _native
            maps = open("/proc/self/maps").read()
            print(_native.loaded(), "_regclient_go" in maps)
            """
        )
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False"]


def test_first_call_loads_go() -> None:
    result = run_python(
        textwrap.dedent(
            f"""
            import regclient_ext
            from regclient_ext import _native
            regclient_ext.get_image_config({V1!r})
            print(_native.loaded(), "_regclient_go" in open("/proc/self/maps").read())
            """
        )
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "True"]


def test_fork_after_import_works_in_child() -> None:
    result = run_python(
        textwrap.dedent(
            f"""
            import os, json
            import regclient_ext
            client = regclient_ext.Client()  # made before fork; its Go side is made on first call
            pid = os.fork()
            if pid == 0:
                config = client.get_image_config({V1!r}, platform="linux/arm64")
                os.write(1, (json.dumps(config) + "\\n").encode())
                os._exit(0)
            _, status = os.waitpid(pid, 0)
            print(os.waitstatus_to_exitcode(status))
            """
        ),
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    child_output, parent_output = result.stdout.strip().splitlines()
    _, blob = LayoutReader(FIXTURE_LAYOUT).config_for("v1", "linux/arm64")
    assert json.loads(child_output) == json.loads(blob)
    assert parent_output == "0"


def test_fork_after_load_raises_fork_error() -> None:
    result = run_python(
        textwrap.dedent(
            f"""
            import os, time
            import regclient_ext
            regclient_ext.get_image_config({V1!r})
            pid = os.fork()
            if pid == 0:
                start = time.monotonic()
                try:
                    regclient_ext.get_image_config({V1!r})
                except regclient_ext.ForkError as error:
                    ok = isinstance(error, RuntimeError) and "spawn" in str(error)
                    os._exit(0 if ok and time.monotonic() - start < 1 else 2)
                os._exit(1)
            _, status = os.waitpid(pid, 0)
            print(os.waitstatus_to_exitcode(status))
            """
        ),
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "0"


def test_cli_prints_config_from_ocidir() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "regclient_ext", "config", V1, "--platform", "linux/arm64"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    _, blob = LayoutReader(FIXTURE_LAYOUT).config_for("v1", "linux/arm64")
    assert json.loads(result.stdout) == json.loads(blob)
    assert result.stderr == ""


def test_cli_error_is_one_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "regclient_ext", "config", f"ocidir://{FIXTURE_LAYOUT}:no-such-tag"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert "no-such-tag" in result.stderr
