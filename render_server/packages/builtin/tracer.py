"""A small vectorised ray tracer: every ray of the image is traced at once with numpy.

Shading is Lambert diffuse plus Blinn-Phong specular from point and directional
lights with hard shadows, an ambient term, and at most one mirror bounce.
Colours are linear floats in 0..1; textures are sampled bilinearly and tinted
by the material colour.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from spillway.packages.builtin_scene import FrameScene, Material, Mesh, Plane, Sphere
from spillway.packages.errors import MissingDependencyError

EPS = 1e-4
SPHERE_CHECKS = (16.0, 8.0)  # checker squares around and along a sphere
_RAY_TRI_BLOCK = 1 << 21  # rays x triangles evaluated per numpy call in mesh tests

Textures = dict[str, np.ndarray]


class TextureMissingError(MissingDependencyError):
    """A texture file the scene references does not exist."""


def load_textures(names: tuple[str, ...], scene_dir: Path) -> Textures:
    """Load every texture (relative to the scene folder) as (H, W, 3) float arrays."""
    textures: Textures = {}
    for name in names:
        path = scene_dir / name
        try:
            with Image.open(path) as img:
                textures[name] = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
        except FileNotFoundError:
            raise TextureMissingError(
                f"texture '{name}' not found (looked for {path}); add it to the job's assets",
                files=[name],
            ) from None
        except OSError as exc:
            raise TextureMissingError(
                f"texture '{name}' could not be read as an image: {exc}", files=[name]
            ) from None
    return textures


def render(scene: FrameScene, textures: Textures, width: int, height: int) -> np.ndarray:
    """Render one frame; returns an (height, width, 3) uint8 array."""
    origins, dirs = _camera_rays(scene, width, height)
    color = _trace(scene, textures, origins, dirs, scene.bounces)
    return (np.clip(color, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8).reshape(height, width, 3)


def _normalize(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def _camera_rays(scene: FrameScene, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    cam = scene.camera
    forward = _normalize(cam.look_at - cam.position)
    right = _normalize(np.cross(forward, cam.up))
    up = np.cross(right, forward)
    half = math.tan(math.radians(cam.fov) / 2.0)
    xs = (2.0 * (np.arange(width) + 0.5) / width - 1.0) * half * width / height
    ys = (1.0 - 2.0 * (np.arange(height) + 0.5) / height) * half
    gx, gy = np.meshgrid(xs, ys)
    dirs = forward + gx.reshape(-1, 1) * right + gy.reshape(-1, 1) * up
    origins = np.broadcast_to(cam.position, dirs.shape)
    return origins, _normalize(dirs)


# --- intersection ------------------------------------------------------------------------


def _hit_sphere(obj: Sphere, o: np.ndarray, d: np.ndarray) -> np.ndarray:
    oc = o - obj.center
    b = np.einsum("ij,ij->i", oc, d)
    c = np.einsum("ij,ij->i", oc, oc) - obj.radius * obj.radius
    disc = b * b - c
    t = np.full(len(o), np.inf)
    ok = disc > 0
    root = np.sqrt(disc[ok])
    near, far = -b[ok] - root, -b[ok] + root
    t[ok] = np.where(near > EPS, near, np.where(far > EPS, far, np.inf))
    return t


def _hit_plane(obj: Plane, o: np.ndarray, d: np.ndarray) -> np.ndarray:
    n = _normalize(obj.normal)
    denom = d @ n
    with np.errstate(divide="ignore", invalid="ignore"):
        t = ((obj.point - o) @ n) / denom
    return np.where((np.abs(denom) > 1e-9) & (t > EPS), t, np.inf)


def _hit_mesh(obj: Mesh, o: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Möller-Trumbore over all triangles, only for rays that hit the bounding sphere."""
    verts = obj.vertices + obj.translate
    center = verts.mean(axis=0)
    radius = float(np.linalg.norm(verts - center, axis=1).max()) + EPS
    bound = Sphere(center=center, radius=radius, spin=0.0, material=obj.material)
    oc = o - center
    inside = np.einsum("ij,ij->i", oc, oc) <= radius * radius
    cand = np.nonzero(np.isfinite(_hit_sphere(bound, o, d)) | inside)[0]
    t_best = np.full(len(o), np.inf)
    face_best = np.full(len(o), -1)
    if len(cand) == 0:
        return t_best, face_best
    tri = verts[obj.faces]  # (F, 3, 3)
    block = max(1, _RAY_TRI_BLOCK // len(cand))
    oc_, dc = o[cand][:, None, :], d[cand][:, None, :]
    tc, fc = np.full(len(cand), np.inf), np.full(len(cand), -1)
    for start in range(0, len(tri), block):
        v0, e1, e2 = (
            tri[start : start + block, 0],
            tri[start : start + block, 1] - tri[start : start + block, 0],
            tri[start : start + block, 2] - tri[start : start + block, 0],
        )
        p = np.cross(dc, e2)
        det = np.einsum("rfk,fk->rf", p, e1)
        with np.errstate(divide="ignore", invalid="ignore"):
            inv = 1.0 / det
            s = oc_ - v0
            u = np.einsum("rfk,rfk->rf", s, p) * inv
            q = np.cross(s, e1)
            v = np.einsum("rfk,rk->rf", q, d[cand]) * inv
            t = np.einsum("rfk,fk->rf", q, e2) * inv
        ok = (np.abs(det) > 1e-12) & (u >= 0) & (v >= 0) & (u + v <= 1) & (t > EPS)
        t = np.where(ok, t, np.inf)
        j = np.argmin(t, axis=1)
        tj = t[np.arange(len(cand)), j]
        better = tj < tc
        tc[better], fc[better] = tj[better], j[better] + start
    t_best[cand], face_best[cand] = tc, fc
    return t_best, face_best


def _intersect(
    scene: FrameScene, o: np.ndarray, d: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nearest hit: (t, object index or -1, mesh face index or -1) per ray."""
    best_t = np.full(len(o), np.inf)
    best_i = np.full(len(o), -1)
    face = np.full(len(o), -1)
    for i, obj in enumerate(scene.objects):
        f = None
        if isinstance(obj, Sphere):
            t = _hit_sphere(obj, o, d)
        elif isinstance(obj, Plane):
            t = _hit_plane(obj, o, d)
        else:
            t, f = _hit_mesh(obj, o, d)
        closer = t < best_t
        best_t[closer], best_i[closer] = t[closer], i
        if f is not None:
            face[closer] = f[closer]
    return best_t, best_i, face


def _occluded(scene: FrameScene, o: np.ndarray, d: np.ndarray, dist: np.ndarray) -> np.ndarray:
    blocked = np.zeros(len(o), dtype=bool)
    for obj in scene.objects:
        if isinstance(obj, Sphere):
            t = _hit_sphere(obj, o, d)
        elif isinstance(obj, Plane):
            t = _hit_plane(obj, o, d)
        else:
            t, _ = _hit_mesh(obj, o, d)
        blocked |= t < dist
    return blocked


# --- surface properties -----------------------------------------------------------------


def _plane_axes(normal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = _normalize(normal)
    helper = np.array([1.0, 0.0, 0.0]) if abs(n[0]) < 0.9 else np.array([0.0, 0.0, 1.0])
    u = _normalize(np.cross(helper, n))
    return u, np.cross(n, u)


def _surface(obj: Any, p: np.ndarray, face: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
    """Normal, texture coordinates and whether uv is in world units (tiled) at points p."""
    if isinstance(obj, Sphere):
        n = (p - obj.center) / obj.radius
        u = 0.5 + np.arctan2(n[:, 2], n[:, 0]) / (2 * math.pi) + obj.spin / 360.0
        v = 0.5 - np.arcsin(np.clip(n[:, 1], -1.0, 1.0)) / math.pi
        return n, np.stack([u, v], axis=1), False
    if isinstance(obj, Plane):
        au, av = _plane_axes(obj.normal)
        rel = p - obj.point
        uv = np.stack([rel @ au, rel @ av], axis=1) / obj.material.scale
        return np.broadcast_to(_normalize(obj.normal), p.shape), uv, True
    tri = (obj.vertices + obj.translate)[obj.faces[face]]
    n = _normalize(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]))
    return n, p[:, [0, 2]] / obj.material.scale, True


def _sample(tex: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Bilinear lookup with wrap-around; v = 0 is the top row of the image."""
    h, w, _ = tex.shape
    x = (uv[:, 0] % 1.0) * w - 0.5
    y = (uv[:, 1] % 1.0) * h - 0.5
    x0, y0 = np.floor(x), np.floor(y)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    x0, y0 = x0.astype(np.int64) % w, y0.astype(np.int64) % h
    x1, y1 = (x0 + 1) % w, (y0 + 1) % h
    top = tex[y0, x0] * (1 - fx) + tex[y0, x1] * fx
    bottom = tex[y1, x0] * (1 - fx) + tex[y1, x1] * fx
    return top * (1 - fy) + bottom * fy


def _base_color(mat: Material, uv: np.ndarray, tiled: bool, textures: Textures) -> np.ndarray:
    color = np.broadcast_to(mat.color, (len(uv), 3))
    if mat.checker is not None:
        cells = uv if tiled else uv * np.array(SPHERE_CHECKS)
        odd = (np.floor(cells[:, 0]) + np.floor(cells[:, 1])) % 2 == 1
        color = np.where(odd[:, None], mat.checker, color)
    if mat.texture is not None:
        color = color * _sample(textures[mat.texture], uv)
    return color


# --- shading ---------------------------------------------------------------------------------


def _trace(
    scene: FrameScene, textures: Textures, o: np.ndarray, d: np.ndarray, depth: int
) -> np.ndarray:
    out = np.empty((len(o), 3))
    out[:] = scene.background
    t, idx, face = _intersect(scene, o, d)
    hit = np.nonzero(idx >= 0)[0]
    if len(hit) == 0:
        return out
    dh = d[hit]
    p = o[hit] + dh * t[hit, None]
    n = np.empty_like(p)
    base = np.empty_like(p)
    spec, shin, refl = (np.zeros(len(hit)) for _ in range(3))
    for i, obj in enumerate(scene.objects):
        m = idx[hit] == i
        if not m.any():
            continue
        n[m], uv, tiled = _surface(obj, p[m], face[hit][m])
        base[m] = _base_color(obj.material, uv, tiled, textures)
        spec[m], shin[m], refl[m] = (
            obj.material.specular,
            obj.material.shininess,
            obj.material.reflect,
        )
    n = _normalize(n)
    # Planes and meshes are two-sided: shade the side the ray sees.
    n = np.where((np.einsum("ij,ij->i", n, dh) > 0)[:, None], -n, n)
    color = scene.ambient * base + _direct_light(scene, p, n, dh, base, spec, shin)
    if depth > 0 and (refl > 0).any():
        r = np.nonzero(refl > 0)[0]
        rd = dh[r] - 2.0 * np.einsum("ij,ij->i", dh[r], n[r])[:, None] * n[r]
        bounced = _trace(scene, textures, p[r] + n[r] * EPS, _normalize(rd), depth - 1)
        k = refl[r, None]
        color[r] = color[r] * (1.0 - k) + bounced * k
    out[hit] = color
    return out


def _direct_light(
    scene: FrameScene,
    p: np.ndarray,
    n: np.ndarray,
    view_dir: np.ndarray,
    base: np.ndarray,
    spec: np.ndarray,
    shin: np.ndarray,
) -> np.ndarray:
    total = np.zeros_like(p)
    for light in scene.lights:
        if light.kind == "point":
            to_light = light.vector - p
            dist = np.linalg.norm(to_light, axis=1)
            ldir = to_light / np.maximum(dist, 1e-12)[:, None]
        else:
            ldir = np.broadcast_to(-_normalize(light.vector), p.shape)
            dist = np.full(len(p), np.inf)
        ndl = np.einsum("ij,ij->i", n, ldir)
        lit = np.nonzero(ndl > 0)[0]
        if len(lit) == 0:
            continue
        shadow = _occluded(scene, p[lit] + n[lit] * EPS, ldir[lit], dist[lit])
        lit = lit[~shadow]
        half = _normalize(ldir[lit] - view_dir[lit])
        ndh = np.maximum(np.einsum("ij,ij->i", n[lit], half), 0.0)
        radiance = light.color * light.intensity
        diffuse = base[lit] * ndl[lit, None]
        specular = (spec[lit] * ndh ** shin[lit])[:, None]
        total[lit] += (diffuse + specular) * radiance
    return total
