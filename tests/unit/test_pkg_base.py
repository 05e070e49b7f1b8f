"""Adapter interface helpers, registry and command lines (no renderer needed)."""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath

import pytest

from render_server.packages.base import (
    MissingDependencyError,
    PackageAdapter,
    PackageError,
    RenderRequest,
    ScanError,
    adapter_for,
    check_declared_assets,
    chunk_commands,
    collect_numbered,
    registry,
    relative_reference,
)
from render_server.packages.blender import BlenderAdapter, frame_list
from render_server.packages.builtin.adapter import BuiltinAdapter
from render_server.packages.povray import PovrayAdapter, stepped_runs


def test_registry_has_all_adapters() -> None:
    adapters = registry()
    assert sorted(adapters) == ["blender", "builtin", "povray"]
    for name, adapter in adapters.items():
        assert isinstance(adapter, PackageAdapter)
        assert adapter.name == name
        assert adapter.output_ext == "png"


def test_adapter_for_unknown_lists_known_names() -> None:
    with pytest.raises(
        PackageError,
        match="unknown render package 'maya'; known packages: blender, builtin, povray",
    ):
        adapter_for("maya")
    assert adapter_for("povray").name == "povray"


@pytest.mark.parametrize("ref", ["/tmp/x.png", "../x.png", "a/../../x.png", "C:\\tex\\x.png"])
def test_relative_reference_rejects_outside(tmp_path: Path, ref: str) -> None:
    with pytest.raises(ScanError, match="outside the scene folder; copy it next to the scene"):
        relative_reference(ref, tmp_path, kind="texture")


def test_relative_reference_normalises(tmp_path: Path) -> None:
    assert relative_reference("./tex\\a.png", tmp_path) == PurePosixPath("tex/a.png")


def _req(tmp_path: Path, frames: tuple[int, ...], **kw) -> RenderRequest:
    return RenderRequest(
        scene=tmp_path / "shot.pov", workdir=tmp_path, outdir=tmp_path / "out", frames=frames, **kw
    )


def test_collect_numbered_parses_any_padding(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    for name in ("shot_08.png", "shot_9.png", "shot_0010.png"):
        (out / name).write_bytes(b"")
    found = collect_numbered(_req(tmp_path, (8, 9, 10)), "png")
    assert {f: [p.name for p in ps] for f, ps in found.items()} == {
        8: ["shot_08.png"],
        9: ["shot_9.png"],
        10: ["shot_0010.png"],
    }
    with pytest.raises(PackageError, match="frame\\(s\\) 11"):
        collect_numbered(_req(tmp_path, (10, 11)), "png")


def test_check_declared_assets_names_missing(tmp_path: Path) -> None:
    (tmp_path / "shot.pov").write_text("")
    (tmp_path / "a.png").write_bytes(b"")
    req = _req(tmp_path, (1,), declared_assets=("a.png", "tex/b.png", "c.inc"))
    with pytest.raises(MissingDependencyError, match="'c.inc', 'tex/b.png'") as info:
        check_declared_assets(req)
    assert info.value.files == ("c.inc", "tex/b.png")


def test_povray_command_animates_over_the_job_not_the_chunk(tmp_path: Path) -> None:
    req = _req(tmp_path, (5, 6), width=64, height=48, threads=3, job_first=1, job_last=20)
    argv = PovrayAdapter().command(req)
    assert argv[:4] == ["povray", "+KFI1", "+KFF20", f"+I{tmp_path / 'shot.pov'}"]
    for opt in ("+W64", "+H48", "-D", "+SF5", "+EF6", "+STP1", "+WT3"):
        assert opt in argv
    # The output type is the scene's INI's (or POV-Ray's default), never forced.
    assert not [a for a in argv if a[:2] in ("+F", "-F")]
    # Clock and antialiasing are the scene's (or POV-Ray's defaults), never forced.
    assert [a for a in argv if a.startswith(("+K", "+A"))] == ["+KFI1", "+KFF20"]
    assert f"+L{tmp_path}" in argv
    assert f"+O{tmp_path / 'out' / 'shot'}" in argv


def test_povray_command_keeps_the_scenes_resolution_and_steps(tmp_path: Path) -> None:
    argv = PovrayAdapter().command(_req(tmp_path, (1, 11, 21)))
    assert not [a for a in argv if a[:2] in ("+W", "+H") and not a.startswith("+WT")]
    assert {"+KFI1", "+KFF21", "+SF1", "+EF21", "+STP10"} <= set(argv)


@pytest.mark.parametrize(
    ("frames", "runs"),
    [
        ((7,), [(7,)]),
        ((1, 2, 3), [(1, 2, 3)]),
        ((1, 11, 21), [(1, 11, 21)]),
        ((1, 5, 10), [(1, 5), (10,)]),
        ((1, 5, 10, 11, 12), [(1, 5), (10, 11, 12)]),
        ((1, 2, 4, 8, 16), [(1, 2), (4, 8), (16,)]),
    ],
)
def test_stepped_runs_split_a_chunk_in_order(
    frames: tuple[int, ...], runs: list[tuple[int, ...]]
) -> None:
    assert stepped_runs(frames) == runs
    assert [f for run in runs for f in run] == list(frames)


def _subset(argv: list[str]) -> list[str]:
    return [a for a in argv if a.startswith(("+KF", "+SF", "+EF", "+STP"))]


def test_povray_irregular_chunk_runs_once_per_stepped_run(tmp_path: Path) -> None:
    adapter = PovrayAdapter()
    req = _req(tmp_path, (1, 5, 10, 11, 12))
    runs = [_subset(argv) for argv in chunk_commands(adapter, req)]
    # Every run animates over the same range (the chunk's here, as no job range is given).
    assert runs == [
        ["+KFI1", "+KFF12", "+SF1", "+EF5", "+STP4"],
        ["+KFI1", "+KFF12", "+SF10", "+EF12", "+STP1"],
    ]
    job = _req(tmp_path, (1, 5, 10), job_first=1, job_last=40)
    assert [_subset(a) for a in adapter.commands(job)] == [
        ["+KFI1", "+KFF40", "+SF1", "+EF5", "+STP4"],
        ["+KFI1", "+KFF40", "+SF10", "+EF10", "+STP1"],
    ]
    with pytest.raises(PackageError, match="evenly stepped"):
        adapter.command(req)


def test_stepped_chunk_is_one_run_for_every_adapter(tmp_path: Path) -> None:
    req = _req(tmp_path, (1, 11, 21))
    for adapter in registry().values():
        assert len(chunk_commands(adapter, req)) == 1


@pytest.mark.parametrize(
    ("frames", "arg"),
    [
        ((7,), "7"),
        ((1, 5, 10), "1,5,10"),
        ((1, 11, 21), "1,11,21"),
        ((1, 2, 3, 4, 7, 10, 11), "1..4,7,10..11"),
        ((0, 1), "0..1"),
    ],
)
def test_blender_frame_list_names_exactly_the_frames(frames: tuple[int, ...], arg: str) -> None:
    assert frame_list(frames) == arg


def test_blender_command_renders_an_irregular_chunk_in_one_process(tmp_path: Path) -> None:
    req = _req(tmp_path, (1, 5, 10))
    (argv,) = chunk_commands(BlenderAdapter(), req)
    assert argv[-2:] == ["-f", "1,5,10"]
    assert not {"-s", "-e", "-j", "-a"} & set(argv)


def test_builtin_command_lists_exactly_the_frames(tmp_path: Path) -> None:
    argv = BuiltinAdapter().command(_req(tmp_path, (1, 5, 10, 11)))
    assert argv[argv.index("--frames") + 1] == "1,5,10,11"


def test_povray_command_reads_an_ini_before_the_chunk(tmp_path: Path) -> None:
    ini = tmp_path / "anim.ini"
    ini.write_text("Input_File_Name=clockd.pov\nOutput_File_Name=frames/shot_\n")
    req = RenderRequest(
        scene=ini, workdir=tmp_path, outdir=tmp_path / "out", frames=(3,), job_first=1, job_last=9
    )
    argv = PovrayAdapter().command(req)
    # The INI comes after +KFI/+KFF so its own animation range wins.
    assert argv[1:4] == ["+KFI1", "+KFF9", str(ini)]
    assert f"+O{tmp_path / 'out' / 'shot_'}" in argv


def test_blender_command(tmp_path: Path) -> None:
    req = RenderRequest(
        scene=tmp_path / "shot.blend",
        workdir=tmp_path,
        outdir=tmp_path / "out",
        frames=(3, 4, 5),
        width=64,
        height=48,
        engine="cycles",
    )
    argv = BlenderAdapter().command(req)
    assert argv[:3] == ["blender", "-b", str(tmp_path / "shot.blend")]
    # Exactly the chunk's frames, never -s/-e/-a (which apply the .blend's frame_step).
    assert argv[-2:] == ["-f", "3..5"]
    assert "-a" not in argv
    # The .blend's output format and file name are kept; only the folder is the task's.
    assert not {"-o", "-F", "-x"} & set(argv)
    setup = argv[argv.index("--python-expr") + 1]
    output = argv[argv.index("--python-expr", argv.index(setup)) + 1]
    assert "file_format" not in setup
    assert f"os.path.join({json.dumps(str(tmp_path / 'out'))}," in output
    assert "r.resolution_x = 64" in setup and 'r.engine = "CYCLES"' in setup
    # Only what the job overrides is set: samples and denoising stay the scene's.
    assert "samples" not in setup and "use_denoising" not in setup
    single = BlenderAdapter().command(
        RenderRequest(scene=req.scene, workdir=tmp_path, outdir=req.outdir, frames=(7,))
    )
    assert single[-2:] == ["-f", "7"]
