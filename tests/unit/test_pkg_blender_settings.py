"""The Blender setup script applies exactly the job's overrides and leaves the rest as the .blend says.

The script runs inside Blender; here it runs against a small stand-in for the
``bpy`` scene it touches, so every setting can be checked before and after.
The real-Blender checks are in tests/integration/test_pkg_blender.py.
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from render_server.packages.base import RenderRequest
from render_server.packages.blender import setup_script


def _scene(engine: str = "CYCLES") -> SimpleNamespace:
    render = SimpleNamespace(
        engine=engine,
        resolution_x=480,
        resolution_y=270,
        resolution_percentage=50,
        image_settings=SimpleNamespace(file_format="OPEN_EXR"),
        threads_mode="AUTO",
        threads=0,
        use_overwrite=False,
        use_placeholder=True,
    )
    return SimpleNamespace(
        render=render,
        cycles=SimpleNamespace(samples=64, use_denoising=True, seed=7, device="GPU"),
        eevee=SimpleNamespace(taa_render_samples=64),
        view_layers=[SimpleNamespace(cycles=SimpleNamespace(use_denoising=True))],
        node_tree=SimpleNamespace(
            nodes=[
                SimpleNamespace(type="DENOISE", mute=False),
                SimpleNamespace(type="BLUR", mute=False),
            ]
        ),
    )


def _run(monkeypatch: pytest.MonkeyPatch, scene: SimpleNamespace, **overrides: object) -> None:
    made_absolute: list[bool] = []
    bpy = SimpleNamespace(
        context=SimpleNamespace(scene=scene),
        ops=SimpleNamespace(
            file=SimpleNamespace(make_paths_absolute=lambda: made_absolute.append(True))
        ),
    )
    monkeypatch.setitem(sys.modules, "bpy", bpy)
    req = RenderRequest(
        scene=Path("/w/shot.blend"),
        workdir=Path("/w"),
        outdir=Path("/w/out"),
        frames=(1,),
        threads=3,
        **overrides,  # type: ignore[arg-type]
    )
    exec(compile(setup_script(req), "setup", "exec"), {})
    assert made_absolute == [True]


def test_no_overrides_keep_every_scene_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    scene = _scene()
    _run(monkeypatch, scene)
    r = scene.render
    assert (r.engine, r.resolution_x, r.resolution_y, r.resolution_percentage) == (
        "CYCLES",
        480,
        270,
        50,
    )
    assert (scene.cycles.samples, scene.cycles.seed, scene.cycles.device) == (64, 7, "GPU")
    assert scene.cycles.use_denoising and scene.view_layers[0].cycles.use_denoising
    assert not scene.node_tree.nodes[0].mute
    assert (r.threads_mode, r.threads) == ("FIXED", 3)


def test_samples_override_sets_the_engine_in_effect(monkeypatch: pytest.MonkeyPatch) -> None:
    cycles = _scene("BLENDER_WORKBENCH")
    _run(monkeypatch, cycles, engine="cycles", samples=16)
    assert (cycles.render.engine, cycles.cycles.samples) == ("CYCLES", 16)
    assert cycles.eevee.taa_render_samples == 64
    eevee = _scene("BLENDER_EEVEE")
    _run(monkeypatch, eevee, samples=8)
    assert (eevee.eevee.taa_render_samples, eevee.cycles.samples) == (8, 64)


def test_samples_on_workbench_fails_instead_of_being_ignored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(SystemExit, match="applies to Cycles and Eevee, not BLENDER_WORKBENCH"):
        _run(monkeypatch, _scene("BLENDER_WORKBENCH"), samples=8)


def test_no_denoise_turns_off_every_denoiser(monkeypatch: pytest.MonkeyPatch) -> None:
    scene = _scene()
    _run(monkeypatch, scene, denoise=False)
    assert not scene.cycles.use_denoising
    assert not scene.view_layers[0].cycles.use_denoising
    assert [n.mute for n in scene.node_tree.nodes] == [True, False]
    assert scene.cycles.samples == 64


def test_resolution_override_replaces_size_and_percentage(monkeypatch: pytest.MonkeyPatch) -> None:
    scene = _scene()
    _run(monkeypatch, scene, width=64, height=48)
    r = scene.render
    assert (r.resolution_x, r.resolution_y, r.resolution_percentage) == (64, 48, 100)
