"""Write and read OCI image layouts for tests.

The writer builds small but complete images (config, one layer, manifest,
optional index), so tests can serve content they control. The reader walks
any layout to find the config blob that a tag and platform resolve to.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Layout:
    """An OCI image layout on disk, written blob by blob."""

    path: Path

    def __post_init__(self) -> None:
        (self.path / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (self.path / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
        if not (self.path / "index.json").exists():
            self._write_index([])

    def add_blob(self, data: bytes) -> str:
        digest = digest_of(data)
        (self.path / "blobs" / "sha256" / digest.split(":", 1)[1]).write_bytes(data)
        return digest

    def descriptor(self, media_type: str, data: bytes, **extra: Any) -> dict[str, Any]:
        return {"mediaType": media_type, "digest": self.add_blob(data), "size": len(data), **extra}

    def add_image(self, config: dict[str, Any], *, docker: bool = False, config_bytes: bytes | None = None) -> dict[str, Any]:
        """Write a config, a one-file layer and a manifest; return the manifest's descriptor."""
        layer = _gzip_tar({"hello.txt": json.dumps(config, sort_keys=True).encode()})
        raw_config = config_bytes if config_bytes is not None else json.dumps(config, indent=1).encode()
        manifest = {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST if docker else OCI_MANIFEST,
            "config": self.descriptor(DOCKER_CONFIG if docker else OCI_CONFIG, raw_config),
            "layers": [self.descriptor(DOCKER_LAYER if docker else OCI_LAYER, layer)],
        }
        return self.descriptor(manifest["mediaType"], json.dumps(manifest).encode())

    def add_index(self, manifests: list[dict[str, Any]], *, docker: bool = False) -> dict[str, Any]:
        media_type = DOCKER_LIST if docker else OCI_INDEX
        index = {"schemaVersion": 2, "mediaType": media_type, "manifests": manifests}
        return self.descriptor(media_type, json.dumps(index).encode())

    def tag(self, name: str, descriptor: dict[str, Any]) -> None:
        entries = [d for d in self._read_index() if d.get("annotations", {}).get("org.opencontainers.image.ref.name") != name]
        entries.append({**descriptor, "annotations": {"org.opencontainers.image.ref.name": name}})
        self._write_index(entries)

    def _read_index(self) -> list[dict[str, Any]]:
        return json.loads((self.path / "index.json").read_text())["manifests"]

    def _write_index(self, entries: list[dict[str, Any]]) -> None:
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
        (self.path / "index.json").write_text(json.dumps(index))


def image_config(os_name: str, arch: str, variant: str | None = None, **config: Any) -> dict[str, Any]:
    """Return a minimal image config for one platform."""
    result: dict[str, Any] = {"architecture": arch, "os": os_name, "config": config, "rootfs": {"type": "layers", "diff_ids": []}}
    if variant:
        result["variant"] = variant
    return result


def platform_descriptor(descriptor: dict[str, Any], os_name: str, arch: str, variant: str | None = None) -> dict[str, Any]:
    platform = {"os": os_name, "architecture": arch}
    if variant:
        platform["variant"] = variant
    return {**descriptor, "platform": platform}


def _gzip_tar(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(buffer.getvalue(), mtime=0)


class LayoutReader:
    """Walk a layout the way a registry client would, reading blobs directly."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def blob(self, digest: str) -> bytes:
        return (self.path / "blobs" / "sha256" / digest.split(":", 1)[1]).read_bytes()

    def json_blob(self, digest: str) -> Any:
        return json.loads(self.blob(digest))

    def tag_descriptor(self, tag: str) -> dict[str, Any]:
        for entry in json.loads((self.path / "index.json").read_text())["manifests"]:
            if entry.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag:
                return entry
        raise KeyError(tag)

    def platforms(self, tag: str) -> list[str]:
        """List "os/arch[/variant]" for each image entry of a tag's index, in index order."""
        index = self.json_blob(self.tag_descriptor(tag)["digest"])
        result = []
        for entry in index["manifests"]:
            platform = entry.get("platform", {})
            if platform.get("os") in (None, "unknown"):
                continue
            result.append("/".join(p for p in (platform["os"], platform["architecture"], platform.get("variant")) if p))
        return result

    def config_for(self, tag: str, platform: str) -> tuple[str, bytes]:
        """Return the config digest and the raw config bytes of one platform of a tag."""
        os_name, arch, *variant = platform.split("/")
        descriptor = self.tag_descriptor(tag)
        manifest = self.json_blob(descriptor["digest"])
        if "manifests" in manifest:
            for entry in manifest["manifests"]:
                p = entry.get("platform", {})
                if (p.get("os"), p.get("architecture"), p.get("variant")) == (os_name, arch, variant[0] if variant else None):
                    manifest = self.json_blob(entry["digest"])
                    break
            else:
                raise KeyError(platform)
        digest = manifest["config"]["digest"]
        return digest, self.blob(digest)
