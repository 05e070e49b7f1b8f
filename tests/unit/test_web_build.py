"""The monitor's built files (committed under site_agent/web/) match its sources in web/."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def sources_hash(web: Path) -> str:
    """What web/build.mjs records: sha256 over each source's name and bytes, by name."""
    digest = hashlib.sha256()
    names = ["index.html", "package-lock.json"]
    names += [f"src/{p.name}" for p in (web / "src").iterdir() if p.is_file()]
    for name in sorted(names):
        digest.update(f"{name}\n".encode())
        digest.update((web / name).read_bytes())
    return digest.hexdigest()


def test_the_committed_build_is_from_the_current_sources() -> None:
    page = (ROOT / "site_agent" / "web" / "index.html").read_text()
    recorded = re.search(r"built by scripts/build-web from sources ([0-9a-f]{64})", page)
    assert recorded is not None, "site_agent/web/index.html was not made by scripts/build-web"
    assert recorded.group(1) == sources_hash(ROOT / "web"), (
        "site_agent/web/ is older than web/src: run scripts/build-web and commit the result"
    )


def test_the_page_names_the_built_assets() -> None:
    page = (ROOT / "site_agent" / "web" / "index.html").read_text()
    for asset in ("monitor.js", "monitor.css"):
        assert re.search(rf"/web/{asset}\?v=[0-9a-f]{{12}}", page), asset
        assert (ROOT / "site_agent" / "web" / asset).is_file()
