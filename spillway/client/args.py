"""Argument types of the ``spillway`` command: each checks one input at the boundary."""

from __future__ import annotations

import argparse
import os
import re
from typing import Any, NoReturn

from spillway.core.frames import FrameSpecError, parse_frames

DEFAULT_AGENT = "http://127.0.0.1:8700"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]*")


class UsageError(Exception):
    """The command line cannot be used as given."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


class _Formatter(argparse.HelpFormatter):
    """argparse's formatter, told the terminal width so it need not import shutil for it.

    Every ``add_argument`` makes one; shutil (with bz2 and lzma) was a tenth of the
    command's start-up.
    """

    def __init__(self, prog: str) -> None:
        try:
            columns = int(os.environ.get("COLUMNS", "")) or os.get_terminal_size().columns
        except (ValueError, OSError):
            columns = 80
        super().__init__(prog, width=max(columns, 40) - 2)


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        raise UsageError(message, f"see `{self.prog} --help`")


# --- argument types (validation at the boundary) --------------------------------------


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be a whole number of at least 1, e.g. 4")
    return value


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a whole number of 0 or more, e.g. 50")
    return value


def positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a number of seconds above 0, e.g. 600")
    return value


def resolution(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not match or not all(1 <= int(v) <= 16384 for v in match.groups()):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a resolution; use WIDTHxHEIGHT with each side 1 to 16384, e.g. 1920x1080"
        )
    return int(match.group(1)), int(match.group(2))


def frame_spec(text: str) -> str:
    try:
        parse_frames(text)
    except FrameSpecError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text.strip()


def package_spec(text: str) -> str:
    from spillway.client.submission import SubmissionError, parse_package_spec

    try:
        parse_package_spec(text)
    except SubmissionError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text.strip()


def tag_list(text: str) -> list[str]:
    tags = [t.strip() for t in text.split(",") if t.strip()]
    bad = [t for t in tags if not _NAME.fullmatch(t)]
    if bad or not tags:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a tag list; use comma-separated names like gpu,linux"
        )
    return tags


def job_id_list(text: str) -> list[str]:
    """``--after a1b2c3,d4e5f6``: job ids separated by commas."""
    ids = [t.strip() for t in text.split(",") if t.strip()]
    bad = [t for t in ids if not _NAME.fullmatch(t)]
    if bad or not ids:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a list of job ids; use ids as `spillway jobs` shows them, "
            "separated by commas, e.g. 3f2a9c1b7d4e,8e1d0c2b9a7f"
        )
    return ids


def plain_name(text: str) -> str:
    if not _NAME.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a valid name; use letters, digits, '.', '_', ':' or '-'"
        )
    return text


def agent_url(text: str) -> str:
    if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an agent URL; use a URL like {DEFAULT_AGENT}"
        )
    return text.rstrip("/")
