"""The built-in tracer's JSON scene format: its rules, checked in plain Python.

The one definition of what a valid built-in scene is. ``spillway submit``
checks a scene with it before uploading anything (without numpy, whose import
alone would be most of the command's start), the render server checks a task's
scene with it before starting the renderer, and the renderer builds its numpy
scene from what it returns (:mod:`spillway.packages.builtin_scene`).

:func:`read_scene` gives a :class:`SceneDoc` of plain values: numbers as
floats, vectors as tuples, animatable values as :class:`Keys`. Errors name the
JSON path of the offending key (``objects[2].type``). The format is documented
in docs/packages.md.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from spillway.packages.errors import PackageError

__all__ = [
    "MAX_MESH_FACES",
    "Camera",
    "Keys",
    "Light",
    "Material",
    "Mesh",
    "Plane",
    "SceneDoc",
    "SceneError",
    "Sphere",
    "check_scene",
    "read_scene",
]

MAX_MESH_FACES = 5000


class SceneError(PackageError):
    """The scene file is not a valid built-in tracer scene."""


class Keys(NamedTuple):
    """An animatable value: keyframes (a constant is one key at frame 0), each a vector
    of ``len(values[0])`` floats; ``scalar`` for single numbers."""

    frames: tuple[float, ...]  # strictly ascending
    values: tuple[tuple[float, ...], ...]
    scalar: bool


# Records are NamedTuples, not the usual frozen dataclasses: `spillway submit` imports
# this module, and each frozen dataclass costs about 1 ms of CPU to create (its methods
# are compiled at import), a NamedTuple a tenth of that. They hold Keys here; the
# renderer's scene holds its own kind of track in the same records (animatable fields
# are typed Any for that).


class Material(NamedTuple):
    color: Any
    checker: Any  # second colour or None
    texture: str | None  # path relative to the scene folder
    scale: float  # world units per texture tile / checker square on planes and meshes
    specular: float
    shininess: float
    reflect: float


class Camera(NamedTuple):
    position: Any
    look_at: Any
    up: Any
    fov: Any


class Light(NamedTuple):
    kind: str  # "point" | "directional"
    vector: Any  # position for point lights, direction the light travels for directional
    color: Any
    intensity: Any


class Sphere(NamedTuple):
    center: Any
    radius: Any
    spin: Any  # degrees about +Y applied to the texture mapping
    material: Material


class Plane(NamedTuple):
    point: Any
    normal: Any
    material: Material


class Mesh(NamedTuple):
    vertices: Any  # (V, 3): rows of [x, y, z] floats
    faces: Any  # (F, 3): rows of [i, j, k] vertex indices
    translate: Any
    material: Material


class SceneDoc(NamedTuple):
    """A checked scene in plain values."""

    background: tuple[float, ...]
    ambient: float
    bounces: int
    camera: Camera
    lights: tuple[Light, ...]
    objects: tuple[Sphere | Plane | Mesh, ...]
    textures: tuple[str, ...]  # every texture the objects name, sorted


def read_scene(path: Path) -> SceneDoc:
    """Read and check a scene file; SceneError says what is wrong and where."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SceneError(f"scene file '{path}' not found") from None
    except OSError as exc:
        raise SceneError(f"cannot read scene file '{path}': {exc.strerror}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SceneError(
            f"{path.name}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    except RecursionError:
        raise SceneError(f"{path.name}: its JSON is nested too deeply") from None
    return check_scene(data)


def check_scene(data: Any) -> SceneDoc:
    """Check a scene's decoded JSON; SceneError says what is wrong and where."""
    top = _Obj(data, "")
    top.allow("format", "background", "ambient", "max_bounces", "camera", "lights", "objects")
    fmt = top.raw("format", "spillway-scene/1")
    if fmt != "spillway-scene/1":
        raise SceneError(f"format: unsupported scene format {fmt!r} (expected 'spillway-scene/1')")
    bounces = top.number("max_bounces", 1)
    if bounces not in (0, 1):
        raise SceneError("max_bounces: must be 0 or 1")
    objects = tuple(
        _parse_object(item, f"objects[{i}]") for i, item in enumerate(top.array("objects"))
    )
    if not objects:
        raise SceneError("objects: the scene has no objects")
    textures = sorted({o.material.texture for o in objects if o.material.texture})
    return SceneDoc(
        background=tuple(top.vector("background", [0.0, 0.0, 0.0])),
        ambient=top.number("ambient", 0.1),
        bounces=int(bounces),
        camera=_parse_camera(top.child("camera")),
        lights=tuple(
            _parse_light(item, f"lights[{i}]") for i, item in enumerate(top.array("lights", []))
        ),
        objects=objects,
        textures=tuple(textures),
    )


def _parse_camera(obj: _Obj) -> Camera:
    obj.allow("position", "look_at", "up", "fov")
    return Camera(
        position=obj.track("position", dim=3),
        look_at=obj.track("look_at", dim=3),
        up=obj.track("up", dim=3, default=[0.0, 1.0, 0.0]),
        fov=obj.track("fov", dim=1, default=45.0),
    )


def _parse_light(data: Any, path: str) -> Light:
    obj = _Obj(data, path)
    kind = obj.raw("type")
    if kind == "point":
        obj.allow("type", "position", "color", "intensity")
        vector = obj.track("position", dim=3)
    elif kind == "directional":
        obj.allow("type", "direction", "color", "intensity")
        vector = obj.track("direction", dim=3)
    else:
        raise SceneError(
            f"{path}.type: unknown light type {kind!r} (expected point or directional)"
        )
    return Light(
        kind=kind,
        vector=vector,
        color=obj.track("color", dim=3, default=[1.0, 1.0, 1.0]),
        intensity=obj.track("intensity", dim=1, default=1.0),
    )


_OBJECT_TYPES = ("mesh", "plane", "sphere")


def _parse_object(data: Any, path: str) -> Sphere | Plane | Mesh:
    obj = _Obj(data, path)
    kind = obj.raw("type")
    if kind == "sphere":
        obj.allow("type", "center", "radius", "spin", "material")
        return Sphere(
            center=obj.track("center", dim=3),
            radius=obj.track("radius", dim=1, default=1.0),
            spin=obj.track("spin", dim=1, default=0.0),
            material=_parse_material(obj.child("material", {})),
        )
    if kind == "plane":
        obj.allow("type", "point", "normal", "material")
        return Plane(
            point=obj.track("point", dim=3, default=[0.0, 0.0, 0.0]),
            normal=obj.track("normal", dim=3, default=[0.0, 1.0, 0.0]),
            material=_parse_material(obj.child("material", {})),
        )
    if kind == "mesh":
        obj.allow("type", "vertices", "faces", "translate", "material")
        vertices, faces = _parse_mesh_arrays(obj)
        return Mesh(
            vertices=vertices,
            faces=faces,
            translate=obj.track("translate", dim=3, default=[0.0, 0.0, 0.0]),
            material=_parse_material(obj.child("material", {})),
        )
    raise SceneError(
        f"{path}.type: unknown object type {kind!r} (expected one of: {', '.join(_OBJECT_TYPES)})"
    )


def _parse_mesh_arrays(
    obj: _Obj,
) -> tuple[tuple[tuple[float, ...], ...], tuple[tuple[int, ...], ...]]:
    vertices, faces = obj.array("vertices"), obj.array("faces")
    vertex_shape, face_shape = _shape(vertices, _is_number), _shape(faces, _is_index)
    if vertex_shape is None or face_shape is None:
        raise SceneError(
            f"{obj.path}: vertices must be [x, y, z] numbers and faces [i, j, k] integers"
        )
    if vertex_shape[1:] != (3,) or not vertices:
        raise SceneError(f"{obj.path}.vertices: expected a non-empty list of [x, y, z]")
    if face_shape[1:] != (3,) or not faces:
        raise SceneError(f"{obj.path}.faces: expected a non-empty list of [i, j, k]")
    if len(faces) > MAX_MESH_FACES:
        raise SceneError(
            f"{obj.path}.faces: {len(faces)} faces; the built-in tracer allows {MAX_MESH_FACES}"
        )
    indices = tuple(tuple(int(i) for i in face) for face in faces)
    if not all(0 <= i < len(vertices) for face in indices for i in face):
        raise SceneError(f"{obj.path}.faces: vertex index out of range 0..{len(vertices) - 1}")
    return tuple(tuple(float(x) for x in v) for v in vertices), indices


def _shape(value: Any, is_item: Callable[[Any], bool], depth: int = 4) -> tuple[int, ...] | None:
    """The shape of a rectangular nested list of items (``()`` for one item), or None
    for ragged lists, other values and lists nested deeper than ``depth``."""
    if not isinstance(value, list):
        return () if is_item(value) else None
    if depth == 0:
        return None
    shapes = {_shape(v, is_item, depth - 1) for v in value}
    if None in shapes or len(shapes) > 1:
        return None
    inner = shapes.pop() if shapes else ()
    return (len(value), *inner) if inner is not None else None


def _parse_material(obj: _Obj) -> Material:
    obj.allow("color", "checker", "texture", "scale", "specular", "shininess", "reflect")
    texture = obj.raw("texture", None)
    if texture is not None and (not isinstance(texture, str) or not texture):
        raise SceneError(f"{obj.path}.texture: expected a file path string")
    checker = obj.track("checker", dim=3) if "checker" in obj.data else None
    scale = obj.number("scale", 1.0)
    if scale <= 0:
        raise SceneError(f"{obj.path}.scale: must be positive")
    return Material(
        color=obj.track("color", dim=3, default=[0.8, 0.8, 0.8]),
        checker=checker,
        texture=texture,
        scale=scale,
        specular=obj.number("specular", 0.0),
        shininess=obj.number("shininess", 32.0),
        reflect=obj.number("reflect", 0.0),
    )


_MISSING = object()


class _Obj:
    """A JSON object being checked, remembering its path for error messages."""

    def __init__(self, data: Any, path: str) -> None:
        if not isinstance(data, dict):
            raise SceneError(f"{path or 'scene'}: expected a JSON object")
        self.data: dict[str, Any] = data
        self.path = path

    def key_path(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def allow(self, *keys: str) -> None:
        for key in self.data:
            if key not in keys:
                raise SceneError(
                    f"{self.key_path(key)}: unknown key (allowed: {', '.join(sorted(keys))})"
                )

    def raw(self, key: str, default: Any = _MISSING) -> Any:
        if key in self.data:
            return self.data[key]
        if default is _MISSING:
            raise SceneError(f"{self.key_path(key)}: required key is missing")
        return default

    def child(self, key: str, default: Any = _MISSING) -> _Obj:
        return _Obj(self.raw(key, default), self.key_path(key))

    def array(self, key: str, default: Any = _MISSING) -> list[Any]:
        value = self.raw(key, default)
        if not isinstance(value, list):
            raise SceneError(f"{self.key_path(key)}: expected a list")
        return value

    def number(self, key: str, default: Any = _MISSING) -> float:
        value = self.raw(key, default)
        if not _is_number(value):
            raise SceneError(f"{self.key_path(key)}: expected a number")
        return float(value)

    def vector(self, key: str, default: Any = _MISSING) -> list[float]:
        return _vector(self.raw(key, default), self.key_path(key), 3)

    def track(self, key: str, *, dim: int, default: Any = _MISSING) -> Keys:
        """A constant, or ``{"keys": [[frame, value], ...]}`` interpolated linearly."""
        value = self.raw(key, default)
        path = self.key_path(key)
        if isinstance(value, dict):
            return _keyframed(value, path, dim)
        return Keys((0.0,), (tuple(_vector(value, path, dim)),), dim == 1)


def _keyframed(value: dict[str, Any], path: str, dim: int) -> Keys:
    keys = value.get("keys")
    if set(value) != {"keys"} or not isinstance(keys, list) or not keys:
        raise SceneError(f'{path}: keyframes must look like {{"keys": [[frame, value], ...]}}')
    frames, values = [], []
    for i, key in enumerate(keys):
        if not (isinstance(key, list) and len(key) == 2 and _is_number(key[0])):
            raise SceneError(f"{path}.keys[{i}]: expected [frame, value]")
        frames.append(float(key[0]))
        values.append(tuple(_vector(key[1], f"{path}.keys[{i}]", dim)))
    if any(b <= a for a, b in zip(frames, frames[1:], strict=False)):
        raise SceneError(f"{path}.keys: frames must be strictly ascending")
    return Keys(tuple(frames), tuple(values), dim == 1)


def _vector(value: Any, path: str, dim: int) -> list[float]:
    if dim == 1 and _is_number(value):
        return [float(value)]
    if isinstance(value, list) and len(value) == dim and all(_is_number(v) for v in value):
        return [float(v) for v in value]
    want = "a number" if dim == 1 else f"a list of {dim} numbers"
    raise SceneError(f"{path}: expected {want}")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_index(value: Any) -> bool:
    """A vertex index: an integer, or a float with an integral value (2.0)."""
    if isinstance(value, float):
        return value.is_integer()
    return isinstance(value, int) and not isinstance(value, bool)
