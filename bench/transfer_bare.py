"""The bare pipeline: the transfer benchmark's files over mutual TLS with none of the protocol.

What it keeps from the federation's upload: the same files, the same mutual-TLS
contexts, a blocking ``ssl`` socket per stream in a thread at each end, and at the
receiving end, per byte, what the blob listener does (sha256 of each block, the
write, large files past the page cache with
:class:`~federation.blob_append.DirectWrites`, each file synced and its hash
checked before the next). What it leaves out: HTTP, the durable-offset records,
the event loop and its hand-offs, adopting each file into a store, and the
resumable protocol's requests. So it bounds what the federation transfer could
reach on this machine with Python's ``ssl`` (docs/benchmarks.md, "Ninth pass"):
a gap between the two is the protocol's cost, the rest is the machine's.

Each stream's sender sends ``[size][sha256]`` then the bytes of each file it takes
from a shared list (largest first), then an end marker.

``python -m bench.transfer_bare ROOT CA CERT KEY --streams N`` is the receiving
process: it prints ``{"port": P, "cpu_s": ...}`` once listening, receives N
streams into ``ROOT``, and prints ``{"cpu_s": ..., "files": ..., "bytes": ...}``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import itertools
import json
import os
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from federation.blob_append import DIRECT_MIN_BYTES, DirectWrites, write_all
from federation.certs import TlsContexts, TlsFiles
from federation.forwarding import UPLOAD_STREAMS

from .common import ROOT, own_cpu_s, say

__all__ = ["bare_run"]

HEADER = struct.Struct("!Q32s")
"""A file's size and sha256 digest, before its bytes."""
END = 2**64 - 1
"""The size that ends a stream."""
BLOCK = 256 * 1024
"""Bytes received (and hashed, and written) at once, as the blob listener's ``BODY_BLOCK``."""
SEND_BLOCK = 1024 * 1024
"""Bytes read from disk and sent at once, as the upload threads' ``SEND_BLOCK``."""


async def bare_run(
    root: Path, files: list[tuple[Path, str]], remote: TlsFiles, origin: TlsContexts
) -> dict[str, float]:
    """Send ``files`` (path, sha256) to a receiving process over :data:`UPLOAD_STREAMS`
    streams; seconds and each end's CPU seconds."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.transfer_bare",
        str(root),
        str(remote.ca),
        str(remote.cert),
        str(remote.key),
        "--streams",
        str(UPLOAD_STREAMS),
        cwd=ROOT,
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None
    try:
        ready = json.loads(await asyncio.wait_for(proc.stdout.readline(), 60))
        started, cpu = time.perf_counter(), own_cpu_s()
        try:
            await asyncio.to_thread(_send, origin.client_context(), ready["port"], files)
        except OSError as exc:  # the receiver went away: its exit says why
            raise RuntimeError(f"the bare receiver failed ({await proc.wait()}): {exc}") from exc
        line = await asyncio.wait_for(proc.stdout.readline(), 300)
        if not line:
            raise RuntimeError(f"the bare receiver failed ({await proc.wait()})")
        done = json.loads(line)
        elapsed = time.perf_counter() - started
        sent_cpu = own_cpu_s() - cpu
        if await asyncio.wait_for(proc.wait(), 60):
            raise RuntimeError(f"the bare receiver failed ({proc.returncode})")
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    total = sum(path.stat().st_size for path, _ in files)
    if (done["files"], done["bytes"]) != (len(files), total):
        raise RuntimeError(f"the bare receiver got {done}, not {len(files)} files of {total} B")
    return {"s": elapsed, "send_cpu_s": sent_cpu, "receive_cpu_s": done["cpu_s"] - ready["cpu_s"]}


def _send(context: ssl.SSLContext, port: int, files: list[tuple[Path, str]]) -> None:
    queue = sorted(files, key=lambda f: f[0].stat().st_size)  # popped from the end
    lock = threading.Lock()

    def stream() -> None:
        raw = socket.create_connection(("127.0.0.1", port))
        with context.wrap_socket(raw, server_hostname="remote") as tls:
            buffer = memoryview(bytearray(SEND_BLOCK))
            while True:
                with lock:
                    if not queue:
                        break
                    path, sha256 = queue.pop()
                tls.sendall(HEADER.pack(path.stat().st_size, bytes.fromhex(sha256)))
                with path.open("rb", buffering=0) as handle:
                    while count := handle.readinto(buffer):
                        tls.sendall(buffer[:count])
            tls.sendall(HEADER.pack(END, bytes(32)))
            tls.recv(1)  # the receiver's last file is synced

    _each_in_a_thread(lambda _: stream(), list(range(UPLOAD_STREAMS)))


def receive(root: Path, tls: TlsContexts, streams: int) -> dict[str, Any]:
    """Receive ``streams`` streams into ``root``; files and bytes received."""
    root.mkdir(parents=True, exist_ok=True)
    context = tls.server_context()
    totals = {"files": 0, "bytes": 0}
    lock = threading.Lock()
    with socket.create_server(("127.0.0.1", 0)) as server:
        say({"port": server.getsockname()[1], "cpu_s": own_cpu_s()})
        names = itertools.count()

        def stream(raw: socket.socket) -> None:
            with context.wrap_socket(raw, server_side=True) as tls:
                block = memoryview(bytearray(BLOCK))
                while (header := _read(tls, HEADER.size)) is not None:
                    size, digest = HEADER.unpack(header)
                    if size == END:
                        break
                    with lock:
                        path = root / f"{next(names)}.bin"
                    _receive_file(tls, path, size, digest, block)
                    with lock:
                        totals["files"] += 1
                        totals["bytes"] += size
                tls.sendall(b"k")

        _each_in_a_thread(stream, [server.accept()[0] for _ in range(streams)])
    return totals


def _each_in_a_thread(work: Any, items: list[Any]) -> None:
    """``work(item)`` for each item, each in a thread of its own; the first error raised."""
    errors: list[BaseException] = []

    def run(item: Any) -> None:
        try:
            work(item)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(item,)) for item in items]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def _receive_file(
    tls: ssl.SSLSocket, path: Path, size: int, digest: bytes, block: memoryview
) -> None:
    """As the blob listener's thread: hash and write each block, sync, check the hash."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    direct = DirectWrites.open(path, 0) if size >= DIRECT_MIN_BYTES else None
    try:
        running = hashlib.sha256()
        left = size
        while left:
            view = block[: min(left, len(block))]
            if _fill(tls, view) < len(view):
                raise ConnectionResetError("the sender closed the stream part way")
            running.update(view)
            if direct is None:
                write_all(fd, view)
            else:
                direct.write(view, fd)
            left -= len(view)
        if direct is not None:
            direct.flush(fd)
        os.fdatasync(fd)
    finally:
        if direct is not None:
            direct.close()
        os.close(fd)
    if running.digest() != digest:
        raise ValueError(f"{path} does not hash as sent")


def _read(tls: ssl.SSLSocket, count: int) -> bytes | None:
    buffer = bytearray(count)
    got = _fill(tls, memoryview(buffer))
    if got == 0:
        return None
    if got < count:
        raise ConnectionResetError("the sender closed the stream in a header")
    return bytes(buffer)


def _fill(tls: ssl.SSLSocket, view: memoryview) -> int:
    got = 0
    while got < len(view):
        count = tls.recv_into(view[got:])
        if not count:
            break
        got += count
    return got


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.transfer_bare")
    for name in ("root", "ca", "cert", "key"):
        parser.add_argument(name, type=Path)
    parser.add_argument("--streams", type=int, default=UPLOAD_STREAMS)
    args = parser.parse_args()
    tls = TlsContexts(TlsFiles(ca=args.ca, cert=args.cert, key=args.key))
    totals = receive(args.root, tls, args.streams)
    say({"cpu_s": own_cpu_s(), **totals})


if __name__ == "__main__":
    main()
