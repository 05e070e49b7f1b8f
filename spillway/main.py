"""The composition root: the ``spillway`` console script.

It decides which parts a process runs: the client commands (always), and the
process commands (agent, render-server, certs, demo) that load the site agent,
federation or render server only when they run.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from spillway.client import cli
from spillway.processes import add_process_commands

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The full ``spillway`` argument parser: client and process commands."""
    return cli.build_parser(extra=add_process_commands)


def main(argv: Sequence[str] | None = None) -> int:
    """The ``spillway`` console entry point; returns the process exit status."""
    return cli.main(argv, extra=add_process_commands)
