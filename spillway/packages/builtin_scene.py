"""The built-in tracer's scene in numpy form: the renderer's side of the scene format.

The format's rules live in :mod:`spillway.packages.builtin_schema` (plain
Python, shared with the client and the render server's checks); this module
turns a checked :class:`~spillway.packages.builtin_schema.SceneDoc` into a
:class:`SceneSpec` whose animatable values are :class:`Track` objects;
``spec.at(frame)`` evaluates every track and returns a :class:`FrameScene` of
plain numpy values for the tracer.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from spillway.packages.builtin_schema import (
    MAX_MESH_FACES,
    Camera,
    Keys,
    Light,
    Material,
    Mesh,
    Plane,
    SceneDoc,
    SceneError,
    Sphere,
    check_scene,
    read_scene,
)

__all__ = [
    "MAX_MESH_FACES",
    "Camera",
    "FrameScene",
    "Light",
    "Material",
    "Mesh",
    "Plane",
    "SceneError",
    "SceneSpec",
    "Sphere",
    "Track",
    "load_scene",
    "parse_scene",
]


@dataclass(frozen=True, slots=True)
class Track:
    """A value that is constant or linearly interpolated between keyframes (clamped)."""

    frames: np.ndarray  # (K,) ascending
    values: np.ndarray  # (K, D)
    scalar: bool

    def at(self, frame: float) -> Any:
        cols = [
            np.interp(frame, self.frames, self.values[:, i]) for i in range(self.values.shape[1])
        ]
        return float(cols[0]) if self.scalar else np.array(cols, dtype=np.float64)


@dataclass(frozen=True, slots=True, kw_only=True)
class FrameScene:
    """A scene with every track evaluated at one frame."""

    background: np.ndarray
    ambient: float
    bounces: int
    camera: Camera
    lights: tuple[Light, ...]
    objects: tuple[Sphere | Plane | Mesh, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class SceneSpec:
    """A parsed scene; animatable values are Tracks, mesh vertices and faces arrays."""

    background: np.ndarray
    ambient: float
    bounces: int
    camera: Camera
    lights: tuple[Light, ...]
    objects: tuple[Sphere | Plane | Mesh, ...]
    textures: tuple[str, ...] = ()

    def at(self, frame: float) -> FrameScene:
        return FrameScene(
            background=self.background,
            ambient=self.ambient,
            bounces=self.bounces,
            camera=_evaluate(self.camera, frame),
            lights=tuple(_evaluate(light, frame) for light in self.lights),
            objects=tuple(_evaluate(obj, frame) for obj in self.objects),
        )


def _evaluate(record: Any, frame: float) -> Any:
    """Copy a record with each Track (also inside its material) replaced by its value."""
    changes: dict[str, Any] = {}
    for name, value in zip(record._fields, record, strict=True):
        if isinstance(value, Track):
            changes[name] = value.at(frame)
        elif isinstance(value, Material):
            changes[name] = _evaluate(value, frame)
    return record._replace(**changes)


def load_scene(path: Path) -> SceneSpec:
    """Read and check a scene file (SceneError says what is wrong and where)."""
    return scene_spec(read_scene(path))


def parse_scene(data: Any) -> SceneSpec:
    """Check a scene's decoded JSON (SceneError says what is wrong and where)."""
    return scene_spec(check_scene(data))


def scene_spec(doc: SceneDoc) -> SceneSpec:
    """The numpy form of a checked scene."""
    return SceneSpec(
        background=np.array(doc.background, dtype=np.float64),
        ambient=doc.ambient,
        bounces=doc.bounces,
        camera=_with_tracks(doc.camera),
        lights=tuple(_with_tracks(light) for light in doc.lights),
        objects=tuple(_with_tracks(obj) for obj in doc.objects),
        textures=doc.textures,
    )


def _with_tracks(record: Any) -> Any:
    """Copy a record with each Keys (also inside its material) as a Track, and a mesh's
    vertices and faces as arrays."""
    changes: dict[str, Any] = {}
    for name, value in zip(record._fields, record, strict=True):
        if isinstance(value, Keys):
            changes[name] = Track(
                np.array(value.frames, dtype=np.float64),
                np.array(value.values, dtype=np.float64),
                value.scalar,
            )
        elif isinstance(value, Material):
            changes[name] = _with_tracks(value)
    if isinstance(record, Mesh):
        changes["vertices"] = np.array(record.vertices, dtype=np.float64)
        changes["faces"] = np.array(record.faces, dtype=np.int64)
    return record._replace(**changes)
