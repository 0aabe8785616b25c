"""Push an OCI layout's tags to a registry with the distribution API, using only http.client."""

from __future__ import annotations

import http.client
import json
from pathlib import Path
from urllib.parse import urlsplit

from oci_layout import LayoutReader

INDEX_TYPES = {"application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json"}


class Pusher:
    def __init__(self, host: str, repository: str, layout: Path) -> None:
        self.host = host
        self.repository = repository
        self.reader = LayoutReader(layout)
        self.pushed: set[str] = set()

    def _request(self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None) -> http.client.HTTPResponse:
        connection = http.client.HTTPConnection(self.host, timeout=30)
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        response.read()
        connection.close()
        if response.status >= 300 and not (method == "POST" and response.status == 202):
            raise RuntimeError(f"{method} {path} failed with {response.status}")
        return response

    def push_blob(self, digest: str) -> None:
        if digest in self.pushed:
            return
        data = self.reader.blob(digest)
        response = self._request("POST", f"/v2/{self.repository}/blobs/uploads/")
        location = urlsplit(response.headers["Location"])
        separator = "&" if location.query else "?"
        path = f"{location.path}?{location.query}{separator}digest={digest}" if location.query else f"{location.path}?digest={digest}"
        self._request("PUT", path, data, {"Content-Type": "application/octet-stream", "Content-Length": str(len(data))})
        self.pushed.add(digest)

    def push_manifest(self, descriptor: dict[str, object], reference: str | None = None) -> None:
        digest = str(descriptor["digest"])
        raw = self.reader.blob(digest)
        manifest = json.loads(raw)
        media_type = str(manifest.get("mediaType") or descriptor["mediaType"])
        if media_type in INDEX_TYPES:
            for child in manifest["manifests"]:
                self.push_manifest(child)
        else:
            for blob in [manifest.get("config"), *manifest.get("layers", [])]:
                if blob:
                    self.push_blob(blob["digest"])
        subject = manifest.get("subject")
        if subject and subject["digest"] not in self.pushed:
            self.push_manifest(subject)
        self._request("PUT", f"/v2/{self.repository}/manifests/{reference or digest}", raw, {"Content-Type": media_type})
        self.pushed.add(digest)

    def push_tags(self, tags: list[str]) -> None:
        for tag in tags:
            self.push_manifest(self.reader.tag_descriptor(tag), tag)


def push_layout(host: str, repository: str, layout: Path) -> None:
    """Push every tag of a layout, with everything its manifests reference."""
    pusher = Pusher(host, repository, layout)
    index = json.loads((layout / "index.json").read_text())
    tags = [m["annotations"]["org.opencontainers.image.ref.name"] for m in index["manifests"] if "org.opencontainers.image.ref.name" in m.get("annotations", {})]
    pusher.push_tags(tags)
