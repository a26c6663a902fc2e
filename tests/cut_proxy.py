"""A TCP proxy on 127.0.0.1 that can cut the network: test tooling for a browser losing its server."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator

from cnnviz.hosting.server_process import free_port

CHUNK = 64 * 1024


class CuttingProxy:
    """Forwards ``127.0.0.1:port`` to ``127.0.0.1:target_port`` on its own event-loop thread;
    :meth:`cut` drops every connection and refuses new ones for a while, then accepts again."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.connections = 0  # accepted so far, a reconnect shows as more
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="cut-proxy", daemon=True)
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._thread.start()
        self._call(self._listen())

    def close(self) -> None:
        self._call(self._drop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def cut(self, seconds: float) -> None:
        """Reset every connection, refuse new ones (connection refused) for ``seconds``, then listen again;
        returns once the proxy accepts again."""
        self._call(self._drop())
        self._call(asyncio.sleep(seconds))
        self._call(self._listen())

    def _call(self, coroutine) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=60)

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, reuse_address=True)

    async def _drop(self) -> None:
        if self._server is not None:
            self._server.close()  # stop listening: a new connection is refused
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._open):
            writer.transport.abort()  # a reset, as when the network goes away
        self._open.clear()

    async def _handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            server_reader, server_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            client_writer.transport.abort()
            return
        self._open |= {client_writer, server_writer}
        await asyncio.gather(self._pipe(client_reader, server_writer),
                             self._pipe(server_reader, client_writer))
        self._open -= {client_writer, server_writer}

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(CHUNK):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()  # one side ended: end the other too


@contextlib.contextmanager
def cutting_proxy(target_port: int) -> Iterator[CuttingProxy]:
    """A started :class:`CuttingProxy` in front of ``target_port``, closed at the end."""
    proxy = CuttingProxy(target_port)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.close()
