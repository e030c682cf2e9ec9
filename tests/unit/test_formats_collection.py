"""Collection names (formats/collection.py): the one parser, its alphabet and its bound, and the
promise the store builds on: an accepted name, joined into a volume file name, is one file in
the data directory and reads back as the same (collection, vid)."""

from __future__ import annotations

import os
from urllib.parse import parse_qs, unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from seaweed_py.errors import BadRequest, InvalidCollection
from seaweed_py.formats.collection import MAX_COLLECTION_LENGTH, parse_collection
from seaweed_py.storage.volume_paths import (
    VOLUME_FILE_SUFFIXES,
    parse_volume_file_name,
    volume_base_name,
)

ECRYPTFS_NAME_MAX = 143  # the tightest NAME_MAX a Linux data directory commonly has
NAME_MAX = 255
MAX_VID = (1 << 32) - 1


@pytest.mark.parametrize(
    "name",
    [
        "",  # the default collection
        "pics",
        "PICS",
        "2024",
        "0",
        "my.bucket",
        "my-bucket",
        "my_old_pics",
        "a_5",  # ends like `_<vid>`: the last `_` still splits the file name right
        ".",
        ".hidden",
        "-dash",
        "_",
        "a.b.c",
        "A-z_0.9",
        "x" * MAX_COLLECTION_LENGTH,  # the bound exactly
    ],
)
def test_valid_names_of_every_class_parse_to_themselves(name: str) -> None:
    assert parse_collection(name) == name
    assert parse_collection(name.encode()) == name


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("..", "'..'"),
        ("a..b", "'..'"),
        ("...", "'..'"),
        ("../../x", "path separator"),
        ("..\\x", "path separator"),
        ("/etc/x", "path separator"),  # an absolute path
        ("/", "path separator"),
        ("a/b", "path separator"),
        ("a\\b", "path separator"),
        ("C:\\x", "outside the alphabet"),
        ("a\x00b", "outside the alphabet"),
        ("\x00", "outside the alphabet"),
        ("a b", "outside the alphabet"),
        (" pics", "outside the alphabet"),
        ("pics\n", "outside the alphabet"),
        ("pics\t", "outside the alphabet"),
        ("%2F", "outside the alphabet"),  # still encoded: % is not in the alphabet
        (unquote("..%2F..%2Fx"), "path separator"),  # what a form parser decodes it to
        (unquote("%2e%2e"), "'..'"),
        ("pïcs", "outside the alphabet"),
        ("коллекция", "outside the alphabet"),
        ("\uff11\uff12", "outside the alphabet"),  # fullwidth digits
        ("a\u2024b", "outside the alphabet"),  # one dot leader, looks like a dot
        ("a\u202eb", "outside the alphabet"),  # right-to-left override
        ("pics*", "outside the alphabet"),
        ("a:b", "outside the alphabet"),
        ("x" * (MAX_COLLECTION_LENGTH + 1), f"at most {MAX_COLLECTION_LENGTH}"),
        ("x" * 100_000, f"at most {MAX_COLLECTION_LENGTH}"),
    ],
)
def test_every_invalid_class_is_a_400_naming_the_parameter_and_the_rule(raw: str, why: str) -> None:
    with pytest.raises(InvalidCollection) as caught:
        parse_collection(raw)
    exc = caught.value
    assert isinstance(exc, BadRequest) and exc.status == 400
    assert exc.message.startswith("invalid collection ")
    assert why in exc.message
    assert exc.body() == {"error": exc.message}
    assert len(exc.message) < 400  # a long value is quoted shortened, not echoed whole


def test_the_parameter_named_in_the_error_is_the_callers() -> None:
    with pytest.raises(InvalidCollection, match=r"^invalid heartbeat volume collection '\.\./x'"):
        parse_collection("../x", "heartbeat volume collection")


@pytest.mark.parametrize("raw", [b"\xff", b"caf\xc3\xa9", b"a/b", b"..", b"a\x00"])
def test_bytes_outside_the_rules_are_refused(raw: bytes) -> None:
    with pytest.raises(InvalidCollection):
        parse_collection(raw)


def test_a_percent_encoded_traversal_is_refused_once_decoded() -> None:
    form = {k: v[0] for k, v in parse_qs("collection=%2E%2E%2F%2E%2E%2Fx").items()}
    assert form["collection"] == "../../x"
    with pytest.raises(InvalidCollection, match="path separator"):
        parse_collection(form["collection"])


def test_the_bound_keeps_every_derived_file_name_under_name_max() -> None:
    longest = volume_base_name("x" * MAX_COLLECTION_LENGTH, MAX_VID)
    for suffix in VOLUME_FILE_SUFFIXES:
        length = len((longest + suffix).encode())
        assert length <= ECRYPTFS_NAME_MAX < NAME_MAX, suffix


# ---------------------------------------------------------------- the property the store needs

_ALPHABET_NAMES = st.from_regex(r"[A-Za-z0-9._-]{0,130}", fullmatch=True)


@given(
    raw=st.one_of(_ALPHABET_NAMES, st.text(max_size=140), st.binary(max_size=140)),
    vid=st.integers(0, MAX_VID),
    suffix=st.sampled_from(VOLUME_FILE_SUFFIXES),
)
def test_an_accepted_name_is_one_file_in_the_directory_and_round_trips(
    raw: str | bytes, vid: int, suffix: str
) -> None:
    try:
        collection = parse_collection(raw)
    except InvalidCollection:
        return
    base = volume_base_name(collection, vid)
    directory = "/srv/weed/data"
    for ext in (suffix, ".idx", ".vif"):
        name = base + ext
        joined = os.path.normpath(os.path.join(directory, name))
        assert os.path.dirname(joined) == directory and os.path.basename(joined) == name
        assert "/" not in name and "\x00" not in name and name not in (".", "..")
        assert len(name.encode()) <= ECRYPTFS_NAME_MAX
    assert parse_volume_file_name(base + ".idx") == (collection, vid)
    assert parse_volume_file_name(base + ".vif") == (collection, vid)


@given(name=st.text(max_size=60), vid=st.integers(0, MAX_VID))
def test_the_file_name_recogniser_accepts_only_what_the_parser_accepts(name: str, vid: int) -> None:
    parsed = parse_volume_file_name(f"{name}_{vid}.idx")
    try:
        collection = parse_collection(name)
    except InvalidCollection:
        assert parsed is None
        return
    if collection:
        assert parsed == (collection, vid)
    else:  # `_7.idx` is no name the store writes (the default collection's is `7.idx`)
        assert parsed is None
