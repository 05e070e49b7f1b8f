"""Package probe results kept across render-server starts, valid while the program is.

Probing Blender costs two Blender starts (``--version`` and the OpenImageDenoise
check), about 1.5 s of CPU on a small host, at every render-server start. A
probe's answer depends only on the program it runs, so the output of each
successful probe command is kept in ``$XDG_CACHE_HOME/spillway/package-probes.json``
(``~/.cache`` without it), with the identity of the program file it ran: its
resolved path, device, inode, size, modification and change times. Replacing or
upgrading the program (a package upgrade writes a new file) changes that identity
and the probe runs again. A failed or timed-out probe is never kept, so a
transient failure does not hide a package or feature until the next upgrade.

Several servers on one host share the file: each writes it whole, aside and then
renamed into place, so a reader sees one complete version or the other; an
unreadable file counts as empty.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from spillway.packages.process import run_capture

log = logging.getLogger(__name__)
FILE_NAME = "package-probes.json"


def default_probe_cache() -> Path:
    """``$XDG_CACHE_HOME/spillway/package-probes.json`` (``~/.cache`` without it)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "spillway" / FILE_NAME


def program_identity(program: str) -> list[str | int] | None:
    """What changes when ``program`` (a name on PATH or a path) is replaced; None when
    it cannot be found."""
    found = shutil.which(program)
    if found is None:
        return None
    path = os.path.realpath(found)
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [path, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


class ProbeCache:
    """A :class:`~spillway.packages.process.Capture` that answers a probe command from
    the file while its program is unchanged, and runs it (and keeps a success) otherwise."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.runs = 0
        """Probe commands actually run (not answered from the file)."""
        self._entries = self._load()
        self._changed = False

    def _load(self) -> dict[str, dict[str, object]]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict):
            return {}
        return {k: v for k, v in data.items() if isinstance(v, dict)}

    async def __call__(self, argv: Sequence[str], *, limit_s: float) -> tuple[int, str] | None:
        key = json.dumps(list(argv))
        identity = program_identity(argv[0])
        entry = self._entries.get(key)
        if identity is not None and entry is not None and entry.get("program") == identity:
            output = entry.get("output")
            if isinstance(output, str):
                return 0, output
        self.runs += 1
        result = await run_capture(argv, limit_s=limit_s)
        if identity is not None and result is not None and result[0] == 0:
            self._entries[key] = {"program": identity, "output": result[1]}
            self._changed = True
        return result

    def save(self) -> None:
        """Write the file if a probe ran and succeeded; a failure to write is logged only
        (the next start probes again)."""
        if not self._changed:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".probes-", dir=self.path.parent)
            try:
                with os.fdopen(fd, "w") as out:
                    json.dump(self._entries, out, indent=1, sort_keys=True)
                os.replace(tmp, self.path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        except OSError as exc:
            log.warning("could not keep package probe results in %s: %s", self.path, exc)
            return
        self._changed = False
