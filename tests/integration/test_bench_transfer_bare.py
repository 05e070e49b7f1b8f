"""The transfer benchmark's bare pipeline: the files cross mutual TLS whole and hash-checked
to a receiving process, large ones past the page cache, with none of the protocol."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from bench.transfer_bare import bare_run
from federation.blob_append import DIRECT_MIN_BYTES
from federation.certs import TlsContexts, TlsFiles, init_ca, issue_site_cert


def _sites(tmp_path: Path) -> tuple[TlsContexts, TlsFiles]:
    init_ca(tmp_path / "ca")
    origin = issue_site_cert(tmp_path / "ca", "origin", tmp_path / "origin")
    remote = issue_site_cert(tmp_path / "ca", "remote", tmp_path / "remote")
    return (
        TlsContexts(TlsFiles(ca=origin.ca, cert=origin.cert, key=origin.key)),
        TlsFiles(ca=remote.ca, cert=remote.cert, key=remote.key),
    )


def _files(folder: Path, sizes: list[int]) -> list[tuple[Path, str]]:
    folder.mkdir()
    files = []
    for index, size in enumerate(sizes):
        data = os.urandom(size)
        (path := folder / f"{index}.bin").write_bytes(data)
        files.append((path, hashlib.sha256(data).hexdigest()))
    return files


async def test_every_file_arrives_whole_in_the_receiving_process(tmp_path: Path) -> None:
    origin, remote = _sites(tmp_path)
    files = _files(tmp_path / "src", [0, 1000, 300 * 1024, DIRECT_MIN_BYTES + 5, 5 * 1024**2])

    measured = await bare_run(tmp_path / "got", files, remote, origin)

    got = sorted(hashlib.sha256(p.read_bytes()).hexdigest() for p in (tmp_path / "got").iterdir())
    assert got == sorted(sha for _, sha in files)
    assert measured["s"] > 0 and measured["receive_cpu_s"] > 0


async def test_a_file_that_does_not_hash_as_announced_fails_the_run(tmp_path: Path) -> None:
    origin, remote = _sites(tmp_path)
    [(path, sha)] = _files(tmp_path / "src", [70_000])
    with pytest.raises(RuntimeError, match="bare receiver"):
        await bare_run(tmp_path / "got", [(path, "0" * 64)], remote, origin)
