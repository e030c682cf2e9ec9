"""Content-Type derived from a file extension, as a client sees it (spec §3.3).

When a needle has no stored MIME type, the volume server derives `Content-Type` from the
extension of the file name (here the name in a `/vid/key/name.ext` URL). The reference binary
answers from a table compiled into it, overlaid on the machine's shared-mime-info database.
`reference_extension_types.json` is that compiled-in part: every extension `weed` 4.48 still
typed with `/usr/share/mime` and `/etc/mime.types` hidden from it (probed over ~2,000 extensions
in a private mount namespace), lower-case extensions only, since case variants such as `.C` come
from the system database. Those answers do not depend on the machine, so both
implementations must give exactly them. HEAD is used because a GET of an untyped body lets the
reference sniff one.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.parity.blobs import split_fid, store
from tests.parity.client import head
from tests.parity.targets import Endpoints

pytestmark = pytest.mark.parity

REFERENCE_TYPES: dict[str, str] = json.loads(
    (Path(__file__).parent / "reference_extension_types.json").read_text()
)


def test_extension_types_match_the_reference_table(cluster: Endpoints) -> None:
    fid = store(cluster, b"no name, no type", None, content_type=None)
    vid, key_cookie = split_fid(fid)
    answered = {
        ext: head(f"{cluster.volume}/{vid}/{key_cookie}/file{ext}").header("Content-Type") or ""
        for ext in REFERENCE_TYPES
    }
    wrong = {
        ext: f"{answered[ext]!r}, reference {expected!r}"
        for ext, expected in REFERENCE_TYPES.items()
        if answered[ext] != expected
    }
    assert not wrong, f"{len(wrong)} of {len(REFERENCE_TYPES)} extensions differ: {wrong}"


def test_unknown_extension_has_no_type_on_head(cluster: Endpoints) -> None:
    fid = store(cluster, b"no name, no type", None, content_type=None)
    vid, key_cookie = split_fid(fid)
    reply = head(f"{cluster.volume}/{vid}/{key_cookie}/file.zzqq")
    assert reply.status == 200
    assert reply.header("Content-Type") is None
