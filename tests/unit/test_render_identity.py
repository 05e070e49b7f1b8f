"""The render server's key file: made once, whole, private; reused after."""

from __future__ import annotations

import stat
import threading
from pathlib import Path

import pytest

from render_server.identity import IdentityError, load_or_create_key


def test_the_key_is_made_once_private_and_reused(tmp_path: Path) -> None:
    state = tmp_path / "state"
    key = load_or_create_key(state)
    assert len(key) >= 32
    assert stat.S_IMODE((state / "server.key").stat().st_mode) == 0o600
    assert load_or_create_key(state) == key
    assert [p.name for p in state.iterdir()] == ["server.key"]


def test_servers_starting_at_once_share_one_whole_key(tmp_path: Path) -> None:
    keys: list[str] = []
    threads = [
        threading.Thread(target=lambda: keys.append(load_or_create_key(tmp_path / "s")))
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(keys) == 8 and len(set(keys)) == 1


def test_an_unusable_state_folder_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(IdentityError, match="state folder"):
        load_or_create_key(tmp_path / "file")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "server.key").write_text("\n")
    with pytest.raises(IdentityError, match="no usable key"):
        load_or_create_key(tmp_path / "empty")
