"""AgentClient, submit_scene and the CLI's client commands against a tiny real HTTP agent.

The fake agent below serves canned answers shaped like the /api/v1 contract on
127.0.0.1 (real sockets, real aiohttp), so the client's HTTP handling is
exercised end to end without the real site agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import socket
from pathlib import Path

import pytest
from aiohttp import web

from spillway import main as cli
from spillway.client import cli as client_cli
from spillway.client import commands
from spillway.client.http import AgentClient, ClientError, SpillwayClientError
from spillway.client.submission import SubmitOptions, submit_scene, wait_for_job

# A tiny scene of the built-in tracer; the real builtin adapter finds wood.png in it.
SCENE = json.dumps(
    {
        "format": "spillway-scene/1",
        "camera": {"position": [0, 0, 5], "look_at": [0, 0, 0]},
        "objects": [
            {
                "type": "sphere",
                "center": [0, 0, 0],
                "radius": 1,
                "material": {"texture": "wood.png"},
            }
        ],
    }
)
FRAME_BYTES = {1: b"\x89PNG frame one", 2: b"\x89PNG frame two"}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def error(status: int, code: str, message: str, **extra) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message, **extra}}, status=status)


class FakeAgent:
    """Canned /api/v1 answers; a job advances one frame per GET of its detail."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        self.jobs: dict[str, dict] = {}
        self.auth: list[str | None] = []
        self.uploads: list[tuple[str, str]] = []  # (sha256, content type)
        self.submits = 0
        self.waits: list[str | None] = []  # each GET /jobs/{id}'s long-poll wait
        self.drop_blobs_once = False  # simulate a blob vanishing before submit
        self.corrupt_frames = False
        self.slow = asyncio.Event()  # set: /health hangs until release is set
        self.release = asyncio.Event()

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.middlewares.append(self.record_auth)
        r = app.router
        r.add_get("/api/v1/health", self.health)
        r.add_post("/api/v1/blobs/check", self.check)
        r.add_put("/api/v1/blobs/{sha}", self.put_blob)
        r.add_post("/api/v1/jobs", self.submit)
        r.add_get("/api/v1/jobs", self.list_jobs)
        r.add_get("/api/v1/jobs/{id}", self.job)
        r.add_post("/api/v1/jobs/{id}/{action}", self.control)
        r.add_get("/api/v1/jobs/{id}/frames", self.frames)
        r.add_get("/api/v1/jobs/{id}/frames/{frame}", self.frame)
        r.add_get("/api/v1/servers", self.servers)
        r.add_get("/api/v1/peers", self.peers)
        return app

    @web.middleware
    async def record_auth(self, request, handler):
        self.auth.append(request.headers.get("Authorization"))
        return await handler(request)

    async def health(self, request):
        if self.slow.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.release.wait(), 5)
        return web.json_response({"site": "studio", "version": "0.1.0"})

    async def check(self, request):
        body = await request.json()
        return web.json_response({"missing": [h for h in body["sha256"] if h not in self.blobs]})

    async def put_blob(self, request):
        data = await request.read()
        digest = request.match_info["sha"]
        if sha(data) != digest:
            return error(422, "hash_mismatch", f"blob does not hash to {digest}")
        self.blobs[digest] = data
        self.uploads.append((digest, request.headers.get("Content-Type", "")))
        return web.json_response({"sha256": digest, "size": len(data)}, status=201)

    async def submit(self, request):
        body = await request.json()
        self.submits += 1
        if self.drop_blobs_once:
            self.drop_blobs_once = False
            self.blobs.clear()
        missing = [e["sha256"] for e in body["manifest"] if e["sha256"] not in self.blobs]
        if missing:
            return error(422, "missing_assets", "upload these blobs first", missing=missing)
        job_id = f"job{len(self.jobs) + 1}"
        self.jobs[job_id] = {
            "id": job_id,
            "name": body["name"],
            "state": "queued",
            "priority": body["priority"],
            "frames": body["frames"],
            "frame_count": 2,
            "requirement": body["profile"]["package"],
            "placement": "local",
            "created_at": 0.0,
            "finished_at": None,
            "error": "",
            "storage_dir": f"/farm/{job_id}",
            "body": body,
            "progress": {"frames_total": 2, "frames_done": 0, "tasks": {}},
        }
        return web.json_response({"job": self.jobs[job_id]}, status=201)

    async def list_jobs(self, request):
        jobs = list(reversed(self.jobs.values()))
        if "state" in request.query:
            jobs = [j for j in jobs if j["state"] == request.query["state"]]
        return web.json_response({"jobs": jobs[: int(request.query.get("limit", 100))]})

    def _job(self, request) -> dict:
        job_id = request.match_info["id"]
        if job_id not in self.jobs:
            raise web.HTTPNotFound(
                text=json.dumps(
                    {
                        "error": {
                            "code": "not_found",
                            "message": f"no job {job_id}; see `spillway jobs`",
                        }
                    }
                ),
                content_type="application/json",
            )
        return self.jobs[job_id]

    async def job(self, request):
        # Answers at once whatever the wait, as an agent from before long polls did.
        self.waits.append(request.query.get("wait"))
        job = self._job(request)
        progress = job["progress"]
        if job["state"] in ("queued", "running"):
            progress["frames_done"] = min(2, progress["frames_done"] + 1)
            job["state"] = "running"
            if progress["frames_done"] == 2:
                job["state"] = "failed" if job["name"] == "doomed" else "done"
                job["finished_at"] = 3.0
        tasks = [
            {
                "index": 0,
                "frames": "1-2",
                "state": "running",
                "server": "r1",
                "attempt": 1,
                "started_at": 1.0,
                "finished_at": None,
                "error": "",
            }
        ]
        return web.json_response({"job": job, "tasks": tasks, "frames": []})

    async def control(self, request):
        job = self._job(request)
        action = request.match_info["action"]
        if action == "resume" and job["state"] != "paused":
            return error(409, "bad_state", f"job {job['id']} is {job['state']}, not paused")
        job["state"] = {"cancel": "cancelled", "pause": "paused", "retry": "queued"}.get(
            action, "queued"
        )
        return web.json_response({"job": job})

    async def frames(self, request):
        job = self._job(request)
        return web.json_response(
            {
                "frames": [
                    {
                        "frame": n,
                        "name": f"{job['name']}_{n:04d}.png",
                        "sha256": sha(data),
                        "size": len(data),
                        "url": f"/api/v1/jobs/{job['id']}/frames/{n}",
                    }
                    for n, data in FRAME_BYTES.items()
                ]
            }
        )

    async def frame(self, request):
        self._job(request)
        data = FRAME_BYTES[int(request.match_info["frame"])]
        return web.Response(
            body=b"garbage" if self.corrupt_frames else data, content_type="image/png"
        )

    async def servers(self, request):
        server = {
            "id": "s1",
            "name": "r1",
            "status": "idle",
            "slots": 2,
            "free_slots": 2,
            "cores": 8,
            "memory_mb": 16384,
            "packages": {"builtin": "1.0.0"},
            "tags": [],
            "last_heartbeat": 0.0,
        }
        if "job" in request.query:
            server["match"] = {"ok": True, "reasons": []}
        return web.json_response({"servers": [server]})

    async def peers(self, request):
        return web.Response(status=500, text="Internal Server Error")  # not JSON on purpose


@pytest.fixture
async def agent():
    fake = FakeAgent()
    runner = web.AppRunner(fake.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    fake.url = f"http://127.0.0.1:{port}"
    yield fake
    fake.release.set()
    await runner.cleanup()


@pytest.fixture
def refused_url():
    """A URL on a port nothing listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def scene(tmp_path):
    folder = tmp_path / "shot"
    folder.mkdir()
    (folder / "scene.json").write_text(SCENE)
    (folder / "wood.png").write_bytes(b"wood")
    return folder / "scene.json"


# --- AgentClient -------------------------------------------------------------------------


async def test_health_sends_the_bearer_token(agent):
    async with AgentClient(agent.url, token="s3cret") as client:
        assert await client.health() == {"site": "studio", "version": "0.1.0"}
    async with AgentClient(agent.url + "/") as client:
        await client.health()
    assert agent.auth == ["Bearer s3cret", None]


async def test_error_json_becomes_client_error(agent):
    async with AgentClient(agent.url) as client:
        with pytest.raises(ClientError) as err:
            await client.job("nope")
    assert (err.value.code, err.value.status) == ("not_found", 404)
    assert str(err.value) == "no job nope; see `spillway jobs`"
    assert isinstance(err.value, SpillwayClientError)


async def test_error_details_are_kept(agent):
    async with AgentClient(agent.url) as client:
        with pytest.raises(ClientError) as err:
            await client.submit(
                {
                    "name": "x",
                    "manifest": [{"sha256": "ab"}],
                    "priority": 1,
                    "frames": "1",
                    "profile": {"package": "builtin"},
                }
            )
    assert err.value.code == "missing_assets"
    assert err.value.details == {"missing": ["ab"]}


async def test_non_json_error_names_the_status(agent):
    async with AgentClient(agent.url) as client:
        with pytest.raises(ClientError) as err:
            await client.peers()
    assert err.value.status == 500
    assert (
        str(err.value) == "the agent answered HTTP 500 Internal Server Error to GET /api/v1/peers"
    )


async def test_connection_refused_says_what_to_do(refused_url):
    async with AgentClient(refused_url) as client:
        with pytest.raises(ClientError) as err:
            await client.health()
    assert str(err.value) == (
        f"cannot reach the agent at {refused_url}: connection refused; is `spillway agent` "
        "running? (set --agent or SPILLWAY_AGENT)"
    )
    assert err.value.code == "unreachable"


async def test_every_call_has_a_timeout(agent):
    agent.slow.set()
    async with AgentClient(agent.url, timeout_s=0.2) as client:
        with pytest.raises(ClientError, match="did not answer GET /api/v1/health in time") as err:
            await client.health()
    assert err.value.code == "timeout"


async def test_client_must_be_opened(agent):
    with pytest.raises(ClientError, match="async with AgentClient"):
        await AgentClient(agent.url).health()


async def test_blob_check_and_streamed_upload(agent, tmp_path):
    path = tmp_path / "big.bin"
    data = bytes(range(256)) * 10_000
    path.write_bytes(data)
    async with AgentClient(agent.url) as client:
        assert await client.check_blobs([sha(data)]) == [sha(data)]
        assert await client.upload_blob(path, sha(data)) == {"sha256": sha(data), "size": len(data)}
        assert await client.check_blobs([sha(data)]) == []
        assert await client.check_blobs([]) == []
        with pytest.raises(ClientError) as err:
            await client.upload_blob(path, "0" * 64)
    assert agent.uploads == [(sha(data), "application/octet-stream")]
    assert (err.value.status, err.value.code) == (422, "hash_mismatch")


async def test_download_frame_verifies_and_writes_atomically(agent, tmp_path, scene):
    async with AgentClient(agent.url) as client:
        job = (
            await submit_scene(
                client, scene, SubmitOptions(package="builtin", frames="1-2"), scanner=None
            )
        ).job
        dest = tmp_path / "out" / "f1.png"
        assert await client.download_frame(job["id"], 1, dest) == len(FRAME_BYTES[1])
        assert dest.read_bytes() == FRAME_BYTES[1]
        agent.corrupt_frames = True
        with pytest.raises(ClientError, match="arrived corrupted") as err:
            await client.download_frame(
                job["id"], 2, tmp_path / "out" / "f2.png", sha256=sha(FRAME_BYTES[2])
            )
        with pytest.raises(ClientError, match="not rendered yet"):
            await client.download_frame(job["id"], 7, tmp_path / "out" / "f7.png")
    assert err.value.code == "hash_mismatch"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["f1.png"]  # no temp left


async def test_control_servers_and_jobs(agent, scene):
    async with AgentClient(agent.url) as client:
        job = (
            await submit_scene(
                client, scene, SubmitOptions(package="builtin", frames="1-2"), scanner=None
            )
        ).job
        assert (await client.control(job["id"], "pause"))["state"] == "paused"
        assert [j["id"] for j in await client.jobs(state="paused")] == [job["id"]]
        assert await client.jobs(state="done") == []
        with pytest.raises(ClientError, match="unknown job action"):
            await client.control(job["id"], "explode")
        assert "match" in (await client.servers(job=job["id"]))[0]
        assert "match" not in (await client.servers())[0]


async def test_sync_client_download_verifies_and_writes_atomically(agent, tmp_path, scene):
    from spillway.client import Client
    from spillway.client.errors import HashMismatch, NotFound

    def run() -> None:
        with Client(agent.url, token="t0k") as client:
            job = client.submit_scene(
                scene, SubmitOptions(package="builtin", frames="1-2"), scanner=None
            ).job
            frames = client.frames(job.id)
            wanted = [(f, tmp_path / "out" / f"f{f.frame}.png") for f in frames]
            assert client.download_frames(job.id, wanted) == sum(map(len, FRAME_BYTES.values()))
            assert (tmp_path / "out" / "f2.png").read_bytes() == FRAME_BYTES[2]
            agent.corrupt_frames = True
            with pytest.raises(HashMismatch, match="arrived corrupted"):
                client.download_frame(job.id, 1, tmp_path / "bad" / "f1.png")
            with pytest.raises(NotFound, match="not rendered yet"):
                client.download_frame(job.id, 7, tmp_path / "bad" / "f7.png")

    await asyncio.to_thread(run)
    assert list((tmp_path / "bad").iterdir()) == []  # nothing, not even a temp file
    assert set(agent.auth) == {"Bearer t0k"}


# --- submit_scene and wait_for_job ---------------------------------------------------------


class OneDependency:
    async def scan(self, scene: Path) -> list[Path]:
        return [Path("wood.png")]


async def test_submit_uploads_only_missing_blobs(agent, scene):
    options = SubmitOptions(package="builtin", frames="1-2", owner="ana")
    async with AgentClient(agent.url) as client:
        first = await submit_scene(client, scene, options, scanner=OneDependency())
        second = await submit_scene(client, scene, options, scanner=OneDependency())
    assert (first.uploaded_files, first.uploaded_bytes) == (2, len(SCENE) + 4)
    assert (second.uploaded_files, second.uploaded_bytes) == (0, 0)
    body = agent.jobs[first.job["id"]]["body"]
    assert [e["path"] for e in body["manifest"]] == ["scene.json", "wood.png"]
    assert body["scene"] == "scene.json" and body["owner"] == "ana"


async def test_submit_reuploads_when_blobs_vanish_before_the_job_is_created(agent, scene):
    agent.drop_blobs_once = True
    async with AgentClient(agent.url) as client:
        result = await submit_scene(
            client, scene, SubmitOptions(package="builtin", frames="1"), scanner=None
        )
    assert agent.submits == 2
    assert result.uploaded_files == 2  # the scene, twice
    assert result.job["id"] == "job1"


async def test_wait_for_job_reports_every_poll(agent, scene):
    seen = []
    async with AgentClient(agent.url) as client:
        job = (
            await submit_scene(
                client, scene, SubmitOptions(package="builtin", frames="1-2"), scanner=None
            )
        ).job
        final = await wait_for_job(
            client, job["id"], poll_s=0.01, on_update=lambda d: seen.append(d["job"]["state"])
        )
    assert final["state"] == "done"
    assert seen == ["running", "done"]
    assert agent.waits == ["0.01", "0.01"]  # each request long-polls for the interval


async def test_wait_for_job_gives_up_after_an_outage(refused_url):
    async with AgentClient(refused_url) as client:
        with pytest.raises(ClientError, match="cannot reach the agent"):
            await wait_for_job(client, "job1", poll_s=0.01, max_outage_s=0.05)


# --- CLI commands against the fake agent ---------------------------------------------------


async def run_cli(*argv: str) -> int:
    """Run a client command in a thread: the CLI's client blocks, the fake agent runs here."""
    args = cli.build_parser().parse_args(list(argv))
    return await asyncio.to_thread(commands.run_client_command, args)


async def test_cli_submit_prints_the_job_id(agent, scene, capsys):
    assert (
        await run_cli(
            "submit", str(scene), "--package", "builtin", "--frames", "1-2", "--agent", agent.url
        )
        == 0
    )
    out, err = capsys.readouterr()
    assert out == "job1\n"
    assert "uploaded 2 files (" in err  # the builtin scanner found wood.png
    assert [e["path"] for e in agent.jobs["job1"]["body"]["manifest"]] == ["scene.json", "wood.png"]


async def test_cli_submit_wait_exit_status_follows_the_job(agent, scene, capsys):
    ok = await run_cli(
        "submit",
        str(scene),
        "--package",
        "builtin",
        "--frames",
        "1-2",
        "--agent",
        agent.url,
        "--wait",
        "--poll-interval",
        "0.01",
    )
    assert ok == 0
    assert "job job1 done: 2/2 frames" in capsys.readouterr().err
    failed = await run_cli(
        "submit",
        str(scene),
        "--package",
        "builtin",
        "--frames",
        "1-2",
        "--name",
        "doomed",
        "--agent",
        agent.url,
        "--wait",
        "--json",
        "--poll-interval",
        "0.01",
    )
    assert failed == 1
    printed = json.loads(capsys.readouterr().out)
    assert printed["job"]["state"] == "failed" and printed["uploaded"]["files"] == 0


async def test_cli_jobs_job_and_control(agent, scene, capsys):
    await run_cli(
        "submit",
        str(scene),
        "--package",
        "builtin",
        "--frames",
        "1-2",
        "--name",
        "shot",
        "--agent",
        agent.url,
    )
    capsys.readouterr()
    assert await run_cli("jobs", "--agent", agent.url) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split()[:5] == ["job1", "shot", "queued", "50", "0/2"]
    assert await run_cli("job", "job1", "--json", "--agent", agent.url) == 0
    assert json.loads(capsys.readouterr().out)["job"]["id"] == "job1"
    assert await run_cli("job", "job1", "--agent", agent.url) == 0
    assert "storage    /farm/job1" in capsys.readouterr().out
    assert await run_cli("cancel", "job1", "--agent", agent.url) == 0
    assert capsys.readouterr().out == "cancel: job job1 is now cancelled\n"


async def test_cli_download_skips_frames_present_and_replaces_others_only_if_told(
    agent, scene, tmp_path, capsys
):
    await run_cli(
        "submit",
        str(scene),
        "--package",
        "builtin",
        "--frames",
        "1-2",
        "--name",
        "shot",
        "--agent",
        agent.url,
    )
    out_dir = tmp_path / "frames"
    out_dir.mkdir()
    (out_dir / "shot_0001.png").write_bytes(FRAME_BYTES[1])
    (out_dir / "shot_0002.png").write_bytes(b"stale")
    capsys.readouterr()
    with pytest.raises(ClientError, match="1 file already exists with different content"):
        await run_cli("download", "job1", str(out_dir), "--agent", agent.url)
    assert (out_dir / "shot_0002.png").read_bytes() == b"stale"
    assert await run_cli("download", "job1", str(out_dir), "--overwrite", "--agent", agent.url) == 0
    assert capsys.readouterr().out == (
        f"downloaded 1 frames ({len(FRAME_BYTES[2])} B) to {out_dir}; 1 already present\n"
    )
    assert (out_dir / "shot_0002.png").read_bytes() == FRAME_BYTES[2]


async def test_cli_servers_json(agent, capsys):
    assert await run_cli("servers", "--job", "job9", "--json", "--agent", agent.url) == 0
    assert json.loads(capsys.readouterr().out)["servers"][0]["match"]["ok"] is True


def test_main_reports_an_unreachable_agent_without_a_traceback(refused_url, capsys):
    assert cli.main(["jobs", "--agent", refused_url]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"spillway: error: cannot reach the agent at {refused_url}")
    assert "Traceback" not in err


async def test_agent_errors_map_to_exit_statuses(agent, scene):
    with pytest.raises(ClientError) as err:
        await run_cli("job", "nope", "--agent", agent.url)
    assert client_cli._exit_status(err.value) == 2  # 404: the user gave a wrong id
    await run_cli(
        "submit", str(scene), "--package", "builtin", "--frames", "1", "--agent", agent.url
    )
    with pytest.raises(ClientError) as err:
        await run_cli("resume", "job1", "--agent", agent.url)
    assert err.value.status == 409
    assert client_cli._exit_status(err.value) == 1  # a state conflict is a run-time failure
