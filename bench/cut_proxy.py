"""A loopback TCP proxy that cuts the first connection after a number of bytes: a network cut.

Bytes pass through untouched (TLS stays end to end). Once ``cut_after`` bytes of the
first connection went from client to server, the client's side is aborted (what it had
sent beyond that, in socket buffers and the proxy's last read, is lost, as in a real
cut) and the server sees the connection end after exactly ``cut_after`` bytes (``delivered``);
later connections pass whole. The proxy's own socket buffers are kept small (a short
link, not one that queues megabytes). Used by the transfer benchmark and the upload tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket

__all__ = ["CutProxy"]

LINK_BUFFER = 256 * 1024


class CutProxy:
    def __init__(self, target_host: str, target_port: int, *, cut_after: int) -> None:
        self.target = (target_host, target_port)
        self.cut_after = cut_after
        self.delivered = 0  # bytes the server got on the cut connection, before the cut
        self.fired = False
        self._server: asyncio.Server | None = None
        self._connections = 0

    async def start(self) -> int:
        """Listen on 127.0.0.1; returns the port."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self._connections += 1
        cutting = self._connections == 1
        server_r, server_w = await asyncio.open_connection(*self.target)
        for writer in (client_w, server_w):
            sock = writer.get_extra_info("socket")
            for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
                sock.setsockopt(socket.SOL_SOCKET, option, LINK_BUFFER)
        back = asyncio.create_task(_pump(server_r, client_w))
        try:
            while block := await client_r.read(64 * 1024):
                if cutting and self.delivered + len(block) >= self.cut_after:
                    server_w.write(block[: self.cut_after - self.delivered])
                    await server_w.drain()
                    self.delivered = self.cut_after
                    self.fired = True
                    break
                server_w.write(block)
                await server_w.drain()
                if cutting:
                    self.delivered += len(block)
        finally:
            client_w.transport.abort()
            if self.fired and cutting and server_w.can_write_eof():
                # The server reads every delivered byte, then the end of the stream.
                server_w.write_eof()
                with contextlib.suppress(TimeoutError, OSError):
                    await asyncio.wait_for(back, 30)
            back.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await back
            server_w.transport.abort()


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while block := await reader.read(64 * 1024):
            if not writer.transport.is_closing():  # after a cut the answer goes nowhere
                writer.write(block)
                await writer.drain()
