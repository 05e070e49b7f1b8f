"""The assign message's optional fields: the job's animation range and an explicit resolution."""

from __future__ import annotations

import msgpack

from render_server import protocol as p

_BASE = {
    "type": "assign",
    "v": p.PROTOCOL_VERSION,
    "task_id": 7,
    "attempt": 1,
    "job_id": "j",
    "job_name": "shot",
    "package": "povray",
    "version": "",
    "engine": "",
    "scene": "shot.ini",
    "manifest": [],
    "frames": [4, 5, 6],
    "output_name": "shot",
    "output_ext": "png",
    "timeout_s": 60.0,
}


def test_new_fields_round_trip() -> None:
    msg = p.Assign(
        **{k: v for k, v in _BASE.items() if k not in ("type", "v")},
        width=480,
        height=270,
        first_frame=1,
        last_frame=20,
    )
    assert p.decode(p.encode(msg)) == msg


def test_an_older_agents_assign_still_decodes() -> None:
    # Older agents always sent width/height and no job range: the range is then the chunk's.
    old = p.decode(msgpack.packb({**_BASE, "width": 320, "height": 240}))
    assert isinstance(old, p.Assign)
    assert (old.width, old.height, old.first_frame, old.last_frame) == (320, 240, None, None)


def test_without_resolution_the_scene_keeps_its_own() -> None:
    msg = p.decode(msgpack.packb({**_BASE, "first_frame": 1, "last_frame": 20}))
    assert isinstance(msg, p.Assign)
    assert (msg.width, msg.height, msg.first_frame, msg.last_frame) == (None, None, 1, 20)
