"""How POV-Ray 3.7 finds a file it is given by name: extensions, search order, its own files.

POV-Ray looks a name up in the current directory, then in each library path
(``+L`` / ``Library_Path``) in order; in each directory it first tries the
name with the extensions of the file's type appended (only when the name has
no extension), then the name as given.  An image named without a type
keyword is read as the platform's "sys" type, PNG on Unix.
"""

from __future__ import annotations

from pathlib import PurePosixPath

__all__ = ["EXTENSIONS", "IMAGE_TYPES", "STANDARD_FILES", "candidates"]

EXTENSIONS: dict[str, tuple[str, ...]] = {
    "include": (".inc", ".INC"),
    "ini": (".ini", ".INI"),
    "scene": (".pov", ".POV"),
    "": (".png", ".PNG"),  # an image without a type keyword: "sys", PNG on Unix
    "sys": (".png", ".PNG"),
    "png": (".png", ".PNG"),
    "tga": (".tga", ".TGA"),
    "ppm": (".ppm", ".PPM"),
    "pgm": (".pgm", ".PGM"),
    "gif": (".gif", ".GIF"),
    "iff": (".iff", ".IFF", ".lbm", ".LBM"),
    "jpeg": (".jpg", ".JPG", ".jpeg", ".JPEG"),
    "tiff": (".tif", ".TIF", ".tiff", ".TIFF"),
    "bmp": (".bmp", ".BMP"),
    "exr": (".exr", ".EXR"),
    "hdr": (".hdr", ".HDR"),
    "ttf": (".ttf", ".TTF"),
    "df3": (".df3", ".DF3"),
    "fopen": (),
}
"""Extensions POV-Ray appends to an extension-less name, by file type, in its order."""

IMAGE_TYPES = ("png", "jpeg", "tga", "gif", "ppm", "pgm", "sys", "tiff", "exr", "hdr", "iff", "bmp")
"""Image type keywords (``image_map { jpeg "wood" }``)."""


def candidates(name: str, kind: str) -> list[PurePosixPath]:
    """The relative names POV-Ray tries for ``name`` of file type ``kind``, in its order."""
    path = PurePosixPath(name)
    if path.suffix:
        return [path]
    return [PurePosixPath(name + ext) for ext in EXTENSIONS.get(kind, ())] + [path]


# Files shipped in POV-Ray's own include directory; a scene may reference them
# without shipping them.  Listed (not looked up) so scanning works on a
# submitter's machine without POV-Ray.
STANDARD_FILES = frozenset(
    [
        "arrays.inc",
        "chars.inc",
        "colors.inc",
        "consts.inc",
        "debug.inc",
        "finish.inc",
        "functions.inc",
        "glass.inc",
        "glass_old.inc",
        "golds.inc",
        "ior.inc",
        "logo.inc",
        "makegrass.inc",
        "math.inc",
        "meshmaker.inc",
        "metals.inc",
        "rad_def.inc",
        "rand.inc",
        "screen.inc",
        "shapes.inc",
        "shapes2.inc",
        "shapes3.inc",
        "shapes_old.inc",
        "shapesq.inc",
        "skies.inc",
        "stage1.inc",
        "stars.inc",
        "stdcam.inc",
        "stdinc.inc",
        "stoneold.inc",
        "stones.inc",
        "stones1.inc",
        "stones2.inc",
        "strings.inc",
        "sunpos.inc",
        "textures.inc",
        "transforms.inc",
        "woodmaps.inc",
        "woods.inc",
        "colors_ral.inc",
        "ash.map",
        "benediti.map",
        "bubinga.map",
        "cedar.map",
        "marbteal.map",
        "orngwood.map",
        "pinkmarb.map",
        "rdgranit.map",
        "teak.map",
        "whiteash.map",
        "crystal.ttf",
        "cyrvetic.ttf",
        "povlogo.ttf",
        "timrom.ttf",
        "Mount1.png",
        "Mount2.png",
        "bumpmap_.png",
        "fract003.png",
        "mtmandj.png",
        "plasma2.png",
        "plasma3.png",
        "povmap.png",
        "test.png",
        "mtmand.pot",
        "spiral.df3",
    ]
)
