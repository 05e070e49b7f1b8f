"""Federation transfer: assets over mutual TLS (the real upload path) vs a raw loopback copy.

All on 127.0.0.1. The TLS side is the code the site agents use, with each end in a
process of its own as in deployment: this process uploads with
``federation.transfer.upload_blob`` (a blob per request, resumable), ``UPLOAD_STREAMS``
blobs at a time as forwarding does, to a receiving site started as
``python -m bench.transfer_remote`` (:mod:`bench.transfer_remote`: a
``ResumableReceiver`` behind ``BlobUploadEndpoint`` on an aiohttp server with the
federation CA's server context and the threaded blob listener, committing into a real
``AssetStore``, hash verified), whose store is then checked on disk from here. The
raw side is the issue's definition of a raw loopback copy: the same files streamed
over one plain TCP connection into files, both ends in this process (no TLS, no
hashing, no fsync). They run interleaved ABBA (raw, TLS, TLS, raw) so that both see
the same load; CPU is reported per process. Then: a
second pass over the same blobs (bytes sent; target 0), uploads and frames
fetched back under a ``max_mbps`` cap (``bench.transfer_capped``: measured rate
vs the cap; target within 10 %), a transfer cut mid-blob by a proxy that
drops the connection, then resumed (bytes re-sent; target <= one chunk), the
same files through the bare pipeline (``bench.transfer_bare``: TLS, hashing and
writes with none of the protocol; what the transfer could reach here), and
small files alone (:data:`SMALL_FILES` of :data:`SMALL_SIZE`: blobs/s, MiB/s and
CPU per blob, where the cost is per blob rather than per byte).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import shutil
import struct
import time
from pathlib import Path
from typing import Any

import aiohttp

from federation.bandwidth import TokenBucket, mbps_to_bytes_per_s
from federation.certs import TlsContexts, TlsFiles, init_ca, issue_site_cert
from federation.forwarding import SMALL_UPLOAD_STREAMS, UPLOAD_STREAMS
from federation.transfer import CHUNK_SIZE, DIRECT_MAX, upload_blob
from federation.upload_threads import UploadConnections, UploadSlots

from .common import own_cpu_s as _cpu_s
from .common import workdir as bench_workdir
from .transfer_bare import bare_run
from .transfer_capped import CAP_MBPS, CAP_SECONDS, capped_fetch, frames_back, measure
from .transfer_remote import remote_site

MIB = 1024 * 1024
ABBA_BLOCKS = 2
"""Blocks of raw, TLS, TLS, raw runs: four pairs, each reported."""
# Share of the total in each file size: a few large renders' caches, textures, small includes.
MIX = ((0.40, 256 * MIB), (0.30, 32 * MIB), (0.20, 4 * MIB), (0.10, 256 * 1024))
BARE_RUNS = 2
"""Runs of the bare pipeline (bench.transfer_bare), after the ABBA blocks."""
SMALL_FILES, SMALL_SIZE, SMALL_RUNS = 1000, 256 * 1024, 2
"""Small files alone: a studio's textures, includes and caches are mostly such files."""


def make_assets(folder: Path, total: int) -> list[tuple[Path, str]]:
    """Random files of mixed sizes adding up to ``total`` bytes; returns (path, sha256)."""
    folder.mkdir(parents=True, exist_ok=True)
    sizes: list[int] = []
    for share, size in MIX:
        size = min(size, max(int(total * share), 1))
        sizes += [size] * max(1, int(total * share) // size)
    left = total - sum(sizes)
    for _, size in MIX:  # what the shares' rounding left over, largest files first
        while left >= size:
            sizes.append(size)
            left -= size
    if left:
        sizes.append(left)
    files = []
    for i, size in enumerate(sizes):
        path = folder / f"asset-{i:04d}-{size}.bin"
        data = os.urandom(size)
        path.write_bytes(data)
        files.append((path, hashlib.sha256(data).hexdigest()))
    return files


async def raw_copy(files: list[tuple[Path, str]], dest: Path) -> float:
    """Seconds to stream every file over one plain loopback TCP connection into files."""
    dest.mkdir(parents=True, exist_ok=True)
    done = asyncio.Event()

    async def receive(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for index in range(len(files)):
            (size,) = struct.unpack("!Q", await reader.readexactly(8))
            with (dest / f"{index}.bin").open("wb") as fh:
                left = size
                while left:
                    block = await reader.read(min(left, MIB))
                    fh.write(block)
                    left -= len(block)
        writer.close()
        done.set()

    server = await asyncio.start_server(receive, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    started = time.perf_counter()
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    for path, _ in files:
        writer.write(struct.pack("!Q", path.stat().st_size))
        with path.open("rb") as fh:
            while block := fh.read(MIB):
                writer.write(block)
                await writer.drain()
    await writer.drain()
    await done.wait()
    elapsed = time.perf_counter() - started
    writer.close()
    server.close()
    await server.wait_closed()
    return elapsed


async def upload_all(
    url: str,
    tls: TlsContexts,
    files: list[tuple[Path, str]],
    *,
    streams: int = UPLOAD_STREAMS,
    small_streams: int = SMALL_UPLOAD_STREAMS,
    bucket: TokenBucket | None = None,
    missing: bool = False,
) -> int:
    """Upload every file as the origin's forwarding does: ``streams`` blobs at a time and
    ``small_streams`` small ones beside them;
    ``missing``: the receiver reported them missing (as an offer's reply does)."""
    slots = UploadSlots(streams, small_streams, DIRECT_MAX)
    connections = UploadConnections()
    async with aiohttp.ClientSession() as session:

        async def one(path: Path, sha: str) -> int:
            async with slots.slot(path.stat().st_size):
                return await upload_blob(
                    session,
                    url,
                    sha,
                    path,
                    timeout_s=300,
                    request_options=tls.request_options("remote"),
                    bucket=bucket,
                    connections=connections,
                    missing=missing,
                )

        try:
            return sum(await asyncio.gather(*(one(path, sha) for path, sha in files)))
        finally:
            connections.close()


async def transfer_run(total_bytes: int, *, timeout: float) -> dict[str, Any]:
    # The cut connection is deliberate; aiohttp would log it with a traceback.
    logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)
    logging.getLogger("federation.transfer").setLevel(logging.ERROR)
    logging.getLogger("federation.blob_receiver").setLevel(logging.ERROR)
    return await asyncio.wait_for(_transfer(total_bytes), timeout)


async def _transfer(total_bytes: int) -> dict[str, Any]:
    with bench_workdir("transfer-") as root:
        files = make_assets(root / "src", total_bytes)
        total = sum(p.stat().st_size for p, _ in files)
        init_ca(root / "ca")
        origin = issue_site_cert(root / "ca", "origin", root / "origin")
        remote = issue_site_cert(root / "ca", "remote", root / "remote")
        origin_tls = TlsContexts(TlsFiles(ca=origin.ca, cert=origin.cert, key=origin.key))
        remote_tls = TlsContexts(TlsFiles(ca=remote.ca, cert=remote.cert, key=remote.key))
        remote_files = remote_tls.files

        # ABBA blocks: raw, TLS, TLS, raw. On a loaded machine either kind may hit a slow
        # moment; interleaving gives both the same luck, and every pair's ratio is reported.
        # CPU seconds (user + system, every thread of a process) are far less disturbed by
        # other load on the machine than wall times. The raw copy runs in this process; the
        # TLS sender runs here and its receiving site in a process of its own.
        floors = [_durable_write_s(root / "floor", total)]
        raw_times, tls_times, raw_cpu, send_cpu, receive_cpu, loads = [], [], [], [], [], []
        first = second = 0
        for run, kind in enumerate(("raw", "tls", "tls", "raw") * ABBA_BLOCKS):
            # Each run starts with nothing dirty in the page cache: the asset files and the
            # previous run's files would otherwise be written back during this run (the
            # raw copy's own files are deleted before the kernel writes them back).
            os.sync()
            loads.append(os.getloadavg()[0])
            if kind == "raw":
                cpu = _cpu_s()
                raw_times.append(await raw_copy(files, root / f"raw-{run}"))
                raw_cpu.append(_cpu_s() - cpu)
                shutil.rmtree(root / f"raw-{run}")
                continue
            async with remote_site(root / f"site-{run}", remote_files) as site:
                there = await site.cpu_s()
                started, cpu = time.perf_counter(), _cpu_s()
                # The offer's reply would name every blob missing (a fresh site); the
                # second pass asks for each blob's offset, as after a lost reply.
                first = await upload_all(site.url, origin_tls, files, missing=True)
                tls_times.append(time.perf_counter() - started)
                send_cpu.append(_cpu_s() - cpu)
                receive_cpu.append(await site.cpu_s() - there)
                # On disk, in the site's store (it hashed each blob before storing it).
                assert all(
                    site.assets.has(sha) and site.assets.size(sha) == path.stat().st_size
                    for path, sha in files
                )
                second = await upload_all(site.url, origin_tls, files)
            shutil.rmtree(root / f"site-{run}")
        floors.append(_durable_write_s(root / "floor", total))
        # The same files over the same TLS with none of the protocol, twice: what the
        # transfer could reach here with Python's ssl (bench.transfer_bare).
        bare = []
        for run in range(BARE_RUNS):
            os.sync()
            bare.append(await bare_run(root / f"bare-{run}", files, remote_files, origin_tls))
            shutil.rmtree(root / f"bare-{run}")

        capped = await _capped(root / "site-capped", remote_tls, origin_tls, files)
        small = await _small_files(root / "small", remote_tls, origin_tls)
        fetched = await capped_fetch(root / "fetch-capped", remote_files, origin_tls)
        # Frames coming back, uncapped: a quarter of the asset set's bytes in 2 MiB frames.
        back = await frames_back(root / "frames-back", remote_files, origin_tls, total // 4)
        big = big_path, big_sha = max(files, key=lambda f: f[0].stat().st_size)
        # The network drops the stream 3.5 chunks in; the bytes sent again are those
        # in flight then, which the receiver never got.
        cut_after = 7 * CHUNK_SIZE // 2
        async with remote_site(root / "site-cut", remote_files, cut_after=cut_after) as site:
            resumed = await upload_all(site.url, origin_tls, [big])
            assert site.assets.has(big_sha)
        assert site.cut_fired
        size = big_path.stat().st_size
    ratios = [raw / tls for raw, tls in zip(raw_times, tls_times, strict=True)]
    bare_s = sum(b["s"] for b in bare) / len(bare)
    gib = total / 2**30
    runs = len(raw_times)
    raw_s, tls_s, floor_s = sum(raw_times) / runs, sum(tls_times) / runs, min(floors)
    return {
        "bytes": total,
        "files": len(files),
        "streams": UPLOAD_STREAMS,
        "raw_s": raw_s,
        "tls_s": tls_s,
        "raw_runs_s": raw_times,
        "tls_runs_s": tls_times,
        "raw_mib_s": total / MIB / raw_s,
        "tls_mib_s": total / MIB / tls_s,
        "ratio": tls_s / raw_s,
        "throughput_ratio": raw_s / tls_s,
        "throughput_ratios_abba": ratios,
        "raw_cpu_s_per_gib": sum(raw_cpu) / runs / gib,
        "tls_cpu_s_per_gib": (sum(send_cpu) + sum(receive_cpu)) / runs / gib,
        "tls_send_cpu_s_per_gib": sum(send_cpu) / runs / gib,
        "tls_receive_cpu_s_per_gib": sum(receive_cpu) / runs / gib,
        "tls_send_cpu_runs_s_per_gib": [c / gib for c in send_cpu],
        "tls_receive_cpu_runs_s_per_gib": [c / gib for c in receive_cpu],
        "bare_mib_s": total / MIB / bare_s,
        "bare_ratio": raw_s / bare_s,
        "bare_runs_s": [b["s"] for b in bare],
        "bare_send_cpu_s_per_gib": sum(b["send_cpu_s"] for b in bare) / len(bare) / gib,
        "bare_receive_cpu_s_per_gib": sum(b["receive_cpu_s"] for b in bare) / len(bare) / gib,
        "durable_write_runs_s": floors,
        "durable_write_mib_s": total / MIB / floor_s,
        "durable_ratio_bound": raw_s / floor_s,
        "loads": loads,
        "cpu_ratio": sum(raw_cpu) / (sum(send_cpu) + sum(receive_cpu)),
        "first_bytes": first,
        "second_bytes": second,
        "resume_blob_bytes": size,
        "resume_resent_bytes": resumed - size,
        "chunk_bytes": CHUNK_SIZE,
        **capped,
        **small,
        **fetched,
        **back,
        "frames_back_ratio": back["frames_back_mib_s"] / (total / MIB / raw_s),
    }


def _durable_write_s(path: Path, size: int) -> float:
    """Seconds to write ``size`` bytes into one file and ``fdatasync`` it (as ``dd
    conv=fdatasync``): the disk's durable write rate. Every byte of the TLS transfer must
    reach the disk before its blob is acknowledged, so this is about the least it can take
    (parallel streams may get a little more from the disk than one file does); the raw
    copy's files never reach it (deleted before the kernel writes them back)."""
    os.sync()
    block = os.urandom(MIB)
    started = time.perf_counter()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for _ in range(size // MIB):
            os.write(fd, block)
        os.write(fd, block[: size % MIB])
        os.fdatasync(fd)
    finally:
        os.close(fd)
    elapsed = time.perf_counter() - started
    path.unlink()
    return elapsed


async def _small_files(
    root: Path, remote_tls: TlsContexts, origin_tls: TlsContexts
) -> dict[str, Any]:
    """:data:`SMALL_FILES` files of :data:`SMALL_SIZE` uploaded to a fresh site as forwarding
    does (reported missing), :data:`SMALL_RUNS` times: blobs/s, MiB/s, CPU (both ends) per blob."""
    files = []
    (root / "src").mkdir(parents=True)
    for index in range(SMALL_FILES):
        data = os.urandom(SMALL_SIZE)
        (path := root / "src" / f"{index}.bin").write_bytes(data)
        files.append((path, hashlib.sha256(data).hexdigest()))
    walls, cpus = [], []
    for run in range(SMALL_RUNS):
        os.sync()
        async with remote_site(root / f"site-{run}", remote_tls.files) as site:
            there = await site.cpu_s()
            started, cpu = time.perf_counter(), _cpu_s()
            await upload_all(site.url, origin_tls, files, missing=True)
            walls.append(time.perf_counter() - started)
            cpus.append(_cpu_s() - cpu + await site.cpu_s() - there)
            assert all(site.assets.has(sha) for _, sha in files)
        shutil.rmtree(root / f"site-{run}")
    wall = sum(walls) / SMALL_RUNS
    return {
        "small_files": SMALL_FILES,
        "small_file_bytes": SMALL_SIZE,
        "small_blobs_s": SMALL_FILES / wall,
        "small_mib_s": SMALL_FILES * SMALL_SIZE / MIB / wall,
        "small_cpu_ms_per_blob": sum(cpus) / SMALL_RUNS / SMALL_FILES * 1000,
        "small_cpu_ms_per_blob_runs": [c / SMALL_FILES * 1000 for c in cpus],
    }


async def _capped(
    root: Path, remote_tls: TlsContexts, origin_tls: TlsContexts, files: list[tuple[Path, str]]
) -> dict[str, Any]:
    """A ``max_mbps`` cap on the same upload code: the rate measured against the cap."""
    cap_bytes_s = mbps_to_bytes_per_s(CAP_MBPS)
    budget = int(cap_bytes_s * CAP_SECONDS)
    chosen, size = [], 0
    for path, sha in sorted(files, key=lambda f: f[0].stat().st_size):
        if size + path.stat().st_size > budget:
            break
        chosen.append((path, sha))
        size += path.stat().st_size
    async with remote_site(root, remote_tls.files) as site:
        bucket = TokenBucket(cap_bytes_s)  # empty, as a peer's bucket starts
        measured = await measure(
            "capped", bucket, lambda: upload_all(site.url, origin_tls, chosen, bucket=bucket)
        )
    return {"cap_mbps": CAP_MBPS, **measured}


if __name__ == "__main__":
    import json
    import sys

    from site_agent.app import new_event_loop

    size = int(sys.argv[1]) if len(sys.argv) > 1 else 64 * MIB
    # The agents' own event loop (uvloop where installed), as `python -m bench transfer` runs it.
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        print(json.dumps(runner.run(transfer_run(size, timeout=600)), indent=2))
