"""Import, fork and the command line, each observed in a fresh interpreter."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import regclient_ext
from conftest import BASIC_PASSWORD, BASIC_USER, FIXTURE_LAYOUT, Registry, run_python
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


def test_import_defers_heavy_modules() -> None:
    result = run_python(
        textwrap.dedent(
            """
            import sys
            import regclient_ext
            heavy = ("asyncio", "dataclasses", "json", "typing")
            print(*(name in sys.modules for name in heavy))
            print(regclient_ext.Host.__module__, regclient_ext.ImageInfo.__module__, regclient_ext.ImageConfig.__module__)
            print(*(name in dir(regclient_ext) for name in ("AsyncClient", "Host", "ImageInfo", "RootFS")))
            """
        )
    )
    assert result.returncode == 0, result.stderr
    deferred, modules, listed = result.stdout.splitlines()
    # Each is imported on first use: asyncio by AsyncClient, json by the first call, the others by the names below.
    assert deferred.split() == ["False"] * 4
    assert modules.split() == ["regclient_ext._host", "regclient_ext._info", "regclient_ext.types"]
    assert listed.split() == ["True"] * 4


def test_types_submodule_is_attribute() -> None:
    result = run_python("import regclient_ext\nprint(regclient_ext.types.__name__, 'types' in dir(regclient_ext))")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["regclient_ext.types", "True"]


def test_unknown_attribute_raises() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Nothing'"):
        regclient_ext.Nothing  # type: ignore[attr-defined]  # noqa: B018


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


# Starts four daemon threads that make calls until the process ends.
CALLING_THREADS = textwrap.dedent(
    f"""
    import threading
    import regclient_ext
    client = regclient_ext.Client(docker_config=False)

    def loop():
        while True:
            client.get_image_config({V1!r}, platform="linux/amd64")

    for _ in range(4):
        threading.Thread(target=loop, daemon=True).start()
    """
)


def test_exit_with_daemon_threads_in_calls() -> None:
    # Daemon threads are in calls, with the GIL released, when the
    # interpreter exits. CPython ends such a thread with pthread_exit when it
    # retakes the GIL, which aborted the process from a C++ destructor.
    script = CALLING_THREADS + textwrap.dedent(
        """
        import time
        time.sleep(0.3)
        """
    )
    for _ in range(3):
        result = run_python(script, timeout=60)
        assert result.returncode == 0, result.stderr


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_exits_while_parent_calls() -> None:
    # The child copies the exit guard's state from threads it does not have.
    script = CALLING_THREADS + textwrap.dedent(
        """
        import os, sys, time
        for _ in range(10):
            time.sleep(0.02)
            pid = os.fork()
            if pid == 0:
                sys.exit(0)
            _, status = os.waitpid(pid, 0)
            assert os.waitstatus_to_exitcode(status) == 0
        print("ok")
        """
    )
    result = run_python(script, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_atexit_handler_can_call() -> None:
    # Registered before regclient_ext, so it runs after the package's own
    # exit handler, on the thread that runs the exit.
    script = textwrap.dedent(
        f"""
        import atexit

        def last_call():
            import regclient_ext
            print(regclient_ext.get_image_config({V1!r}, platform="linux/amd64")["architecture"])

        atexit.register(last_call)
        import regclient_ext
        regclient_ext.get_image_config({V1!r}, platform="linux/amd64")
        """
    )
    result = run_python(script, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "amd64"


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


def run_cli(*args: str, stdin: str | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "regclient_ext", *args], capture_output=True, text=True, timeout=60, input=stdin, env=env)


def test_cli_inspect_compact() -> None:
    result = run_cli("inspect", "--compact", "--platform", "linux/arm64", V1)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 1
    info = json.loads(result.stdout)
    config_digest, blob = LayoutReader(FIXTURE_LAYOUT).config_for("v1", "linux/arm64")
    assert info["config_digest"] == config_digest
    assert info["platforms"] == ["linux/amd64", "linux/arm64"]
    assert info["config"] == json.loads(blob)


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (("config", f"ocidir://{FIXTURE_LAYOUT}:no-such-tag"), 3),
        (("config", "--platform", "linux/s390x", V1), 3),
        (("config", "Bad Reference"), 5),
        (("config", "--platform", "a/b/c/d/e", V1), 5),
        (("config", f"ocidir://{FIXTURE_LAYOUT}:a1"), 6),
        (("config", "--tls", "maybe", V1), 2),
        (("config", "--username", "someone", V1), 2),
        (("config", "--password-stdin", V1), 2),
        (("config", "--platform", "", V1), 5),
    ],
)
def test_cli_exit_codes(args: tuple[str, ...], code: int) -> None:
    env = {k: v for k, v in os.environ.items() if k != "REGCLIENT_EXT_PASSWORD"}
    result = run_cli(*args, env=env)
    assert result.returncode == code, result.stderr


def test_cli_password_from_stdin(basic_auth_registry: Registry) -> None:
    image = f"{basic_auth_registry.host}/testrepo:v1"
    ok = run_cli("config", "--tls", "disabled", "--username", BASIC_USER, "--password-stdin", "--platform", "linux/amd64", image, stdin=BASIC_PASSWORD + "\n")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["architecture"] == "amd64"
    wrong = run_cli("config", "--tls", "disabled", "--username", BASIC_USER, "--password-stdin", image, stdin="wrong-password\n")
    assert wrong.returncode == 4
    assert "wrong-password" not in wrong.stderr


def test_cli_password_from_environment(basic_auth_registry: Registry) -> None:
    env = dict(os.environ, REGCLIENT_EXT_PASSWORD=BASIC_PASSWORD)
    result = run_cli("config", "--tls", "disabled", "--username", BASIC_USER, "--platform", "linux/arm64", f"{basic_auth_registry.host}/testrepo:v1", env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["architecture"] == "arm64"


def test_cli_empty_platform_message() -> None:
    result = run_cli("config", "--platform", "", V1)
    assert result.returncode == 5
    assert "--platform is empty" in result.stderr
    assert "None" not in result.stderr


def test_cli_warns_password_without_username() -> None:
    env = dict(os.environ, REGCLIENT_EXT_PASSWORD="unused-secret")
    result = run_cli("config", "--compact", "--platform", "linux/amd64", V1, env=env)
    assert result.returncode == 0, result.stderr
    assert "REGCLIENT_EXT_PASSWORD is set but --username is not" in result.stderr
    assert "unused-secret" not in result.stderr


def test_cli_help_shows_examples() -> None:
    result = run_cli("config", "--help")
    assert result.returncode == 0
    assert "examples:" in result.stdout
    assert "--password-stdin" in result.stdout


def test_console_script_installed() -> None:
    script = shutil.which("regclient-ext", path=str(Path(sys.executable).parent))
    assert script is not None
    result = subprocess.run([script, "config", "--compact", "--platform", "linux/amd64", V1], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["architecture"] == "amd64"
