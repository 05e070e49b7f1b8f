"""The receiving site of the transfer benchmark, in its own process, as a remote site agent is.

``python -m bench.transfer_remote ROOT CA CERT KEY --port P [--stream 0|1] [--cut-after N]
[--frames N]`` serves the federation blob upload routes exactly as a site agent does: a real
:class:`~site_agent.assets.AssetStore` under ``ROOT/assets``, a
:class:`~federation.blob_receiver.ResumableReceiver` behind
:class:`~federation.blob_receiver.BlobUploadEndpoint` on an aiohttp server with the
federation CA's server context on ``127.0.0.1:P``, and (``--stream 1``, the default)
the threaded :class:`~federation.blob_listener.BlobListener` whose port ``HEAD``
answers name. With ``--cut-after``, a :class:`~bench.cut_proxy.CutProxy` stands in
front of the port that receives the bodies. With ``--frames N`` it also stores N
frames of :data:`FRAME_BYTES` (random bytes) in a real
:class:`~site_agent.storage.FrameStorage` and serves them as the federation does
(:func:`~site_agent.frame_response.send_frame` on the ``/fed/v1`` frame route,
naming its blob listener, whose threads serve the later frames of an uncapped
fetch), listing them in ``ROOT/frames.json``.

It prints one JSON line once serving (``{"port": ..., "blob_port": ...}``), then
answers each ``cpu`` line on stdin with ``{"cpu_s": ...}`` (its own user + system
seconds, every thread); at the end of stdin it stops and prints
``{"cpu_s": ..., "cut_fired": ...}``. The benchmark (:func:`remote_site`) checks
what arrived by reading the asset store on disk.

Why a process of its own: in deployment the origin and the remote site are separate
agents on separate hosts. With both ends in the benchmark's one Python process, the
uploader's and the listener's threads took turns at one GIL (each 16 KiB TLS record
releases and retakes it), a cost no deployment pays. Frames fetched back came from
the same process as their fetcher until the remote served them from here too.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from federation.blob_listener import BlobListener, BlobRequest, answer
from federation.blob_receiver import BlobUploadEndpoint, ResumableReceiver
from federation.certs import TlsContexts, TlsFiles
from federation.frame_listener import FrameRequest, ServedFrame
from federation.protocol import FrameOutput
from federation.transfer import BLOB_PORT
from site_agent.assets import AssetStore
from site_agent.frame_response import send_frame
from site_agent.storage import FrameStorage

from .common import ROOT, free_port, own_cpu_s, say
from .cut_proxy import CutProxy

MIB = 1024 * 1024
FRAME_BYTES = 2 * MIB
"""Frames served back: a 2 MiB file each (a compressed EXR or a large PNG)."""
FRAME_JOB = "remote-job"
"""The job id the served frames belong to (the origin fetches ``/fed/v1/jobs/remote-job/...``)."""
STREAM_LISTENER = os.environ.get("SPILLWAY_BENCH_BLOB_LISTENER", "1") != "0"
"""The remote site runs the threaded blob listener (``blob_port``); 0: bodies arrive on the
aiohttp route, as before it (for comparisons)."""


@dataclass
class RemoteSite:
    """The parent's handle on a receiving site process."""

    url: str
    assets: AssetStore
    """The site's asset store, opened on the same folder: what it committed, read from disk."""
    proc: asyncio.subprocess.Process
    frames: list[FrameOutput] = field(default_factory=list)
    """The frames it serves (``frames=N``), as the remote reported them to the origin."""
    cut_fired: bool = False
    final_cpu_s: float = 0.0

    async def cpu_s(self) -> float:
        """The site process's CPU seconds so far."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(b"cpu\n")
        await self.proc.stdin.drain()
        return float(json.loads(await self.proc.stdout.readline())["cpu_s"])


@contextlib.asynccontextmanager
async def remote_site(
    root: Path,
    tls: TlsFiles,
    *,
    stream: bool = STREAM_LISTENER,
    cut_after: int | None = None,
    frames: int = 0,
) -> AsyncIterator[RemoteSite]:
    """A receiving site in its own process (this module); with ``cut_after``, a
    :class:`CutProxy` in front of the port that receives the blob bodies; with
    ``frames``, that many stored frames served back."""
    port = free_port()
    args = [str(root), str(tls.ca), str(tls.cert), str(tls.key), "--port", str(port)]
    args += ["--stream", "1" if stream else "0", "--frames", str(frames)]
    if cut_after is not None:
        args += ["--cut-after", str(cut_after)]
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.transfer_remote",
        *args,
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        if not line:
            raise RuntimeError(f"the remote site process exited ({await proc.wait()})")
        started = json.loads(line)
        site = RemoteSite(
            url=f"https://127.0.0.1:{started['port']}",
            assets=AssetStore(root / "assets", max_blob_bytes=1 << 40),
            proc=proc,
            frames=[FrameOutput(**f) for f in json.loads((root / "frames.json").read_text())]
            if frames
            else [],
        )
        yield site
        proc.stdin.close()
        final = json.loads(await asyncio.wait_for(proc.stdout.readline(), 60))
        site.cut_fired, site.final_cpu_s = bool(final["cut_fired"]), float(final["cpu_s"])
        if await asyncio.wait_for(proc.wait(), 60):
            raise RuntimeError(f"the remote site process failed ({proc.returncode})")
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


class StoredFrames:
    """``count`` frames of random bytes in a real frame storage, served checked as the
    federation serves a forwarded job's frames to its origin (nothing accounted)."""

    def __init__(self, root: Path, count: int) -> None:
        self.storage = FrameStorage(root, max_frame_bytes=1 << 40)
        self.folder = self.storage.job_dir("shot", FRAME_JOB)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.frames: list[FrameOutput] = []
        for n in range(1, count + 1):
            data = os.urandom(FRAME_BYTES)
            name = f"shot_{n:04d}.exr"
            (self.folder / name).write_bytes(data)
            sha = hashlib.sha256(data).hexdigest()
            self.frames.append(FrameOutput(frame=n, sha256=sha, size=len(data), name=name))
        self._by_number = {f.frame: f for f in self.frames}

    async def serve(self, number: str) -> ServedFrame:
        frame = self._by_number[int(number)]
        opened = await self.storage.open_frame(
            self.folder, frame.name, job_id=FRAME_JOB, frame=frame.frame, sha256=frame.sha256
        )
        return ServedFrame(opened=opened, name=frame.name, sent=_nothing)


async def _nothing(size: int) -> None:
    """The stand-in remote accounts nothing."""


async def serve(
    root: Path,
    tls: TlsContexts,
    port: int,
    *,
    stream: bool,
    cut_after: int | None,
    frames: int = 0,
) -> None:
    """Serve the upload routes (and ``frames`` stored frames) until stdin ends (module
    docstring)."""
    root.mkdir(parents=True, exist_ok=True)
    assets = AssetStore(root / "assets", max_blob_bytes=1 << 40)
    stored = StoredFrames(root / "frames", frames)
    (root / "frames.json").write_text(
        json.dumps([{"frame": f.frame, "sha256": f.sha256, "size": f.size, "name": f.name}
                    for f in stored.frames])
    )  # fmt: skip

    async def commit(sha256: str, path: Path) -> None:
        await asyncio.to_thread(assets.adopt, sha256, path, verified=True)  # as federation.api

    async def is_stored(sha256: str) -> bool:
        return assets.has(sha256)

    receiver = ResumableReceiver(
        assets.partial_dir, commit, is_stored=is_stored, max_blob_size=1 << 40
    )
    app = web.Application()
    blobs = BlobUploadEndpoint(receiver)
    app.add_routes(blobs.routes())
    listener = None

    async def frame_route(request: web.Request) -> web.StreamResponse:
        served = await stored.serve(request.match_info["frame"])
        # As the federation route: later frames come from the blob listener, when it runs.
        port: dict[str, str] = {BLOB_PORT: str(listener.port)} if listener is not None else {}
        try:
            return await send_frame(request, served.opened, served.name, headers=port)
        finally:
            served.opened.close()

    app.router.add_get("/fed/v1/jobs/{job_id}/frames/{frame}", frame_route)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, ssl_context=tls.server_context())
    await site.start()
    if stream:  # the blob bodies through the threaded listener, as a site with blob_port

        async def handle(request: BlobRequest) -> web.Response:
            return await answer(blobs, request, lambda _: None)

        async def frame(request: FrameRequest) -> ServedFrame:
            return await stored.serve(request.frame)

        listener = BlobListener(
            "127.0.0.1", 0, tls.server_context(), handle, frames=frame if frames else None
        )
        blobs.stream_port = await listener.start()
    cut = None
    if cut_after is not None:
        cut = CutProxy("127.0.0.1", blobs.stream_port or port, cut_after=cut_after)
        if stream:
            blobs.stream_port = await cut.start()
        else:
            port = await cut.start()
    loop = asyncio.get_running_loop()
    try:
        say({"port": port, "blob_port": blobs.stream_port})
        while (await loop.run_in_executor(None, sys.stdin.readline)).strip() == "cpu":
            say({"cpu_s": own_cpu_s()})
    finally:
        if cut is not None:
            await cut.close()
        if listener is not None:
            await listener.close()
        await runner.cleanup()
    say({"cpu_s": own_cpu_s(), "cut_fired": cut is not None and cut.fired})


def main() -> None:
    import logging

    from site_agent.app import new_event_loop

    parser = argparse.ArgumentParser(prog="python -m bench.transfer_remote")
    for name in ("root", "ca", "cert", "key"):
        parser.add_argument(name, type=Path)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--stream", type=int, default=1, choices=(0, 1))
    parser.add_argument("--cut-after", type=int)
    parser.add_argument("--frames", type=int, default=0)
    args = parser.parse_args()
    # The cut connection is deliberate; aiohttp would log it with a traceback.
    logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)
    logging.getLogger("federation.blob_receiver").setLevel(logging.ERROR)
    logging.getLogger("federation.blob_listener").setLevel(logging.ERROR)
    tls = TlsContexts(TlsFiles(ca=args.ca, cert=args.cert, key=args.key))
    # The agents' own event loop (uvloop where installed).
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        runner.run(
            serve(
                args.root,
                tls,
                args.port,
                stream=bool(args.stream),
                cut_after=args.cut_after,
                frames=args.frames,
            )
        )


if __name__ == "__main__":
    main()
