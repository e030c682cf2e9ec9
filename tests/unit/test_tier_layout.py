"""Which objects of a bucket belong to which upload of a tiered volume
(storage/backend/layout.py)."""

from __future__ import annotations

import uuid

import pytest

from seaweed_py.storage.backend.layout import dat_key, parse_upload_key, sidecar_keys, upload_of

TOKEN = uuid.UUID("0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9")


@pytest.mark.parametrize("prefix", ["", "tier/", "a b/"])
def test_every_object_of_an_upload_names_its_data_key(prefix: str) -> None:
    data = dat_key(prefix, "col_7", TOKEN)
    for key in (data, *sidecar_keys(data)):
        assert upload_of(prefix, "col_7", key) == data
    assert parse_upload_key(prefix, "col_7", data + ".vif") == data


@pytest.mark.parametrize(
    "key",
    [
        f"7/{TOKEN}",  # volume 7, not 70
        f"70/{TOKEN}.sdx",
        f"70/{TOKEN}.idx.tmp",
        f"70/{str(TOKEN).upper()}",
        f"70/{TOKEN}/x",
        f"x70/{TOKEN}",
        "70/",
        "",
        f"70/{TOKEN}\n",
    ],
)
def test_anything_else_belongs_to_no_upload(key: str) -> None:
    assert upload_of("", "70", key) is None
