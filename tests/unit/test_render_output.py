"""Splitting a renderer's output into bounded lines."""

from __future__ import annotations

from render_server.output import MAX_PENDING_CHARS, LineSplitter, OutputLog


def test_lines_split_across_chunks_and_the_unterminated_last_line_is_kept() -> None:
    s = LineSplitter()
    assert s.feed(b"frame 1 do") == []
    assert s.feed(b"ne\r\nframe 2 done\nhalf") == ["frame 1 done", "frame 2 done"]
    assert s.feed(b"\n\n") == ["half", ""]
    assert s.finish() == []
    s.feed(b"no newline at the end")
    assert s.finish() == ["no newline at the end"]


def test_a_long_line_keeps_its_end_behind_a_note_of_what_was_cut() -> None:
    s = LineSplitter(max_bytes=10)
    assert s.feed(b"x" * 100_000) == []
    assert s.feed(b"x" * 5 + b"0123456789\nnext") == ["[100005 bytes cut] 0123456789"]
    assert s.finish() == ["next"]


def test_a_utf8_character_split_between_chunks_decodes_whole() -> None:
    s = LineSplitter()
    data = "café ✓\n".encode()
    out: list[str] = []
    for i in range(len(data)):
        out += s.feed(data[i : i + 1])
    assert out == ["café ✓"]


def test_the_unsent_log_is_bounded_and_says_how_much_it_dropped() -> None:
    log = OutputLog()
    log.note("$ render")
    line = "y" * 1000
    for _ in range(2 * MAX_PENDING_CHARS // 1000):
        log.add(line)
    text = log.take_pending()
    assert len(text) <= MAX_PENDING_CHARS + 200
    assert "lines of output dropped" in text
    assert text.startswith("$ render\n"), "a note is sent as log too: the log shows the command"
    assert log.take_pending() == ""
    log.add("")
    log.add("last words")
    log.add("   ")
    assert log.last_words() == "last words"
