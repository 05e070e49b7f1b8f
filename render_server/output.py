"""A renderer's output: split into lines with bounded memory, kept as a tail and a log to send.

The log is sent to the agent (TaskLog, about once a second), which keeps each
attempt's whole output; the tail (the last lines) goes with the final report.

Renderers print whatever they like: POV-Ray writes its progress as one line of
tens of kilobytes joined by carriage returns, and a crashing program may print
megabytes with no newline at all. Output is therefore read in chunks and split
here, never with a line-limited stream reader, and every line is capped: an
overlong line keeps its *end*, where a renderer's last words are.
"""

from __future__ import annotations

import collections

from spillway.packages.error_line import renderer_error

MAX_LINE_CHARS = 2000  # kept of one line (its end)
TAIL_LINES = 60  # lines kept for the task's final report
MAX_PENDING_CHARS = 256 * 1024  # log text held between two sends; more is dropped and counted


class LineSplitter:
    """Splits a byte stream into text lines, keeping at most ``max_bytes`` of each.

    ``feed`` takes any chunk and returns the lines it completed; ``finish``
    returns the unterminated last line, if any. A line longer than the cap keeps
    its last ``max_bytes`` bytes behind a note of how much was cut.
    """

    def __init__(self, max_bytes: int = MAX_LINE_CHARS) -> None:
        self._max = max_bytes
        self._buf = bytearray()
        self._cut = 0  # bytes dropped from the front of the current line

    def feed(self, chunk: bytes) -> list[str]:
        lines: list[str] = []
        start = 0
        while (end := chunk.find(b"\n", start)) != -1:
            self._append(chunk[start:end])
            lines.append(self._take())
            start = end + 1
        self._append(chunk[start:])
        return lines

    def finish(self) -> list[str]:
        """The last line when the stream did not end with a newline."""
        if not self._buf and not self._cut:
            return []
        return [self._take()]

    def _append(self, part: bytes) -> None:
        self._buf += part
        excess = len(self._buf) - self._max
        if excess > 0:
            del self._buf[:excess]
            self._cut += excess

    def _take(self) -> str:
        text = bytes(self._buf).decode("utf-8", "replace").rstrip()
        if self._cut:
            text = f"[{self._cut} bytes cut] {text}"
        self._buf.clear()
        self._cut = 0
        return text


class OutputLog:
    """What a task keeps of its renderer's output: the tail, and lines not yet sent."""

    def __init__(self) -> None:
        self._tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        self._pending: list[str] = []
        self._pending_chars = 0
        self._dropped = 0
        self._lines = 0
        self._taken = False

    def note(self, line: str) -> None:
        """A line of the render server's own (e.g. the command line), kept and sent like
        output, so the agent's full log shows what was run."""
        self.add(line)

    def add(self, line: str) -> None:
        """A line of the renderer's output."""
        self._tail.append(line)
        self._lines += 1
        if self._pending_chars + len(line) > MAX_PENDING_CHARS:
            self._dropped += 1  # the agent's log is a convenience; memory is bounded
            return
        self._pending.append(line)
        self._pending_chars += len(line) + 1

    @property
    def tail(self) -> str:
        return "\n".join(self._tail)

    def tail_is_whole(self) -> bool:
        """Whether the tail is all of the output and none of it was taken for sending.

        The agent keeps a final report's tail as the log of an attempt that sent
        none, so such a log need not be sent on its own.
        """
        return not self._taken and not self._dropped and self._lines <= TAIL_LINES

    def last_words(self) -> str:
        """The last non-blank line, for an error message."""
        return next((line for line in reversed(self._tail) if line.strip()), "")

    def error_line(self) -> str:
        """The renderer's own error line in the tail ("" if it printed none)."""
        return renderer_error("\n".join(x for x in self._tail if not x.startswith("$ ")))

    def take_pending(self) -> str:
        """The lines not yet sent (newline-terminated), or "" when there are none."""
        if not self._pending and not self._dropped:
            return ""
        self._taken = True
        lines, self._pending, self._pending_chars = self._pending, [], 0
        if self._dropped:
            lines.append(f"[{self._dropped} lines of output dropped: printed faster than sent]")
            self._dropped = 0
        return "\n".join(lines) + "\n"
