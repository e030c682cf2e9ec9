"""Client-side steps the parity tests share: assign, upload, and file-id arithmetic.

File ids are handled here with a few lines of independent code rather than weedpy's own parser,
so that the suite stays a black box for both implementations.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import crc32c

from tests.parity.client import Reply, multipart, request
from tests.parity.targets import Endpoints

# vid, then the key with its leading zero bytes dropped (whole bytes), then 8 cookie digits.
CANONICAL_FID = re.compile(r"^[1-9][0-9]*,(?!00)(?:[0-9a-f]{2})+[0-9a-f]{8}$")
QUOTED_ETAG = re.compile(r'^"[0-9a-f]{8}"$')


@dataclass(frozen=True)
class Assigned:
    fid: str
    url: str
    public_url: str
    count: int


def assign(cluster: Endpoints, query: str = "") -> Assigned:
    return assign_at(cluster.master, query)


def assign_at(master: str, query: str = "") -> Assigned:
    reply = request("GET", f"{master}/dir/assign{'?' + query if query else ''}")
    assert reply.status == 200, reply.describe()
    body = reply.json()
    return Assigned(body["fid"], body["url"], body["publicUrl"], body["count"])


def etag_of(data: bytes) -> str:
    """The reference's ETag value: CRC32-C of the stored bytes as 8 hex digits."""
    return f"{crc32c.crc32c(data):08x}"


def split_fid(fid: str) -> tuple[str, str]:
    """('3', '01637037d6') from '3,01637037d6'."""
    vid, key_cookie = fid.split(",", 1)
    return vid, key_cookie


def key_of(fid: str) -> int:
    return int(split_fid(fid)[1][:-8], 16)


def with_key(fid: str, key: int) -> str:
    """The canonical fid for another key in the same volume with the same cookie."""
    vid, key_cookie = split_fid(fid)
    key_hex = key.to_bytes(8, "big").lstrip(b"\0").hex()
    return f"{vid},{key_hex}{key_cookie[-8:]}"


def with_cookie(fid: str, cookie: int) -> str:
    vid, key_cookie = split_fid(fid)
    return f"{vid},{key_cookie[:-8]}{cookie:08x}"


def other_cookie(fid: str) -> str:
    """The same volume and key under a cookie that differs from the assigned one."""
    cookie = int(split_fid(fid)[1][-8:], 16)
    return with_cookie(fid, (cookie + 1) & 0xFFFFFFFF)


def upload(
    address: str,
    fid: str,
    data: bytes,
    filename: str | None = "blob.bin",
    *,
    content_type: str | None = "application/octet-stream",
    headers: Mapping[str, str] | None = None,
    query: str = "",
    method: str = "POST",
) -> Reply:
    """A multipart upload, as `curl -F file=@<filename> http://<address>/<fid>` sends it."""
    body, form_type = multipart(data, filename, content_type=content_type)
    all_headers = {"Content-Type": form_type, **(headers or {})}
    target = f"{address}/{fid}{'?' + query if query else ''}"
    return request(method, target, headers=all_headers, body=body)


def put_raw(
    address: str,
    fid: str,
    data: bytes,
    content_type: str,
    *,
    headers: Mapping[str, str] | None = None,
    query: str = "",
    method: str = "PUT",
) -> Reply:
    """A raw-body upload (not multipart)."""
    all_headers = {"Content-Type": content_type, **(headers or {})}
    target = f"{address}/{fid}{'?' + query if query else ''}"
    return request(method, target, headers=all_headers, body=data)


def store(
    cluster: Endpoints,
    data: bytes,
    filename: str | None = "blob.bin",
    *,
    content_type: str | None = "application/octet-stream",
    headers: Mapping[str, str] | None = None,
) -> str:
    """Assign a fid and upload `data` to it with multipart; returns the fid."""
    fid = assign(cluster).fid
    reply = upload(cluster.volume, fid, data, filename, content_type=content_type, headers=headers)
    assert reply.status == 201, reply.describe()
    return fid
