"""On-the-fly image transforms for reads (spec §15.2): crop, then resize, with Pillow.

| query | applies to | effect |
|---|---|---|
| `crop_x1,crop_y1,crop_x2,crop_y2` | `.png .jpg .jpeg .gif` | crop when `0 ≤ x1 < x2 ≤ width` and `0 ≤ y1 < y2 ≤ height` |
| `width`, `height` | `.png .jpg .jpeg .gif .webp` | only when the image is larger than a non-zero requested side |
| `mode=fit` | | fit inside width x height, keeping the aspect ratio |
| `mode=fill` | | scale and centre-crop to exactly width x height |
| no mode | | width == height on a non-square image: square thumbnail; else resize (a 0 side keeps the aspect ratio) |

Lanczos resampling; the result keeps the source format (JPEG at quality 75; WebP comes back as
PNG like the reference, whose Go stack has no WebP encoder). Anything Pillow cannot decode is
returned unchanged.

Where a parameter applies, it must be a number of pixels: `width=abc`, `-5` or 20 digits is a
400 naming the parameter (the reference reads such values as 0, i.e. "no transform", so the
client gets the full image without knowing why). Parameters on other extensions are not read.

These functions are CPU-bound: the server runs them off the event loop.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from seaweed_py.errors import BadRequest
from seaweed_py.formats.numbers import parse_uint

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["MAX_PIXELS", "ImageOps", "transform_image"]

_RESIZABLE = frozenset({".png", ".jpg", ".jpeg", ".gif", ".webp"})
_CROPPABLE = frozenset({".png", ".jpg", ".jpeg", ".gif"})
_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".gif": "GIF", ".webp": "PNG"}
MAX_PIXELS = (1 << 31) - 1
"""The largest side or coordinate a query may name (Go's image sizes are `int`s)."""


def _pixels(query: Mapping[str, str], name: str, default: int) -> int:
    text = query.get(name, "")
    if not text:
        return default
    value = parse_uint(text, MAX_PIXELS)
    if value is None:
        raise BadRequest(f"invalid {name} {text!r}: want a number of pixels in 0..{MAX_PIXELS}")
    return value


@dataclass(frozen=True, slots=True)
class ImageOps:
    """The transforms a read asks for; `ImageOps.from_query` is None when there are none."""

    ext: str
    width: int
    height: int
    mode: str
    crop: tuple[int, int, int, int] | None

    @classmethod
    def from_query(cls, query: Mapping[str, str], ext: str) -> ImageOps | None:
        ext = ext.lower()
        if ext not in _RESIZABLE:
            return None
        width, height = _pixels(query, "width", 0), _pixels(query, "height", 0)
        crop = None
        if ext in _CROPPABLE and "crop_x2" in query:
            box = tuple(_pixels(query, f"crop_{n}", -1) for n in ("x1", "y1", "x2", "y2"))
            x1, y1, x2, y2 = box
            if x1 >= 0 and y1 >= 0 and x2 > x1 and y2 > y1:
                crop = (x1, y1, x2, y2)
        if not (width or height or crop):
            return None
        return cls(ext, width, height, query.get("mode", ""), crop)


def transform_image(data: bytes, ops: ImageOps) -> bytes:
    """Apply `ops` to an encoded image; undecodable input comes back unchanged."""
    # Pillow is imported by the first transform, not by every volume server start (most
    # never transform an image, and the import is some 10 ms of the start).
    from PIL import Image, UnidentifiedImageError

    try:
        img: Image.Image = Image.open(io.BytesIO(data))
        img.load()
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return data
    changed = False
    if ops.crop is not None:
        _, _, x2, y2 = ops.crop
        if x2 <= img.width and y2 <= img.height:
            img, changed = img.crop(ops.crop), True
    w, h = ops.width, ops.height
    if (w and img.width > w) or (h and img.height > h):
        img, changed = _resize(img, w, h, ops.mode), True
    if not changed:
        return data
    out = io.BytesIO()
    fmt = _FORMATS[ops.ext]
    if fmt == "JPEG":
        img.convert("RGB").save(out, fmt, quality=75)
    else:
        img.save(out, fmt)
    return out.getvalue()


def _resize(img: Image.Image, w: int, h: int, mode: str) -> Image.Image:
    from PIL import Image
    from PIL import ImageOps as PilOps

    lanczos = Image.Resampling.LANCZOS
    src_w, src_h = img.size
    if mode == "fit":
        scale = min(w / src_w if w else 1.0, h / src_h if h else 1.0)
        return img.resize((max(1, round(src_w * scale)), max(1, round(src_h * scale))), lanczos)
    if (mode == "fill" and w and h) or (not mode and w == h and src_w != src_h):
        return PilOps.fit(img, (w, h), lanczos, centering=(0.5, 0.5))
    if not w:
        w = max(1, round(src_w * h / src_h))
    if not h:
        h = max(1, round(src_h * w / src_w))
    return img.resize((w, h), lanczos)
