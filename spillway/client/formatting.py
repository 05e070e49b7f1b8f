"""Text output of the ``spillway`` CLI: tables, human sizes and times, the --wait progress bar.

Everything here is a pure function of the API's JSON records (plus ``now``), so
it is tested without an agent; :class:`ProgressReporter` is the one stateful piece.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TextIO

from spillway.core.frames import format_frames

__all__ = [
    "ProgressReporter",
    "estimate_eta",
    "format_job",
    "format_jobs",
    "format_peers",
    "format_servers",
    "human_age",
    "human_duration",
    "human_size",
    "job_summary",
    "progress_line",
    "table",
]

FINISHED_STATES = frozenset({"done", "failed", "cancelled"})
_ACTIVE_TASK_STATES = frozenset({"dispatched", "running"})
_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
_CELL_MAX = 40


# --- primitives ------------------------------------------------------------------------


def human_size(size: float | None) -> str:
    """``1536`` -> ``1.5 KiB``; None -> ``-``."""
    if size is None:
        return "-"
    value = float(size)
    for unit in _UNITS:
        if abs(value) < 1024 or unit == _UNITS[-1]:
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def human_duration(seconds: float | None) -> str:
    """``14`` -> ``0:14``, ``3723`` -> ``1:02:03``, two days -> ``2d 0:00:00``; None -> ``-``."""
    if seconds is None:
        return "-"
    total = max(0, round(seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}:{minutes:02d}:{secs:02d}"
    if hours:
        return f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{minutes}:{secs:02d}"


def human_age(timestamp: float | None, now: float) -> str:
    """How long ago an epoch timestamp was: ``5s ago``, ``3m ago``, ``2h ago``, ``4d ago``."""
    if timestamp is None:
        return "-"
    delta = now - float(timestamp)
    if delta < 1:
        return "just now"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if delta >= size:
            return f"{int(delta // size)}{unit} ago"
    return f"{int(delta)}s ago"


def truncate(text: str, width: int) -> str:
    """Cut ``text`` to ``width`` characters, marking the cut with an ellipsis."""
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


def table(
    headers: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    right: Iterable[int] = (),
    max_width: int = _CELL_MAX,
) -> str:
    """A fixed-width table; columns in ``right`` are right-aligned; the last column is never cut."""
    right_cols = set(right)
    cells = [[str(h) for h in headers]]
    for row in rows:
        text = ["-" if v is None or v == "" else str(v) for v in row]
        cells.append([truncate(t, max_width) for t in text[:-1]] + text[-1:])
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for row in cells:
        parts = [
            cell.rjust(widths[i]) if i in right_cols else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)


def _compact(mapping: Mapping[str, Any] | None) -> str:
    if not mapping:
        return "-"
    return ", ".join(f"{k} {v}" for k, v in sorted(mapping.items()))


# --- jobs ------------------------------------------------------------------------------


def _progress(job: Mapping[str, Any]) -> tuple[int, int]:
    progress = job.get("progress") or {}
    total = progress.get("frames_total", job.get("frame_count", 0)) or 0
    return int(progress.get("frames_done", 0) or 0), int(total)


def _requirement(job: Mapping[str, Any]) -> str:
    profile = job.get("profile") or {}
    base = job.get("requirement") or f"{profile.get('package', '')}{profile.get('version', '')}"
    needs = profile.get("features") or []
    if not needs:
        return str(base)
    # Only here: the catalog's package loads `packaging`, which listing jobs does not need.
    from spillway.packages.features import describe_feature

    return f"{base} with {', '.join(describe_feature(str(f)) for f in needs)}"


def _placement(job: Mapping[str, Any]) -> str:
    placement = str(job.get("placement") or "local")
    if placement == "local" and job.get("origin_job_id"):
        return f"from {job.get('origin_site')}"  # accepted from a peer, rendered here
    if job.get("part_of"):
        return f"→ {placement}, part of {job['part_of']}"
    if job.get("split"):
        return f"{placement}, split"
    return placement if placement == "local" else f"→ {placement}"


def format_jobs(jobs: Sequence[Mapping[str, Any]], now: float) -> str:
    """The ``spillway jobs`` table."""
    if not jobs:
        return "no jobs"
    rows = []
    for job in jobs:
        done, total = _progress(job)
        rows.append(
            [
                job.get("id"),
                job.get("name"),
                job.get("state"),
                job.get("priority"),
                f"{done}/{total}",
                _requirement(job),
                _placement(job),
                human_age(job.get("created_at"), now),
            ]
        )
    headers = ["ID", "NAME", "STATE", "PRIORITY", "FRAMES", "PACKAGE", "PLACEMENT", "AGE"]
    return table(headers, rows, right=(3, 4))


def _task_duration(task: Mapping[str, Any], now: float) -> str:
    started = task.get("started_at")
    if started is None:
        return "-"
    return human_duration((task.get("finished_at") or now) - started)


def _one_line(text: Any) -> str:
    return " ".join(str(text or "").split())


def frame_summary(frames: Sequence[Mapping[str, Any]]) -> str:
    """``frames: 12 done (1-12), 2 running (13-14), 10 waiting (15-24)``."""
    if not frames:
        return "frames: none"
    by_state: dict[str, list[int]] = {}
    for frame in frames:
        by_state.setdefault(str(frame.get("state")), []).append(int(frame["frame"]))
    order = ["done", "running", "dispatched", "waiting", "failed"]
    states = [s for s in order if s in by_state] + sorted(set(by_state) - set(order))
    parts = [f"{len(by_state[s])} {s} ({truncate(format_frames(by_state[s]), 60)})" for s in states]
    return f"frames: {', '.join(parts)}; {len(frames)} total"


def _overrides(job: Mapping[str, Any]) -> str:
    """Settings the submitter forced over the scene's own (``resolution 480x270, samples 16``);
    everything not listed renders as the scene says."""
    settings = job.get("settings") or {}
    engine = (job.get("profile") or {}).get("engine")
    parts = []
    if settings.get("width") and settings.get("height"):
        parts.append(f"resolution {settings['width']}x{settings['height']}")
    if engine:
        parts.append(f"engine {engine}")
    if settings.get("samples"):
        parts.append(f"samples {settings['samples']}")
    if settings.get("denoise") is False:
        parts.append("no denoising")
    return ", ".join(parts)


def format_job(detail: Mapping[str, Any], now: float) -> str:
    """The ``spillway job ID`` view: header, task table, frame summary."""
    job = detail.get("job") or {}
    done, total = _progress(job)
    placement = str(job.get("placement") or "local")
    if job.get("remote_job_id"):
        placement += f" (remote job {job['remote_job_id']})"
    elif placement == "local" and job.get("origin_job_id"):
        placement = f"from {job.get('origin_site')} (its job {job['origin_job_id']})"
    if job.get("placement_reason"):
        placement += f" — {job['placement_reason']}"
    header = [
        ("job", f"{job.get('id')}  {job.get('name', '')}"),
        ("state", f"{job.get('state')}  {done}/{total} frames  priority {job.get('priority')}"),
        ("requires", _requirement(job)),
        ("placement", placement),
        ("owner", f"{job.get('owner', '-')} at {job.get('origin_site', '-')}"),
        ("created", human_age(job.get("created_at"), now)),
        ("storage", job.get("storage_dir") or "-"),
    ]
    overrides = _overrides(job)
    if overrides:
        header.append(("overrides", overrides))
    if job.get("why_waiting"):
        header.append(("waiting", str(job["why_waiting"])))
    header += [("reclaimed", _reclaimed(r)) for r in job.get("reclaimed") or []]
    if job.get("error"):
        # On an unfinished job it is a problem the job waits out (e.g. storage full).
        label = "error" if job.get("state") in FINISHED_STATES else "notice"
        header.append((label, _one_line(job["error"])))
    lines = [f"{key:<10} {value}" for key, value in header]
    tasks = detail.get("tasks") or []
    if tasks:
        rows = [
            [
                t.get("index"),
                t.get("frames"),
                t.get("state"),
                t.get("server"),
                t.get("attempt"),
                _task_duration(t, now),
                _one_line(t.get("error")),
            ]
            for t in tasks
        ]
        lines += [
            "",
            table(
                ["#", "FRAMES", "STATE", "SERVER", "ATTEMPT", "TIME", "ERROR"],
                rows,
                right=(0, 4, 5),
            ),
        ]
    lines += ["", frame_summary(detail.get("frames") or [])]
    return "\n".join(lines)


def _reclaimed(reclaim: Mapping[str, Any]) -> str:
    """One chunk-reclaim of a split job's part, e.g. ``frames 21-24 from facility (part p1)``."""
    where = f"from {reclaim.get('peer')} (part {reclaim.get('part')})"
    if reclaim.get("state") == "asked":
        return f"{reclaim.get('chunks_asked')} chunk(s) asked back {where}"
    if not reclaim.get("chunks"):
        return f"none of {reclaim.get('chunks_asked')} chunk(s) {where}: started there"
    return f"frames {reclaim.get('frames')} {where}"


def job_summary(job: Mapping[str, Any]) -> str:
    """One line for the end of ``submit --wait``."""
    done, total = _progress(job)
    state = job.get("state")
    took = ""
    if job.get("finished_at") and job.get("created_at"):
        took = f" in {human_duration(job['finished_at'] - job['created_at'])}"
    line = f"job {job.get('id')} {state}: {done}/{total} frames{took}"
    if state == "done" and job.get("storage_dir"):
        return f"{line}; frames in {job['storage_dir']}"
    if job.get("error"):
        line += f"; {_one_line(job['error'])}"
    if state != "done":
        line += f"; see `spillway job {job.get('id')}`"
    return line


# --- servers and peers -----------------------------------------------------------------


def format_servers(servers: Sequence[Mapping[str, Any]], now: float) -> str:
    """The ``spillway servers`` table; adds MATCH and REASONS when servers carry ``match``."""
    if not servers:
        return "no render servers connected"
    with_match = any("match" in s for s in servers)
    rows = []
    for s in servers:
        row = [
            s.get("name"),
            s.get("status"),
            f"{s.get('free_slots', 0)}/{s.get('slots', 0)}",
            s.get("cores"),
            human_size((s.get("memory_mb") or 0) * 1024 * 1024) if s.get("memory_mb") else "-",
            _compact(s.get("packages")),
            ",".join(s.get("tags") or []),
            human_age(s.get("last_heartbeat"), now),
        ]
        if with_match:
            match = s.get("match") or {}
            row += ["yes" if match.get("ok") else "no", "; ".join(match.get("reasons") or [])]
        rows.append(row)
    headers = ["NAME", "STATUS", "SLOTS", "CORES", "MEM", "PACKAGES", "TAGS", "HEARTBEAT"]
    if with_match:
        headers += ["MATCH", "REASONS"]
    return table(headers, rows, right=(2, 3, 4), max_width=64)


def format_peers(peers: Sequence[Mapping[str, Any]], now: float) -> str:
    """The ``spillway peers`` table."""
    if not peers:
        return "no peers configured"
    rows = [
        [
            p.get("name"),
            p.get("state"),
            p.get("url"),
            human_age(p.get("last_seen"), now),
            _compact(_capacity_shown(p.get("capacity"))),
            _peer_terms(p),
        ]
        for p in peers
    ]
    text = table(["NAME", "STATE", "URL", "LAST SEEN", "CAPACITY", "TERMS"], rows)
    notes = [_refusal_line(p, now) for p in peers if p.get("refused")]
    return "\n".join([text, *notes])


def _capacity_shown(capacity: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """The capacity as placement counts it (``advertised_free_slots`` is in the note)."""
    if not capacity:
        return capacity
    return {k: v for k, v in capacity.items() if k != "advertised_free_slots"}


def _refusal_line(peer: Mapping[str, Any], now: float) -> str:
    """``facility-a: refused job j1: priority 80 is above the cap 50, 12s ago; no free slot
    until its next advert (it advertised 2)``."""
    refused = peer["refused"]
    advertised = (peer.get("capacity") or {}).get("advertised_free_slots")
    said = "" if advertised is None else f" (it advertised {advertised})"
    return (
        f"{peer.get('name')}: {refused.get('note')}, {human_age(refused.get('at'), now)}; "
        f"no free slot until its next advert{said}"
    )


_POLICY_DEFAULTS = {"own_first": True, "max_hops": 1}


def _peer_terms(peer: Mapping[str, Any]) -> str:
    """Placement preference/cost and the acceptance policy, only where not the default."""
    terms = {k: peer.get(k) for k in ("preference", "cost") if peer.get(k)}
    for key, value in (peer.get("policy") or {}).items():
        if value is not None and value != _POLICY_DEFAULTS.get(key):
            terms[key] = ",".join(value) if isinstance(value, list) else value
    return _compact(terms)


# --- progress --------------------------------------------------------------------------


def estimate_eta(start: tuple[float, int], now: float, done: int, total: int) -> float | None:
    """Seconds left at the rate seen since ``start = (time, frames done)``; None if unknown."""
    t0, done0 = start
    if done >= total:
        return 0.0 if total else None
    if done <= done0 or now <= t0:
        return None
    rate = (done - done0) / (now - t0)
    return (total - done) / rate


def active_servers(detail: Mapping[str, Any]) -> int:
    """How many distinct servers hold a dispatched or running task of the job."""
    return len(
        {
            t.get("server")
            for t in detail.get("tasks") or []
            if t.get("state") in _ACTIVE_TASK_STATES and t.get("server")
        }
    )


def progress_line(job: Mapping[str, Any], servers: int, eta: float | None, width: int = 20) -> str:
    """``[##########----------]  12/24 frames  running  2 servers  eta 0:14``."""
    done, total = _progress(job)
    filled = min(width, (width * done) // total) if total else 0
    bar = "#" * filled + "-" * (width - filled)
    noun = "server" if servers == 1 else "servers"
    line = f"[{bar}]  {done}/{total} frames  {job.get('state')}  {servers} {noun}"
    if eta is not None and job.get("state") not in FINISHED_STATES:
        line += f"  eta {human_duration(eta)}"
    if job.get("why_waiting"):
        line += f"  ({_one_line(job['why_waiting'])})"
    return line


class ProgressReporter:
    """Draws the ``--wait`` progress on a stream (stderr).

    On a terminal the line is redrawn in place; otherwise (logs, CI) a line is
    written when the job's state changes, and at most every ``interval_s`` when
    only its progress changed, so a long job does not flood the log.
    """

    def __init__(
        self,
        stream: TextIO,
        *,
        tty: bool | None = None,
        interval_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream = stream
        self._tty = stream.isatty() if tty is None else tty
        self._interval = interval_s
        self._clock = clock
        self._start: tuple[float, int] | None = None
        self._last_key: tuple[Any, ...] | None = None
        self._last_state: Any = None
        self._last_write = float("-inf")
        self._drawn = False

    def update(self, detail: Mapping[str, Any]) -> None:
        """Show the state of ``detail`` (the ``GET /jobs/{id}`` reply)."""
        job = detail.get("job") or {}
        now = self._clock()
        done, total = _progress(job)
        if self._start is None:
            self._start = (now, done)
        servers = active_servers(detail)
        line = progress_line(job, servers, estimate_eta(self._start, now, done, total))
        if self._tty:
            self._stream.write("\r" + line + "\x1b[K")
            self._stream.flush()
            self._drawn = True
            return
        key = (job.get("state"), done, total, servers, job.get("why_waiting"))
        state_changed = job.get("state") != self._last_state
        due = now - self._last_write >= self._interval
        if state_changed or (key != self._last_key and due):
            self._stream.write(line + "\n")
            self._stream.flush()
            self._last_key, self._last_state, self._last_write = key, job.get("state"), now

    def close(self) -> None:
        """End the redrawn line so the next output starts on its own line."""
        if self._tty and self._drawn:
            self._stream.write("\n")
            self._stream.flush()
            self._drawn = False
