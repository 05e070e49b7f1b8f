"""The renderer's own error line in its output, shown to the user as a task's error.

Shared by the render server (a failed attempt's error) and the agent (a job that
can run nowhere names the last renderer error).
"""

from __future__ import annotations

import re

__all__ = ["renderer_error"]

_ERROR_LINE = re.compile(r"(?i)(line \d+: )?[\w ]*\berror\b.*")
_NOT_SURE = re.compile(r"(?i)(line \d+: )?possible\b")
"""POV-Ray's "Possible Parse Error" is a warning that its real error follows."""
MAX_CHARS = 300


def renderer_error(output: str) -> str:
    """The renderer's first error line in ``output`` ("" if none), with its wrapped
    continuation lines joined (POV-Ray wraps at 80 columns, indenting the rest)."""
    lines = output.splitlines()
    for i, line in enumerate(lines):
        found = _ERROR_LINE.search(line)
        if found is None or _NOT_SURE.match(found.group(0)):
            continue
        text = line
        for more in lines[i + 1 :]:
            if not more.startswith(" ") or not more.strip():
                break
            text += " " + more.strip()
        found = _ERROR_LINE.search(text)
        return found.group(0).strip()[:MAX_CHARS] if found else ""
    return ""
