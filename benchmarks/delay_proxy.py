"""Serve a reverse proxy on 127.0.0.1 that waits a fixed delay before forwarding each request.

Usage: python benchmarks/delay_proxy.py UPSTREAM DELAY_SECONDS

It prints the proxy's "127.0.0.1:PORT" on one line, then serves until its
standard input closes, so it stops when the benchmark that started it exits.
It runs in its own process so that its threads do not take the GIL from
the client being measured.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from servers import ProxyHandler, ProxyServer  # noqa: E402


class DelayProxyServer(ProxyServer):
    # socketserver listens with a backlog of 5, which a burst of 32 new
    # connections overflows; dropped SYNs would then cost a 1 s retransmit.
    request_queue_size = 256


def main() -> None:
    upstream, delay_text = sys.argv[1], sys.argv[2]
    delay = float(delay_text)

    def delay_request(handler: ProxyHandler) -> bool:
        time.sleep(delay)
        return False  # forward it

    proxy = DelayProxyServer(upstream, delay_request)
    print(proxy.host, flush=True)
    sys.stdin.read()
    proxy.stop()


if __name__ == "__main__":
    main()
