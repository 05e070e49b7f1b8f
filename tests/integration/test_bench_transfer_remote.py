"""The transfer benchmark's receiving processes: the remote site, where blobs uploaded with
the federation upload code land, verified, in its asset store on disk and a cut stream
resumes; and the bare pipeline's receiver, where the files cross mutual TLS whole and
hash-checked with none of the protocol."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from bench.transfer import upload_all
from bench.transfer_bare import bare_run
from bench.transfer_remote import FRAME_BYTES, remote_site
from federation.blob_append import DIRECT_MIN_BYTES
from federation.certs import TlsContexts, TlsFiles, init_ca, issue_site_cert
from federation.transfer import CHUNK_SIZE


def _files(folder: Path, sizes: list[int]) -> list[tuple[Path, str]]:
    folder.mkdir()
    files = []
    for index, size in enumerate(sizes):
        data = os.urandom(size)
        (path := folder / f"{index}.bin").write_bytes(data)
        files.append((path, hashlib.sha256(data).hexdigest()))
    return files


def _sites(tmp_path: Path) -> tuple[TlsContexts, TlsFiles]:
    """A federation CA with an origin and a remote: the origin's contexts, the remote's files."""
    init_ca(tmp_path / "ca")
    origin = issue_site_cert(tmp_path / "ca", "origin", tmp_path / "origin")
    remote = issue_site_cert(tmp_path / "ca", "remote", tmp_path / "remote")
    origin_tls = TlsContexts(TlsFiles(ca=origin.ca, cert=origin.cert, key=origin.key))
    return origin_tls, TlsFiles(ca=remote.ca, cert=remote.cert, key=remote.key)


async def test_blobs_reach_the_remote_process_store_and_a_cut_one_resumes(tmp_path: Path) -> None:
    origin_tls, remote_files = _sites(tmp_path)
    files = _files(tmp_path / "src", [0, 1000, 300 * 1024, 2 * CHUNK_SIZE + 5])

    async with remote_site(tmp_path / "site", remote_files) as site:
        assert site.proc.pid != os.getpid()
        before = await site.cpu_s()
        sent = await upload_all(site.url, origin_tls, files, missing=True)
        assert await site.cpu_s() > before
        assert sent == sum(path.stat().st_size for path, _ in files)
        assert all(site.assets.has(sha) for _, sha in files)
        assert await upload_all(site.url, origin_tls, files) == 0  # all there already
    assert not site.cut_fired
    for path, sha in files:
        assert site.assets.path_for(sha).read_bytes() == path.read_bytes()

    big = files[-1]
    async with remote_site(tmp_path / "cut", remote_files, cut_after=CHUNK_SIZE) as site:
        resent = await upload_all(site.url, origin_tls, [big]) - big[0].stat().st_size
        assert site.assets.has(big[1])
    assert site.cut_fired
    assert 0 <= resent <= CHUNK_SIZE


async def test_frames_come_back_from_the_remote_process_verified(tmp_path: Path) -> None:
    from bench.transfer_capped import frames_back

    origin_tls, remote_files = _sites(tmp_path)

    result = await frames_back(tmp_path / "back", remote_files, origin_tls, 3 * FRAME_BYTES)

    assert result["frames_back_bytes"] == 3 * FRAME_BYTES
    assert result["frames_back_remote_cpu_s_per_gib"] > 0  # the remote's own process worked
    there = sorted((tmp_path / "back" / "remote" / "frames").glob("*/*.exr"))
    here = sorted((tmp_path / "back" / "origin").glob("*/*.exr"))
    assert [p.name for p in here] == [p.name for p in there] and len(here) == 3
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(here, there, strict=True))


async def test_the_bare_pipeline_delivers_every_file_whole(tmp_path: Path) -> None:
    origin_tls, remote_files = _sites(tmp_path)
    files = _files(tmp_path / "src", [0, 1000, 300 * 1024, DIRECT_MIN_BYTES + 5, 5 * CHUNK_SIZE])

    measured = await bare_run(tmp_path / "got", files, remote_files, origin_tls)

    got = sorted(hashlib.sha256(p.read_bytes()).hexdigest() for p in (tmp_path / "got").iterdir())
    assert got == sorted(sha for _, sha in files)
    assert measured["s"] > 0 and measured["receive_cpu_s"] > 0


async def test_a_file_that_does_not_hash_as_announced_fails_the_bare_run(tmp_path: Path) -> None:
    origin_tls, remote_files = _sites(tmp_path)
    [(path, _)] = _files(tmp_path / "src", [70_000])
    with pytest.raises(RuntimeError, match="bare receiver"):
        await bare_run(tmp_path / "got", [(path, "0" * 64)], remote_files, origin_tls)
