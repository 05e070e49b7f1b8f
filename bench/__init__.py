"""Spillway benchmarks (run with ``scripts/bench``); not part of the installed packages."""
