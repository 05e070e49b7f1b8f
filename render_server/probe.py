"""What this render host is: hardware, installed render packages and their optional features."""

from __future__ import annotations

import asyncio
import os
import platform
import shutil
import socket
from dataclasses import dataclass, field
from pathlib import Path

from .packages.base import Capture, FeatureProbe, registry, run_capture


@dataclass(frozen=True, slots=True, kw_only=True)
class HostInfo:
    host: str
    cores: int
    memory_mb: int
    gpus: list[str] = field(default_factory=list)
    os: str = ""
    cpu_model: str = ""
    packages: dict[str, str] = field(default_factory=dict)
    features: list[str] = field(default_factory=list)
    """Feature tags of the installed packages (``blender:oidn``), reported among the tags."""


def _memory_mb() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


async def _gpus() -> list[str]:
    if shutil.which("nvidia-smi") is None:
        return []
    result = await run_capture(
        ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], limit_s=10
    )
    if result is None or result[0] != 0:
        return []
    return [line.strip() for line in result[1].splitlines() if line.strip()]


async def probe_packages(
    only: set[str] | None = None, capture: Capture = run_capture
) -> dict[str, str]:
    """Versions of the installed render packages, probed concurrently."""
    adapters = [a for name, a in registry().items() if only is None or name in only]
    versions = await asyncio.gather(*(a.probe(capture) for a in adapters))
    return {a.name: v for a, v in zip(adapters, versions, strict=True) if v}


async def probe_features(only: set[str] | None = None, capture: Capture = run_capture) -> list[str]:
    """Feature tags of the installed render packages (``blender:oidn``), probed concurrently.

    Probed once at start, like the versions (and alongside them: an absent package
    reports no feature), since a server's installation does not change under it.
    """
    probes = [
        adapter
        for name, adapter in registry().items()
        if (only is None or name in only) and isinstance(adapter, FeatureProbe)
    ]
    found = await asyncio.gather(*(p.probe_features(capture) for p in probes))
    return sorted({tag for tags in found for tag in tags})


async def probe_host(
    *, packages: set[str] | None = None, capture: Capture = run_capture
) -> HostInfo:
    """This host's hardware and render packages; package probes run through ``capture``
    (a :class:`~render_server.probe_cache.ProbeCache` answers them from earlier starts).
    GPUs are asked every time: a card can come or go while the driver stays the same."""
    gpus, found, features = await asyncio.gather(
        _gpus(), probe_packages(packages, capture), probe_features(packages, capture)
    )
    return HostInfo(
        host=socket.gethostname(),
        cores=os.cpu_count() or 1,
        memory_mb=_memory_mb(),
        gpus=gpus,
        os=f"{platform.system()} {platform.release()}",
        cpu_model=_cpu_model(),
        packages=found,
        features=features,
    )
