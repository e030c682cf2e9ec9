"""Two volume servers behind one master (spec §3.9, §6; §16 scenarios 17-18), against both.

Replication `001` keeps a second copy on another server of the same rack; a read sent to a
server that does not hold the volume is proxied to one that does (the default `-readMode`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.parity.blobs import assign_at, split_fid, upload
from tests.parity.client import get, request
from tests.parity.targets import skip_unless_runnable
from tests.servers import IMPLS, Impl, start_cluster

pytestmark = pytest.mark.parity


@dataclass(frozen=True)
class Pair:
    impl: Impl
    master: str
    volumes: tuple[str, str]

    def other(self, volume: str) -> str:
        return next(v for v in self.volumes if v != volume)


@dataclass(frozen=True)
class Target:
    fid: str
    url: str


def assign_on(pair: Pair, query: str) -> Target:
    assigned = assign_at(pair.master, query)
    assert assigned.url in pair.volumes
    return Target(assigned.fid, assigned.url)


@pytest.fixture(scope="module", params=IMPLS)
def pair(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pair]:
    impl: Impl = request.param
    skip_unless_runnable(impl)
    running = start_cluster(impl, tmp_path_factory.mktemp(f"pair-{impl}"), volumes=2)
    try:
        first, second = running.volume_urls
        yield Pair(impl, running.master_url, (first, second))
    finally:
        running.stop()


def test_replicated_write_is_on_both_servers(pair: Pair) -> None:
    target = assign_on(pair, "replication=001")
    vid, _ = split_fid(target.fid)
    found = get(f"{pair.master}/dir/lookup?volumeId={vid}")
    assert found.status == 200, found.describe()
    assert {loc["url"] for loc in found.json()["locations"]} == set(pair.volumes)

    reply = upload(target.url, target.fid, b"two copies", "r.bin")
    assert reply.status == 201, reply.describe()
    for volume in pair.volumes:
        assert get(f"{volume}/{target.fid}").body == b"two copies", volume

    deleted = request("DELETE", f"{target.url}/{target.fid}")
    assert deleted.status == 202, deleted.describe()
    for volume in pair.volumes:
        assert get(f"{volume}/{target.fid}").status == 404, volume


def test_read_on_a_server_without_the_volume_is_proxied(pair: Pair) -> None:
    target = assign_on(pair, "")
    assert upload(target.url, target.fid, b"only on one server", "p.bin").status == 201
    vid, _ = split_fid(target.fid)
    assert len(get(f"{pair.master}/dir/lookup?volumeId={vid}").json()["locations"]) == 1
    proxied = get(f"{pair.other(target.url)}/{target.fid}")
    assert proxied.status == 200, proxied.describe()
    assert proxied.body == b"only on one server"
    assert proxied.header("Content-Disposition") == "inline; filename=p.bin"
