"""Shared fixtures: registries built from their Go modules and served on 127.0.0.1."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from oci_layout import Layout, LayoutReader, image_config, platform_descriptor

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
FIXTURE_LAYOUT = TESTS / "data" / "regclient-testrepo"
TOOLS_MODULE = TESTS / "registry"
TOOLS_BIN = ROOT / "build" / "test-bin"

# Keep the tests away from the developer's own Docker credentials.
os.environ["DOCKER_CONFIG"] = tempfile.mkdtemp(prefix="regclient-ext-docker-")

BASIC_USER = "alice"
BASIC_PASSWORD = "correct-horse-battery-staple"


def build_go_tool(package: str, name: str) -> Path:
    """Build a Go command from the pinned tools module, reusing the binary while go.sum is unchanged."""
    stamp = hashlib.sha256((TOOLS_MODULE / "go.sum").read_bytes() + package.encode()).hexdigest()[:16]
    binary = TOOLS_BIN / f"{name}-{stamp}"
    if not binary.exists():
        TOOLS_BIN.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, CGO_ENABLED="0")
        env.setdefault("GOCACHE", str(ROOT / "build" / "go-cache"))
        subprocess.run(["go", "build", "-trimpath", "-o", str(binary), package], cwd=TOOLS_MODULE, env=env, check=True)
    return binary


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Registry:
    """An olareg server on 127.0.0.1, stopped by stop()."""

    def __init__(self, binary: Path, directory: Path, *extra: str) -> None:
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.directory = directory
        command = [str(binary), "serve", "--addr", "127.0.0.1", "--port", str(self.port), "--dir", str(directory), "--store-type", "mem", *extra]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"olareg exited: {self.process.stderr.read().decode(errors='replace')}")
            try:
                urllib.request.urlopen(f"http://{self.host}/v2/", timeout=1).close()
                return
            except urllib.error.HTTPError:
                return  # a 401 still means the server is up
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"olareg did not start on {self.host}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture(scope="session")
def olareg_binary() -> Path:
    return build_go_tool("github.com/olareg/olareg/cmd/olareg", "olareg")


@pytest.fixture(scope="session")
def layouts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A registry directory with the fixture layout as testrepo, and layouts the tests write."""
    root = tmp_path_factory.mktemp("registry")
    shutil.copytree(FIXTURE_LAYOUT, root / "testrepo")
    write_made_layout(root / "made")
    return root


def write_made_layout(path: Path) -> None:
    """Write images that the fixture layout lacks: single-platform and Docker media types."""
    layout = Layout(path)
    single = layout.add_image(image_config("linux", "riscv64", User="1000", ExposedPorts={"8080/tcp": {}}))
    layout.tag("single-riscv64", single)

    docker_amd64 = layout.add_image(image_config("linux", "amd64", Env=["A=1"]), docker=True)
    docker_arm64 = layout.add_image(image_config("linux", "arm64", Env=["A=2"]), docker=True)
    docker_list = layout.add_index(
        [platform_descriptor(docker_amd64, "linux", "amd64"), platform_descriptor(docker_arm64, "linux", "arm64")],
        docker=True,
    )
    layout.tag("docker-list", docker_list)

    # Fields that a typed struct would drop or reorder must survive.
    odd = image_config("linux", "amd64", Entrypoint=["/app"])
    odd["x-vendor-field"] = {"nested": [1, 2.5, None, "ünïcode"]}
    layout.tag("odd-fields", layout.add_image(odd))


@pytest.fixture(scope="session")
def registry(olareg_binary: Path, layouts: Path) -> Iterator[Registry]:
    server = Registry(olareg_binary, layouts, "--api-push=false")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def basic_auth_registry(olareg_binary: Path, layouts: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    password_hash = subprocess.run(
        [str(olareg_binary), "hash", "--pass", BASIC_PASSWORD], capture_output=True, text=True, check=True
    ).stdout.strip()
    auth_file = tmp_path_factory.mktemp("auth") / "auth.yaml"
    auth_file.write_text(
        "users:\n"
        f"  {BASIC_USER}:\n"
        f"    cred: \"{password_hash}\"\n"
        "acls:\n"
        '  - repo: "*"\n'
        f"    members: [\"{BASIC_USER}\"]\n"
        '    access: ["read"]\n'
        '  - repo: ""\n'
        f"    members: [\"{BASIC_USER}\"]\n"
        '    access: ["read"]\n'
    )
    server = Registry(olareg_binary, layouts, "--api-push=false", "--auth-basic", str(auth_file))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def fixture_layout() -> LayoutReader:
    return LayoutReader(FIXTURE_LAYOUT)


@pytest.fixture(scope="session")
def made_layout(layouts: Path) -> LayoutReader:
    return LayoutReader(layouts / "made")


@pytest.fixture
def client(registry: Registry) -> Iterator[object]:
    import regclient_ext

    with regclient_ext.Client(hosts=[regclient_ext.Host(registry.host, tls="disabled")], docker_config=False, docker_certs=False) as c:
        yield c


def run_python(code: str, timeout: float = 60, **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Run code in a fresh interpreter, so tests can observe import and fork from a clean start."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, **kwargs)
