"""Optional features of a render package, probed on each render server.

A render server reports the features its installation has as tags named
``<package>:<feature>`` (``blender:oidn``); a job whose scene needs one lists it
in its profile's ``features``, so it only matches servers that have it and
``spillway job`` can say, in words, what it waits for.
"""

from __future__ import annotations

__all__ = ["BLENDER_OIDN", "FEATURES", "FEATURE_HINTS", "describe_feature", "feature_package"]

BLENDER_OIDN = "blender:oidn"

FEATURES: dict[str, str] = {
    BLENDER_OIDN: "OpenImageDenoise",
}
"""Every feature tag, with what it means for users."""

FEATURE_HINTS: dict[str, str] = {
    BLENDER_OIDN: "or submit with --no-denoise to render without denoising",
}
"""What a user can do about a job that waits for a feature no server has."""


def feature_package(feature: str) -> str:
    """The package a feature tag belongs to: ``blender`` for ``blender:oidn``."""
    return feature.split(":", 1)[0]


def describe_feature(feature: str) -> str:
    """``OpenImageDenoise`` for ``blender:oidn``; the tag itself for an unknown one."""
    return FEATURES.get(feature, feature)
