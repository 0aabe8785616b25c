"""Shared fixtures: registries built from their Go modules and served on 127.0.0.1."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import ssl
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


def cheap_password_hash(password: str) -> str:
    """Hash a password for olareg's auth file with bcrypt's lowest cost.

    olareg's own `hash` command uses the default cost, which spends about
    70 ms of CPU on every login attempt; tests make thousands.
    """
    import bcrypt

    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()


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


class ServerProcess:
    """A registry server process on 127.0.0.1, waited for until it responds and stopped by stop()."""

    name = "server"
    process: subprocess.Popen[bytes]
    host: str

    def wait_ready(self, url: str, context: ssl.SSLContext | None = None, seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                assert self.process.stderr is not None
                raise RuntimeError(f"{self.name} exited: {self.process.stderr.read().decode(errors='replace')}")
            try:
                urllib.request.urlopen(url, timeout=1, context=context).close()
                return
            except urllib.error.HTTPError:
                return  # a 401 still means the server is up
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.name} did not start on {self.host}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class Registry(ServerProcess):
    """An olareg server on 127.0.0.1."""

    name = "olareg"

    def __init__(self, binary: Path, directory: Path, *extra: str, port: int | None = None, scheme: str = "http", ca_file: Path | None = None) -> None:
        self.port = port or free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.directory = directory
        self.scheme = scheme
        self.ca_file = ca_file
        command = [str(binary), "serve", "--addr", "127.0.0.1", "--port", str(self.port), "--dir", str(directory), "--store-type", "mem", *extra]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        context = ssl.create_default_context(cafile=str(ca_file)) if ca_file else None
        self.wait_ready(f"{scheme}://{self.host}/v2/", context, seconds=20)


class Distribution(ServerProcess):
    """The reference registry (distribution) on 127.0.0.1 with filesystem storage."""

    name = "distribution"

    def __init__(self, binary: Path, directory: Path) -> None:
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        config = directory / "config.yml"
        config.write_text(
            "version: 0.1\n"
            "log:\n  level: error\n  accesslog:\n    disabled: true\n"
            f"storage:\n  filesystem:\n    rootdirectory: {directory / 'storage'}\n"
            f"http:\n  addr: {self.host}\n"
        )
        self.process = subprocess.Popen([str(binary), "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.wait_ready(f"http://{self.host}/v2/")


@pytest.fixture(scope="session")
def distribution_binary() -> Path:
    return build_go_tool("github.com/distribution/distribution/v3/cmd/registry", "distribution")


@pytest.fixture(scope="session")
def distribution(distribution_binary: Path, layouts: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Distribution]:
    from push import push_layout

    server = Distribution(distribution_binary, tmp_path_factory.mktemp("distribution"))
    push_layout(server.host, "testrepo", layouts / "testrepo")
    push_layout(server.host, "made", layouts / "made")
    yield server
    server.stop()


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
    layout.tag("index-riscv64", layout.add_index([platform_descriptor(single, "linux", "riscv64")]))

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

    layout.tag("not-json", layout.add_image(image_config("linux", "amd64"), config_bytes=b"this is not JSON"))
    deep = b'{"architecture":"amd64","os":"linux","x":' + b"[" * 5000 + b"]" * 5000 + b"}"
    layout.tag("too-deep", layout.add_image(image_config("linux", "amd64"), config_bytes=deep))


@pytest.fixture(scope="session")
def registry(olareg_binary: Path, layouts: Path) -> Iterator[Registry]:
    server = Registry(olareg_binary, layouts, "--api-push=false")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def basic_auth_registry(olareg_binary: Path, layouts: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    password_hash = cheap_password_hash(BASIC_PASSWORD)
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


@pytest.fixture(params=["olareg", "distribution"])
def server(request: pytest.FixtureRequest) -> Registry | Distribution:
    """Each registry implementation in turn, serving the same images."""
    return request.getfixturevalue("registry" if request.param == "olareg" else "distribution")


@pytest.fixture
def client(registry: Registry) -> Iterator[object]:
    import regclient_ext

    with regclient_ext.Client(hosts=[regclient_ext.Host(registry.host, tls="disabled")], docker_config=False, docker_certs=False) as c:
        yield c


@pytest.fixture
def server_client(server: Registry | Distribution) -> Iterator[object]:
    import regclient_ext

    with regclient_ext.Client(hosts=[regclient_ext.Host(server.host, tls="disabled")], docker_config=False, docker_certs=False) as c:
        yield c


def run_python(code: str, timeout: float = 60, **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Run code in a fresh interpreter, so tests can observe import and fork from a clean start."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, **kwargs)


@pytest.fixture(scope="session")
def token_registry(olareg_binary: Path, layouts: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Registry, "ProxyServer"]]:
    """olareg with opaque bearer tokens, behind a counting proxy that also carries the token requests."""
    from servers import ProxyServer

    password_hash = cheap_password_hash(BASIC_PASSWORD)
    auth_file = tmp_path_factory.mktemp("token-auth") / "auth.yaml"
    auth_file.write_text(
        f'users:\n  {BASIC_USER}:\n    cred: "{password_hash}"\n'
        f'acls:\n  - repo: "*"\n    members: ["{BASIC_USER}"]\n    access: ["read"]\n'
        f'  - repo: ""\n    members: ["{BASIC_USER}"]\n    access: ["read"]\n'
    )
    port = free_port()
    server = Registry(
        olareg_binary, layouts, "--api-push=false", "--auth-token-opaque", str(auth_file), "--external-url", f"http://127.0.0.1:{port}", port=port
    )
    proxy = ProxyServer(server.host)
    yield server, proxy
    proxy.stop()
    server.stop()


class CertificateAuthority:
    """A CA made for one test session, and a server certificate for 127.0.0.1 signed by it."""

    def __init__(self, directory: Path) -> None:
        import datetime
        import ipaddress

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        now = datetime.datetime.now(datetime.timezone.utc)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "regclient-ext test CA")])
        ca_cert = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .sign(ca_key, hashes.SHA256())
        )
        server_key = ec.generate_private_key(ec.SECP256R1())
        server_cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name)
            .public_key(server_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        self.ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM).decode()
        self.ca_file = directory / "ca.pem"
        self.ca_file.write_text(self.ca_pem)
        self.cert_file = directory / "server.pem"
        self.cert_file.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
        self.key_file = directory / "server.key"
        self.key_file.write_bytes(
            server_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        )


@pytest.fixture(scope="session")
def tls_registry(olareg_binary: Path, layouts: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Registry, CertificateAuthority]]:
    ca = CertificateAuthority(tmp_path_factory.mktemp("tls"))
    server = Registry(olareg_binary, layouts, "--api-push=false", "--tls-cert", str(ca.cert_file), "--tls-key", str(ca.key_file), scheme="https", ca_file=ca.ca_file)
    yield server, ca
    server.stop()
