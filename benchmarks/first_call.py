"""Measure, in a fresh interpreter, what the first regclient_ext call costs over a warm one.

Usage: python benchmarks/first_call.py HOST IMAGE PLATFORM WARM_CALLS

Prints one JSON object: the first call's time and the median of the warm
calls after it (seconds), and VmRSS from /proc/self/status (KiB) before
and after the first call. Both calls use cache_size=0, so each does the
same three GETs. The first call's time also covers making its Host and
Client, because the modules that regclient_ext imports on first use (json,
dataclasses) load there. So the difference is those imports, loading Go,
creating the Go client and opening the connection. Before the first call
the probe imports only sys and time, which interpreter start has loaded.
"""

from __future__ import annotations

import sys
import time

import regclient_ext


def rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("VmRSS not found in /proc/self/status")


def main() -> None:
    host, image, platform, warm_text = sys.argv[1:5]

    rss_before = rss_kib()
    begin = time.perf_counter()
    client = regclient_ext.Client(hosts=[regclient_ext.Host(host, tls="disabled")], docker_config=False, docker_certs=False, cache_size=0)
    client.get_image_config(image, platform=platform)
    first = time.perf_counter() - begin
    rss_after = rss_kib()

    warm = []
    for _ in range(int(warm_text)):
        begin = time.perf_counter()
        client.get_image_config(image, platform=platform)
        warm.append(time.perf_counter() - begin)
    client.close()

    import json
    import statistics

    print(json.dumps({"first": first, "warm": statistics.median(warm), "rss_before_kib": rss_before, "rss_after_kib": rss_after}))


if __name__ == "__main__":
    main()
