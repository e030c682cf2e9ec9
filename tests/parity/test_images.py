"""Image transforms on read (spec §15.2; reference test_volume_server image_transform_test),
against both. Pillow (a dependency of weedpy) makes and measures the images."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from tests.parity.blobs import split_fid, store
from tests.parity.client import get
from tests.parity.targets import Endpoints

pytestmark = pytest.mark.parity


def png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    picture = Image.new("RGB", (width, height))
    for x in range(width):
        for y in range(height):
            picture.putpixel((x, y), (40 * x, 60 * y, 200))
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def picture(cluster: Endpoints) -> str:
    """A 4x3 PNG stored as pic.png; its URL on the volume server."""
    fid = store(cluster, png(4, 3), "pic.png", content_type="image/png")
    return f"{cluster.volume}/{fid}"


def size_of(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:
        width, height = image.size
        return width, height


def test_resize_shrinks_within_the_box(picture: str) -> None:
    reply = get(f"{picture}?width=2&height=1")
    assert reply.status == 200, reply.describe()
    width, height = size_of(reply.body)
    assert width <= 2 and height <= 1
    assert reply.header("Content-Length") == str(len(reply.body))
    assert reply.header("Content-Type") == "image/png"


def test_crop_takes_the_rectangle(picture: str) -> None:
    reply = get(f"{picture}?crop_x1=1&crop_y1=1&crop_x2=4&crop_y2=3")
    assert reply.status == 200, reply.describe()
    assert size_of(reply.body) == (3, 2)


@pytest.mark.parametrize(
    "query", ["width=100&height=100", "crop_x1=0&crop_y1=0&crop_x2=9&crop_y2=9"]
)
def test_transforms_that_do_not_apply_return_the_original(picture: str, query: str) -> None:
    original = get(picture).body
    reply = get(f"{picture}?{query}")
    assert reply.status == 200
    assert reply.body == original


def test_non_images_are_not_transformed(cluster: Endpoints) -> None:
    fid = store(cluster, b"not an image at all", "notes.bin")
    vid, key_cookie = split_fid(fid)
    reply = get(f"{cluster.volume}/{vid}/{key_cookie}/notes.png?width=2&height=1")
    assert reply.status == 200
    assert reply.body == b"not an image at all"
