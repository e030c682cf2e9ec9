"""Image transforms on read (spec §15.2), on images made with Pillow."""

from __future__ import annotations

import io
import tomllib
from pathlib import Path

import pytest
from PIL import Image

from seaweed_py.errors import BadRequest
from seaweed_py.volume.images import ImageOps, transform_image


def _png(w: int, h: int, fmt: str = "PNG") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (w, h), (200, 10, 10)).save(out, fmt)
    return out.getvalue()


def _size(data: bytes) -> tuple[int, int]:
    w, h = Image.open(io.BytesIO(data)).size
    return int(w), int(h)


def _apply(data: bytes, query: dict[str, str], ext: str = ".png") -> bytes:
    ops = ImageOps.from_query(query, ext)
    assert ops is not None
    return transform_image(data, ops)


def test_no_transform_for_other_types_or_without_parameters() -> None:
    assert ImageOps.from_query({"width": "2"}, ".txt") is None
    assert ImageOps.from_query({}, ".png") is None
    assert (
        ImageOps.from_query(
            {"crop_x1": "0", "crop_y1": "0", "crop_x2": "1", "crop_y2": "1"}, ".webp"
        )
        is None
    )


def test_resize_shrinks_within_the_requested_box() -> None:
    w, h = _size(_apply(_png(4, 3), {"width": "2", "height": "1"}))
    assert w <= 2 and h <= 1


def test_crop_happens_before_resize() -> None:
    out = _apply(_png(4, 3), {"crop_x1": "1", "crop_y1": "1", "crop_x2": "4", "crop_y2": "3"})
    assert _size(out) == (3, 2)
    too_big = {"crop_x1": "0", "crop_y1": "0", "crop_x2": "9", "crop_y2": "3"}
    original = _png(4, 3)
    assert _apply(original, too_big) == original


def test_modes_fit_fill_and_square_thumbnail() -> None:
    assert _size(_apply(_png(40, 20), {"width": "10", "height": "10", "mode": "fit"})) == (10, 5)
    assert _size(_apply(_png(40, 20), {"width": "10", "height": "8", "mode": "fill"})) == (10, 8)
    assert _size(_apply(_png(40, 20), {"width": "10", "height": "10"})) == (10, 10)
    assert _size(_apply(_png(40, 20), {"width": "20"})) == (20, 10)


def test_smaller_images_and_undecodable_bytes_come_back_unchanged() -> None:
    small = _png(4, 3)
    assert _apply(small, {"width": "10"}) == small
    assert _apply(b"not an image", {"width": "10"}) == b"not an image"


def test_jpeg_stays_jpeg_and_webp_becomes_png() -> None:
    out = _apply(_png(40, 20, "JPEG"), {"width": "10"}, ".jpg")
    assert out[:3] == b"\xff\xd8\xff"
    out = _apply(_png(40, 20, "WEBP"), {"width": "10"}, ".webp")
    assert out[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("name", ["width", "height", "crop_x1", "crop_y2"])
@pytest.mark.parametrize(
    "text", ["abc", "-5", "0x10", "1.5", " 7", "\uff17", "1_0", "9" * 20, "9" * 5000]
)
def test_a_parameter_that_is_not_a_number_of_pixels_is_the_client_s_400(
    name: str, text: str
) -> None:
    """The reference reads these as 0 ("no transform") and answers the full image: the client
    cannot tell a typo from an image too small to shrink."""
    query = {"crop_x1": "0", "crop_y1": "0", "crop_x2": "2", "crop_y2": "2", name: text}
    with pytest.raises(BadRequest) as raised:
        ImageOps.from_query(query, ".png")
    assert raised.value.status == 400
    assert raised.value.message.startswith(f"invalid {name} ")
    # where a parameter does not apply, it is not read
    assert ImageOps.from_query({name: text}, ".txt") is None


def test_pillow_comes_with_the_server_not_as_an_extra_of_its_own() -> None:
    """Issue 12: a server installed without the `image` extra answered `?width=` with a 500.
    Pillow is one of the server's dependencies (the `server` extra), like uvloop."""
    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    extras = tomllib.loads(pyproject.read_text())["project"]["optional-dependencies"]
    assert any(dep.startswith("Pillow") for dep in extras["server"])
    for name, deps in extras.items():
        assert name == "server" or not any(dep.startswith("Pillow") for dep in deps), name
