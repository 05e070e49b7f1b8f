"""Writing downloaded files: a temp file beside the destination, renamed into place whole."""

from __future__ import annotations

import os
from pathlib import Path

from spillway.client.errors import ClientError, FileConflict

__all__ = ["file_mode", "place", "temp_beside"]


def file_mode(header: str | None) -> int:
    """Permission bits from an ``X-File-Mode`` header (octal), or 0o666 when absent or odd."""
    try:
        mode = int(header or "", 8)
    except ValueError:
        return 0o666
    return mode if 0 <= mode <= 0o777 else 0o666


def temp_beside(dest: Path, mode: int) -> tuple[int, str]:
    """Create a temp file in dest's folder (made if needed), so a rename makes it appear whole.

    It is created with ``mode``, which the kernel filters by the umask as for any new file.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(100):
        tmp = dest.parent / f".{dest.name}.{os.urandom(6).hex()}.part"
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode), str(tmp)
        except FileExistsError:
            continue
    raise ClientError(f"cannot create a temporary file in {dest.parent}", code="temp_file")


def place(tmp: Path, dest: Path, *, replace: bool) -> None:
    """Give the finished temp file its name; without ``replace``, never over an existing file."""
    if replace:
        os.replace(tmp, dest)
        return
    try:
        os.link(tmp, dest)  # atomic, and fails if dest exists (the temp name is removed later)
        return
    except FileExistsError:
        pass
    except OSError:  # a file system without hard links: check, then rename
        if not dest.exists() and not dest.is_symlink():
            os.replace(tmp, dest)
            return
    raise FileConflict(
        f"{dest} appeared while it was being downloaded; it was left as it is", code="exists"
    )
