"""One config fetch each way the benchmark measures: the http.client floor, regclient_ext and its peers.

Every fetcher reads the config of one platform of a tagged multi-platform
image over plain HTTP and returns the config parsed as a dict, so run.py
can check each result against the fixture layout before timing it.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import regclient_ext

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
# The Accept header for a tag, which may name an index or an image manifest.
TAG_ACCEPT = ", ".join([OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST])
# The Accept header for a platform's manifest, fetched by digest from the index.
IMAGE_ACCEPT = ", ".join([OCI_MANIFEST, DOCKER_MANIFEST])

REGCTL_VERSION = "v0.11.7"
REGCTL_PACKAGE = "github.com/regclient/regclient/cmd/regctl"

Fetch = Callable[[], Any]


@dataclass(frozen=True)
class Target:
    """The image every fetcher reads: ``host`` ("127.0.0.1:PORT"), repository, tag and platform."""

    host: str
    repository: str
    tag: str
    platform: str

    @property
    def image(self) -> str:
        return f"{self.host}/{self.repository}:{self.tag}"


def select_platform(index: dict[str, Any], platform: str) -> str:
    """Return the digest of the index entry for ``platform`` ("os/arch[/variant]")."""
    os_name, architecture, *variant = platform.split("/")
    for entry in index["manifests"]:
        entry_platform = entry.get("platform", {})
        if (
            entry_platform.get("os") == os_name
            and entry_platform.get("architecture") == architecture
            and entry_platform.get("variant") == (variant[0] if variant else None)
        ):
            return entry["digest"]
    raise LookupError(f"platform {platform} not found in the index")


# Floor


class FloorFetcher:
    """The three GETs a config lookup needs, over one keep-alive http.client connection.

    It parses only what it needs to find the next digest, and the config
    itself. It does not verify digests.
    """

    def __init__(self, target: Target) -> None:
        self.target = target
        self.connection = http.client.HTTPConnection(target.host, timeout=30)

    def close(self) -> None:
        self.connection.close()

    def _get(self, path: str, accept: str | None) -> bytes:
        headers = {"Accept": accept} if accept else {}
        self.connection.request("GET", path, headers=headers)
        response = self.connection.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"GET {path} failed with HTTP {response.status}")
        return body

    def fetch(self) -> Any:
        prefix = f"/v2/{self.target.repository}"
        document = json.loads(self._get(f"{prefix}/manifests/{self.target.tag}", TAG_ACCEPT))
        if "manifests" in document:
            digest = select_platform(document, self.target.platform)
            document = json.loads(self._get(f"{prefix}/manifests/{digest}", IMAGE_ACCEPT))
        return json.loads(self._get(f"{prefix}/blobs/{document['config']['digest']}", None))


class ThreadLocalFloor:
    """A FloorFetcher per thread, for the thread-pool control row."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.local = threading.local()
        self.fetchers: list[FloorFetcher] = []
        self.lock = threading.Lock()

    def fetch(self) -> Any:
        fetcher = getattr(self.local, "fetcher", None)
        if fetcher is None:
            fetcher = self.local.fetcher = FloorFetcher(self.target)
            with self.lock:
                self.fetchers.append(fetcher)
        return fetcher.fetch()

    def close(self) -> None:
        for fetcher in self.fetchers:
            fetcher.close()


# regclient_ext


def make_client(target: Target, cls: type = regclient_ext.Client, **options: Any) -> Any:
    """Create a Client or AsyncClient for plain HTTP to ``target.host``, ignoring the user's Docker config."""
    host = regclient_ext.Host(target.host, tls="disabled")
    return cls(hosts=[host], docker_config=False, docker_certs=False, **options)


def fetch_with_new_client(target: Target) -> Any:
    """Create a Client, fetch once and close it: what a binding without client reuse does per call."""
    with make_client(target) as client:
        return client.get_image_config(target.image, platform=target.platform)


# Python peers


def python_dxf_fetcher(target: Target) -> tuple[Fetch, str]:
    """Return a fetch through one reused python-dxf DXF object, and its version."""
    from importlib.metadata import version

    from dxf import DXF

    dxf = DXF(target.host, target.repository, insecure=True)

    def fetch() -> Any:
        # get_digest follows the index to the platform's manifest (2 GETs);
        # pull_blob streams the config and checks its sha256.
        config_digest = dxf.get_digest(target.tag, platform=target.platform)
        assert isinstance(config_digest, str)  # a dict only when no platform is given
        return json.loads(b"".join(dxf.pull_blob(config_digest)))  # type: ignore[arg-type]

    return fetch, version("python-dxf")


def oras_fetcher(target: Target) -> tuple[Fetch, str]:
    """Return a fetch through one reused oras-py OrasClient, and its version.

    oras-py has no platform selection, so the fetch picks the entry from
    the index itself, as a caller of oras-py would have to.
    """
    from importlib.metadata import version

    import oras.client

    client = oras.client.OrasClient(hostname=target.host, insecure=True)
    repository = f"{target.host}/{target.repository}"

    def fetch() -> Any:
        document = client.get_manifest(f"{repository}:{target.tag}")
        if "manifests" in document:
            digest = select_platform(document, target.platform)
            document = client.get_manifest(f"{repository}@{digest}")
        response = client.get_blob(repository, document["config"]["digest"])
        if response.status_code != 200:
            raise RuntimeError(f"oras get_blob failed with HTTP {response.status_code}")
        return response.json()

    return fetch, version("oras")


# Command-line peers, one process per fetch


def run_json_command(command: list[str], env: dict[str, str] | None = None) -> Any:
    result = subprocess.run(command, capture_output=True, env=env, timeout=60)
    if result.returncode != 0:
        stderr = result.stderr.decode(errors="replace").strip().splitlines()
        raise RuntimeError(f"{Path(command[0]).name} exited with {result.returncode}: {stderr[-1] if stderr else 'no output'}")
    return json.loads(result.stdout)


def skopeo_fetcher(target: Target) -> tuple[Fetch, str]:
    """Return a fetch that runs ``skopeo inspect --config --raw``, and skopeo's version.

    With ``--tls-verify=false``, skopeo 1.9.3 pings https://HOST/v2/ and,
    when that fails, http://HOST/v2/, before its three GETs (seen in its
    --debug output).
    """
    skopeo = shutil.which("skopeo")
    if skopeo is None:
        raise FileNotFoundError("skopeo is not installed (apt-get install skopeo)")
    version_output = subprocess.run([skopeo, "--version"], capture_output=True, text=True, check=True).stdout.split()
    os_name, architecture, *variant = target.platform.split("/")
    command = [skopeo, "--override-os", os_name, "--override-arch", architecture]
    if variant:
        command += ["--override-variant", variant[0]]
    command += ["inspect", "--config", "--raw", "--tls-verify=false", "--no-creds", f"docker://{target.image}"]
    return (lambda: run_json_command(command)), version_output[-1]


def build_regctl(bin_directory: Path, go_cache: Path) -> Path:
    """Build regctl from regclient's Go module, reusing the binary built before for the same version."""
    binary = bin_directory / f"regctl-{REGCTL_VERSION}"
    if binary.exists():
        return binary
    bin_directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="regctl-build-") as gobin:
        env = dict(os.environ, CGO_ENABLED="0", GOBIN=gobin, GOCACHE=str(go_cache))
        subprocess.run(["go", "install", "-trimpath", f"{REGCTL_PACKAGE}@{REGCTL_VERSION}"], cwd=gobin, env=env, check=True)
        shutil.move(os.path.join(gobin, "regctl"), binary)
    return binary


class RegctlConfig:
    """A regctl config file of its own (REGCTL_CONFIG) that sets the benchmark's hosts to plain HTTP."""

    def __init__(self, binary: Path) -> None:
        self.binary = binary
        self.directory = tempfile.mkdtemp(prefix="regctl-config-")
        self.env = dict(os.environ, REGCTL_CONFIG=os.path.join(self.directory, "config.json"))
        self.configured: set[str] = set()

    def fetcher(self, target: Target) -> tuple[Fetch, str]:
        """Return a fetch that runs ``regctl image config``, and regctl's version."""
        if target.host not in self.configured:
            subprocess.run([str(self.binary), "registry", "set", target.host, "--tls", "disabled"], env=self.env, check=True, capture_output=True)
            self.configured.add(target.host)
        command = [str(self.binary), "image", "config", target.image, "--platform", target.platform]
        return (lambda: run_json_command(command, self.env)), REGCTL_VERSION

    def close(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)
