"""AsyncClient: the Client API as coroutines, without a thread per call.

Each operation runs on a goroutine. When it finishes, the Go side writes
its handle to a pipe that the event loop watches with add_reader, and the
loop collects the result. A thousand concurrent calls use no extra threads.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import sys
import weakref
from collections.abc import Sequence
from types import TracebackType
from typing import Any

from . import _native
from ._client import BaseClient
from ._info import ImageInfo
from .errors import ClientClosedError, RegclientError
from .types import ImageConfig

__all__ = ["AsyncClient"]

# Each finished operation writes its handle as one native-endian uint64.
_RECORD_SIZE = 8
# One reader callback collects at most 64 operations, a fraction of a
# millisecond of work, so a burst of results does not hold the event loop.
# The pipe stays readable, so the loop runs the reader again for the rest.
_READ_SIZE = _RECORD_SIZE * 64
# How often aclose() awaited on another loop checks that the client's loop still runs.
_LOOP_CHECK_SECONDS = 0.05
# The result of a call that aclose() ended on another loop while the call's
# own loop was stopped: an error record as the Go side writes one.
_CLOSED_RESULT = (
    False,
    b'{"error": {"kind": "canceled", "message": "call canceled by aclose() on another event loop"}, "logs": []}',
    b"",
)


class AsyncClient(BaseClient):
    """An asyncio registry client with the same constructor and methods as Client.

    It belongs to the event loop of its first call. Cancelling the task
    that awaits a call cancels the Go operation. Close it with ``await
    client.aclose()`` or ``async with``.
    """

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._read_fd = -1
        self._write_fd = -1
        self._pending = b""
        # Operations started and not yet collected, with the futures awaiting them.
        self._waiters: dict[int, asyncio.Future[tuple[bool, bytes, bytes]]] = {}
        self._drained: asyncio.Event | None = None
        # Set by aclose(), so no call starts on a pipe about to close.
        self._closing = False

    async def __aenter__(self) -> AsyncClient:
        if self._closed or self._closing:
            raise ClientClosedError("the client is closed; create a new one")
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()

    async def get_image_config(self, image: str, *, platform: str | None = None, timeout: float | None = None) -> ImageConfig:
        """Return the config of ``image`` for ``platform`` (default: the host's) as a dict."""
        return self._config(await self._run(self._config_request(image, platform, timeout)))

    async def inspect_image(self, image: str, *, platform: str | None = None, timeout: float | None = None) -> ImageInfo:
        """Return the digests, media type, platforms and config of ``image``."""
        return self._image_info(await self._run(self._config_request(image, platform, timeout)))

    async def get_image_configs(
        self, images: Sequence[str], *, platform: str | None = None, timeout: float | None = None, return_exceptions: bool = False
    ) -> list[ImageConfig | RegclientError]:
        """Return the configs of many images, fetched concurrently, in input order."""
        if isinstance(images, (str, bytes)):
            raise TypeError("images must be a sequence of image references, not a single str")
        requests = [self._config_request(image, platform, timeout) for image in images]
        results = await asyncio.gather(*(self._run(request) for request in requests))
        return [self._config_or_error(result, return_exceptions) for result in results]

    async def aclose(self) -> None:
        """Cancel the calls still running, wait for the Go side to let go of them, and release the client.

        Awaited on another loop than the client's, it closes the client on
        its own loop while that loop runs. Otherwise (the loop stopped or
        closed, or it stops before the close ends) it leaves the Go side of
        the calls to finish in the background, and the calls awaited on a
        stopped loop end with ClientClosedError once that loop runs again.
        """
        self._closing = True
        own = self._loop
        if own is not None and own is not asyncio.get_running_loop():
            if own.is_running() and await _close_on_own_loop(self, own):
                return
            futures = list(self._waiters.values())
            drained = self._drained
            self._detach()
            self._free()
            if not own.is_closed():
                own.call_soon_threadsafe(_fail_closed, futures, drained)
            return
        while self._waiters:
            for operation in list(self._waiters):
                _native.cancel(operation)
            assert self._drained is not None
            await self._drained.wait()
        self._detach()
        self._free()

    def __del__(self) -> None:
        # The loop holds only a weak reference to the client, so a client
        # dropped without aclose() is collected even while its loop runs.
        # Freeing the Go client below ends the calls still in flight.
        try:
            self._detach()
        except Exception:  # noqa: BLE001 - never raise from a finalizer
            pass
        super().__del__()

    async def _run(self, request: bytes) -> tuple[bool, bytes, bytes]:
        loop = asyncio.get_running_loop()
        if sys.platform == "win32":
            # NOTE: Windows waits on a thread per call: the loop cannot watch a pipe there. Not tested in CI.
            handle = await loop.run_in_executor(None, self._acquire)
            return await loop.run_in_executor(None, _native.call, handle, request)

        self._watch(loop)
        if not self._handle:
            # Loading Go and reading docker's config can take tens of milliseconds.
            await loop.run_in_executor(None, self._acquire)
        if self._closing:
            raise ClientClosedError("the client is closed; create a new one")
        # No await from here until the waiter is registered, so aclose() finds it.
        operation = _native.start(self._acquire(), request, self._write_fd)
        if operation is None:
            return _native.call(0, request)  # a forked child: returns the ForkError record without calling Go

        future: asyncio.Future[tuple[bool, bytes, bytes]] = loop.create_future()
        self._waiters[operation] = future
        assert self._drained is not None
        self._drained.clear()
        try:
            return await future
        except asyncio.CancelledError:
            _native.cancel(operation)
            raise

    def _watch(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._loop is loop:
            return
        if self._loop is not None:
            raise RuntimeError("an AsyncClient belongs to the event loop of its first call; create one per loop")
        if self._closed or self._closing:
            raise ClientClosedError("the client is closed; create a new one")
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._read_fd, False)
        # Go retries a full pipe after a sleep instead of blocking a thread.
        os.set_blocking(self._write_fd, False)
        self._loop = loop
        self._drained = asyncio.Event()
        self._drained.set()
        loop.add_reader(self._read_fd, _collect_for, weakref.ref(self))

    def _collect(self) -> None:
        """Collect the operations whose handles arrived on the pipe."""
        try:
            data = self._pending + os.read(self._read_fd, _READ_SIZE)
        except BlockingIOError:
            return
        whole = len(data) - len(data) % _RECORD_SIZE
        self._pending = data[whole:]
        for offset in range(0, whole, _RECORD_SIZE):
            operation = int.from_bytes(data[offset : offset + _RECORD_SIZE], sys.byteorder)
            result = _native.finish(operation)
            future = self._waiters.pop(operation, None)
            if future is not None and not future.done():
                future.set_result(result)
        if not self._waiters and self._drained is not None:
            self._drained.set()

    def _detach(self) -> None:
        """Let go of the pipe: close it, or hand it to the binding with the calls still due on it."""
        if self._read_fd < 0:
            return
        loop, read_fd, write_fd = self._loop, self._read_fd, self._write_fd
        operations, pending = list(self._waiters), self._pending
        self._read_fd = self._write_fd = -1
        self._waiters.clear()
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if loop is not None and loop is not running and loop.is_running():
            # remove_reader is not thread-safe: let the loop's own thread do it.
            loop.call_soon_threadsafe(_release, loop, read_fd, write_fd, operations, pending)
        else:
            _release(loop, read_fd, write_fd, operations, pending)


def _collect_for(client_ref: weakref.ReferenceType[AsyncClient]) -> None:
    """Run the pipe reader of a client that is still alive."""
    client = client_ref()
    if client is not None:
        client._collect()


async def _close_on_own_loop(client: AsyncClient, own: asyncio.AbstractEventLoop) -> bool:
    """Run aclose() on the client's own loop and wait for it; return False if that loop stops first."""
    done: concurrent.futures.Future[None] = concurrent.futures.Future()
    own.call_soon_threadsafe(_start_close, client, own, done)
    waiter = asyncio.wrap_future(done)
    while True:
        finished, _ = await asyncio.wait({waiter}, timeout=_LOOP_CHECK_SECONDS)
        if finished:
            waiter.result()
            return True
        if not own.is_running():
            # A close that has not started never will. One that has started
            # goes on if the loop runs again, and finds nothing left to do.
            done.cancel()
            return False


def _start_close(client: AsyncClient, own: asyncio.AbstractEventLoop, done: concurrent.futures.Future[None]) -> None:
    """Start aclose() on the client's own loop, unless the caller on another loop has given up."""
    if not done.set_running_or_notify_cancel():
        return
    task = own.create_task(client.aclose())
    task.add_done_callback(lambda finished: _report_close(finished, done))


def _report_close(task: asyncio.Task[None], done: concurrent.futures.Future[None]) -> None:
    """Copy the outcome of the close task to the future that the other loop awaits."""
    if task.cancelled():
        done.set_exception(asyncio.CancelledError())
        return
    error = task.exception()
    if error is not None:
        done.set_exception(error)
    else:
        done.set_result(None)


def _fail_closed(futures: list[asyncio.Future[tuple[bool, bytes, bytes]]], drained: asyncio.Event | None) -> None:
    """End the calls that a stopped loop was awaiting when another loop closed their client.

    Each call gets the error record of a canceled call, so batches with
    return_exceptions=True still return their errors. Setting ``drained``
    lets an aclose() that was already waiting on this loop return.
    """
    for future in futures:
        if not future.done():
            future.set_result(_CLOSED_RESULT)
    if drained is not None:
        drained.set()


def _release(loop: asyncio.AbstractEventLoop | None, read_fd: int, write_fd: int, operations: list[int], pending: bytes) -> None:
    """Stop watching a pipe and close it, or hand it to the binding while operations are due on it."""
    if loop is not None and not loop.is_closed():
        loop.remove_reader(read_fd)
    if operations:
        # The binding frees each operation as its id arrives, then closes the pipe.
        _native.abandon(operations, read_fd, write_fd, pending)
    else:
        os.close(read_fd)
        os.close(write_fd)
