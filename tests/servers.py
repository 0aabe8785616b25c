"""Small HTTP servers for tests: a counting, fault-injecting reverse proxy and a stalling server.

Every server here listens on 127.0.0.1 only and stops when the test ends.
"""

from __future__ import annotations

import http.client
import http.server
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

# A fault receives each request before it is forwarded. It returns True when
# it has sent the response itself.
Fault = Callable[["ProxyHandler"], bool]

HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-authorization", "proxy-authenticate"}


@dataclass
class ProxyStats:
    connections: int = 0
    requests: list[tuple[str, str]] = field(default_factory=list)
    authorization_headers: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def paths(self, prefix: str = "") -> list[str]:
        with self.lock:
            return [path for _, path in self.requests if path.startswith(prefix)]


class ProxyHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out as two writes; with Nagle's algorithm on, the
    # body of a keep-alive response would wait for the client's delayed ACK.
    disable_nagle_algorithm = True
    server: ProxyServer

    def setup(self) -> None:
        super().setup()
        with self.server.stats.lock:
            self.server.stats.connections += 1

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class names it so
        pass

    def do_GET(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:
        self._handle()

    def send_body(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _handle(self) -> None:
        stats = self.server.stats
        with stats.lock:
            stats.requests.append((self.command, self.path))
            if "Authorization" in self.headers:
                stats.authorization_headers.append(self.headers["Authorization"])
        fault = self.server.fault
        if fault is not None and fault(self):
            return
        self.forward()

    def fetch_upstream(self) -> tuple[int, list[tuple[str, str]], bytes]:
        """Send this request to the upstream registry and return its status, headers and body."""
        upstream = http.client.HTTPConnection(self.server.upstream, timeout=30)
        upstream.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
        # Headers such as Accept repeat; each line is forwarded as it came.
        for name, value in self.headers.items():
            if name.lower() not in HOP_HEADERS:
                upstream.putheader(name, value)
        upstream.endheaders()
        response = upstream.getresponse()
        body = response.read()
        upstream.close()
        headers = [(name, self.server.rewrite(value)) for name, value in response.getheaders() if name.lower() not in HOP_HEADERS]
        return response.status, headers, body

    def send_upstream(self, status: int, headers: list[tuple[str, str]], body: bytes, content_length: int | None = None) -> None:
        """Send an upstream response, with Content-Length set to the body's length unless given."""
        self.send_response(status)
        for name, value in headers:
            if name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body) if content_length is None else content_length))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def forward(self) -> None:
        self.send_upstream(*self.fetch_upstream())


class ProxyServer(http.server.ThreadingHTTPServer):
    """A reverse proxy on 127.0.0.1 in front of ``upstream`` ("127.0.0.1:PORT")."""

    daemon_threads = True

    def __init__(self, upstream: str, fault: Fault | None = None, address: str = "127.0.0.1") -> None:
        super().__init__((address, 0), ProxyHandler)
        self.upstream = upstream
        self.fault = fault
        self.stats = ProxyStats()
        self.host = f"{address}:{self.server_address[1]}"
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    def handle_error(self, request: object, client_address: object) -> None:
        """Stay quiet: faults reset connections on purpose, and clients hang up on slow bodies."""

    def rewrite(self, header_value: str) -> str:
        """Point upstream URLs in headers (token realms, redirects) at the proxy."""
        return header_value.replace(self.upstream, self.host)

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


class StallingServer:
    """Accept connections on 127.0.0.1 and respond after ``delay`` seconds, or never when delay is None."""

    def __init__(self, delay: float | None) -> None:
        self.delay = delay
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.host = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.connections: list[socket.socket] = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        self.sock.settimeout(0.1)
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections.append(conn)
            if self.delay is not None:
                threading.Thread(target=self._answer_later, args=(conn,), daemon=True).start()

    def _answer_later(self, conn: socket.socket) -> None:
        assert self.delay is not None
        time.sleep(self.delay)
        try:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        except OSError:
            pass

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join()
        for conn in self.connections:
            conn.close()
        self.sock.close()


class CountingListener:
    """A TCP listener whose accepted connections are counted and closed."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.1)
        self.host = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.count = 0
        self.running = True
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while self.running:
            try:
                connection, _ = self.sock.accept()
            except OSError:
                continue
            self.count += 1
            connection.close()

    def close(self) -> None:
        self.running = False
        self.thread.join()
        self.sock.close()
