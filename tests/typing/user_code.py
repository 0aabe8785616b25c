"""How a user's backend code type-checks against regclient_ext; checked by mypy --strict in the tests."""

from __future__ import annotations

import asyncio

import regclient_ext
from regclient_ext import ImageConfig


def exposed_ports(image: str) -> list[str]:
    config: ImageConfig = regclient_ext.get_image_config(image, platform="linux/amd64", timeout=10.0)
    return sorted(config.get("config", {}).get("ExposedPorts", {}))


def run_user(client: regclient_ext.Client, image: str) -> str | None:
    info: regclient_ext.ImageInfo = client.inspect_image(image)
    user = info.config.get("config", {}).get("User")
    digest: str = info.digest
    return user if digest else None


def entrypoints(images: list[str]) -> list[list[str]]:
    with regclient_ext.Client(hosts=[regclient_ext.Host("127.0.0.1:5000", tls="disabled")]) as client:
        results = client.get_image_configs(images, return_exceptions=True)
    out: list[list[str]] = []
    for result in results:
        if isinstance(result, regclient_ext.RegclientError):
            continue
        out.append(result.get("config", {}).get("Entrypoint", []))
    return out


async def os_version(image: str) -> str | None:
    async with regclient_ext.AsyncClient(timeout=5.0) as client:
        config = await client.get_image_config(image)
    return config.get("os.version")


def retry_after(error: regclient_ext.RateLimitError) -> float | None:
    return error.retry_after


if __name__ == "__main__":
    print(asyncio.run(os_version("ocidir://tests/data/regclient-testrepo:v1")))
