"""`spillway download` and quiet broken pipes, against a tiny real HTTP agent.

The fake agent serves frames shaped like the /api/v1 contract on 127.0.0.1
(real sockets, real aiohttp); each frame can be made to answer as an agent does
for a deleted or damaged stored file, or (like an agent that does not check)
with the wrong bytes.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import stat
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from aiohttp import web

from spillway import main as cli

FRAMES = {n: f"\x89PNG frame {n}".encode() for n in range(1, 5)}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class FrameAgent:
    """Jobs 'a' and 'b' share the name 'scene' (so their frames share file names)."""

    def __init__(self) -> None:
        self.content = {"a": dict(FRAMES), "b": {n: d + b" of b" for n, d in FRAMES.items()}}
        self.answer: dict[int, str] = {}  # frame -> "missing" | "corrupt" | "wrong_bytes"
        self.mode: str | None = "0644"
        self.served: list[tuple[str, int]] = []
        self.on_serve: Callable[[int], object] = lambda frame: None
        self.url = ""

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/api/v1/jobs", self.jobs)
        app.router.add_get("/api/v1/jobs/{id}/frames", self.frames)
        app.router.add_get("/api/v1/jobs/{id}/frames/{frame}", self.frame)
        return app

    async def jobs(self, request: web.Request) -> web.Response:
        jobs = [
            {"id": job_id, "name": "scene", "state": "done", "frame_count": 4, "priority": 50}
            for job_id in sorted(self.content)
        ]
        return web.json_response({"jobs": jobs})

    async def frames(self, request: web.Request) -> web.Response:
        job_id = request.match_info["id"]
        listed = [
            {"frame": n, "name": f"scene_{n:04d}.png", "sha256": sha(data), "size": len(data)}
            for n, data in self.content[job_id].items()
        ]
        return web.json_response({"frames": listed})

    async def frame(self, request: web.Request) -> web.StreamResponse:
        job_id, number = request.match_info["id"], int(request.match_info["frame"])
        self.served.append((job_id, number))
        self.on_serve(number)
        answer = self.answer.get(number)
        if answer == "missing":
            return _error(404, "frame_missing", f"frame {number} is missing from storage")
        if answer == "corrupt":
            return _error(409, "frame_corrupt", f"frame {number} is damaged in storage")
        data = self.content[job_id][number]
        headers = {"X-File-Mode": self.mode} if self.mode else {}
        body = data[:-1] + b"?" if answer == "wrong_bytes" else data
        return web.Response(body=body, headers=headers, content_type="image/png")


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


@pytest.fixture
async def agent() -> AsyncIterator[FrameAgent]:
    fake = FrameAgent()
    runner = web.AppRunner(fake.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    fake.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield fake
    await runner.cleanup()


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


async def download(agent: FrameAgent, job_id: str, folder: Path, *extra: str) -> int:
    """Run ``spillway download`` through ``main`` (exit statuses and messages included)."""
    argv = ["download", job_id, str(folder), "--agent", agent.url, *extra]
    return await asyncio.to_thread(cli.main, argv)


async def test_a_second_job_with_the_same_name_does_not_replace_the_first(
    agent: FrameAgent, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "frames"
    assert await download(agent, "a", folder) == 0
    capsys.readouterr()

    assert await download(agent, "b", folder) == 1

    err = capsys.readouterr().err
    assert "4 files already exist with different content" in err
    assert "nothing was downloaded" in err and "--overwrite" in err
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == {
        f"scene_{n:04d}.png": data for n, data in FRAMES.items()
    }, "the first job's frames are intact and no temp file is left"
    assert [s for s in agent.served if s[0] == "b"] == []

    assert await download(agent, "b", folder, "--overwrite") == 0
    assert (folder / "scene_0001.png").read_bytes() == agent.content["b"][1]


async def test_a_file_that_appears_during_the_download_is_not_replaced(
    agent: FrameAgent, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()  # frames download several at once: frame 2 may be served first
    other = folder / "scene_0002.png"
    agent.on_serve = lambda n: other.write_bytes(b"another process") if n == 2 else None

    assert await download(agent, "a", folder) == 1

    assert "appeared while it was being downloaded" in capsys.readouterr().err
    assert other.read_bytes() == b"another process"
    # Frames download several at once, so the others may have finished meanwhile: each
    # file there is a whole, verified frame, and no temp file is left.
    present = {p.name: p.read_bytes() for p in folder.iterdir() if p != other}
    assert "scene_0001.png" in present
    assert present == {name: FRAMES[int(name[6:10])] for name in present}


async def test_frames_already_present_are_kept_and_not_fetched(
    agent: FrameAgent, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    (folder / "scene_0001.png").write_bytes(FRAMES[1])

    assert await download(agent, "a", folder) == 0

    assert capsys.readouterr().out.endswith("; 1 already present\n")
    assert ("a", 1) not in agent.served
    assert sorted(p.name for p in folder.iterdir()) == [f"scene_{n:04d}.png" for n in FRAMES]


async def test_a_folder_in_the_way_is_refused_even_with_overwrite(
    agent: FrameAgent, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "frames"
    (folder / "scene_0002.png").mkdir(parents=True)

    assert await download(agent, "a", folder, "--overwrite") == 1

    assert "not a file" in capsys.readouterr().err
    assert (folder / "scene_0002.png").is_dir()


@pytest.mark.usefixtures("umask_022")
@pytest.mark.parametrize(("served", "expected"), [("0644", 0o644), ("0664", 0o644), (None, 0o644)])
async def test_downloaded_frames_keep_the_stored_permissions(
    agent: FrameAgent, tmp_path: Path, served: str | None, expected: int
) -> None:
    agent.mode = served

    assert await download(agent, "a", tmp_path / "frames") == 0

    modes = {stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "frames").iterdir()}
    assert modes == {expected}


async def test_a_restrictive_stored_mode_is_kept(agent: FrameAgent, tmp_path: Path) -> None:
    agent.mode = "0640"
    assert await download(agent, "a", tmp_path / "frames") == 0
    modes = {stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "frames").iterdir()}
    assert modes == {0o640 & ~_umask()}


async def test_bad_frames_are_skipped_reported_and_fail_the_command(
    agent: FrameAgent, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    agent.answer = {1: "corrupt", 2: "missing", 3: "wrong_bytes"}
    folder = tmp_path / "frames"

    assert await download(agent, "a", folder) == 1

    out, err = capsys.readouterr()
    assert out.startswith("downloaded 1 frames") and "3 could not be downloaded" in out
    assert "frame 1: damaged in storage at the agent" in err
    assert "frame 2: missing from storage at the agent" in err
    assert "frame 3: arrived corrupted" in err
    assert "spillway retry a --frames 1,2,3" in err
    assert [p.name for p in folder.iterdir()] == ["scene_0004.png"], "no partial or temp files"
    assert (folder / "scene_0004.png").read_bytes() == FRAMES[4]

    agent.answer = {}  # re-rendered: a second download fetches only what is missing
    agent.served.clear()
    assert await download(agent, "a", folder) == 0
    assert sorted(n for _, n in agent.served) == [1, 2, 3]


async def test_an_unreachable_agent_still_stops_the_download(tmp_path: Path) -> None:
    status = await asyncio.to_thread(
        cli.main, ["download", "a", str(tmp_path), "--agent", "http://127.0.0.1:9"]
    )
    assert status == 1


class _ClosedPipe(io.TextIOBase):
    """A stdout whose reader has gone, as after ``| head -1``."""

    def write(self, s: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self) -> None:
        raise BrokenPipeError(32, "Broken pipe")


async def test_a_closed_stdout_ends_quietly(
    agent: FrameAgent, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdout", _ClosedPipe())

    status = await asyncio.to_thread(cli.main, ["jobs", "--agent", agent.url])

    assert status == 141
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("command", [["jobs"], ["jobs", "--json"], ["download", "a"]])
async def test_a_real_closed_pipe_ends_quietly(
    agent: FrameAgent, tmp_path: Path, command: list[str]
) -> None:
    """``spillway jobs | head -1`` where head has already gone: no message, SIGPIPE status."""
    argv = [*command, *([str(tmp_path / "out")] if command[0] == "download" else [])]
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before anything is written
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "spillway",
            *argv,
            "--agent",
            agent.url,
            stdout=write_end,
            stderr=asyncio.subprocess.PIPE,
        )
    finally:
        os.close(write_end)
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert err.decode() == ""
    assert proc.returncode == 141


def _umask() -> int:
    old = os.umask(0)
    os.umask(old)
    return old
