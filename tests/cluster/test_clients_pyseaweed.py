"""pyseaweed 2.0.0 (PyPI), unmodified, against a real cluster: weedpy and the reference `weed`.

The product promise is that existing SeaweedFS clients work unchanged. Every public call of
`pyseaweed.SeaweedFS` is driven through its own HTTP code (`requests`) against a master and two
volume servers on loopback, and every test runs against both implementations, so a difference
between them is a weedpy bug (or a gap named in the README).
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pyseaweed import SeaweedFS  # type: ignore[import-untyped]

from tests.parity.targets import skip_unless_runnable
from tests.servers import Cluster, Impl, VolumeSpec, call, get_json, start_cluster

FID = re.compile(r"^\d+,[0-9a-f]+$")


@pytest.fixture(scope="module", autouse=True)
def _no_proxy() -> Iterator[None]:
    """requests honours the environment's proxies; a user's loopback traffic does not use one."""
    with pytest.MonkeyPatch.context() as mp:
        for name in [k for k in os.environ if k.lower().endswith("_proxy")]:
            mp.delenv(name)
        yield


@pytest.fixture(scope="module", params=["weedpy", "weed"])
def cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    """A master and two volume servers (replication 001 needs two), shared by the module."""
    impl: Impl = request.param
    skip_unless_runnable(impl)
    directory = tmp_path_factory.mktemp(f"pyseaweed-{impl}")
    with start_cluster(impl, directory, [VolumeSpec(max_volumes=30)] * 2) as running:
        yield running


def _client(cluster: Cluster, **options: Any) -> Any:
    host, port = cluster.master_url.split(":")
    return SeaweedFS(host, int(port), **options)


def _urls_of(cluster: Cluster, fid: str) -> set[str]:
    """The URLs pyseaweed may build for `fid`: one per volume server of the cluster."""
    return {f"http://{volume}/{fid}" for volume in cluster.volume_urls}


def test_version_is_the_masters(cluster: Cluster) -> None:
    version = _client(cluster).version
    assert version == get_json(f"{cluster.master_url}/dir/status")["Version"]
    assert isinstance(version, str) and len(version.split()) >= 2, version


def test_upload_by_path_reads_back(cluster: Cluster, tmp_path: Path) -> None:
    weed = _client(cluster)
    data = os.urandom(20_000)
    photo = tmp_path / "photo.bin"
    photo.write_bytes(data)

    fid = weed.upload_file(str(photo))

    assert isinstance(fid, str) and FID.match(fid), fid
    assert weed.get_file(fid) == data
    assert weed.get_file_size(fid) == len(data)
    assert weed.file_exists(fid) is True
    assert weed.get_file_url(fid) in _urls_of(cluster, fid)
    assert weed.get_file_url(fid, public=False) in _urls_of(cluster, fid)
    location = weed.get_file_location(fid.split(",")[0])
    assert location.url in cluster.volume_urls
    assert location.public_url in cluster.volume_urls


def test_upload_of_streams_reads_back(cluster: Cluster, tmp_path: Path) -> None:
    weed = _client(cluster)
    in_memory = os.urandom(3000)
    fid = weed.upload_file(stream=io.BytesIO(in_memory), name="blob.bin")
    assert weed.get_file(fid) == in_memory

    on_disk = os.urandom(70_000)
    (tmp_path / "big.bin").write_bytes(on_disk)
    with (tmp_path / "big.bin").open("rb") as stream:
        fid = weed.upload_file(stream=stream, name="big.bin")
    assert weed.get_file(fid) == on_disk
    assert weed.get_file_size(fid) == len(on_disk)


@pytest.mark.parametrize(
    "name",
    ["naïve café.bin", 'quo"te.bin', "日本.txt", "semi;colon.jpg", "a b.tar.gz", "no-extension"],
)
def test_awkward_file_names_upload(cluster: Cluster, name: str) -> None:
    """requests (urllib3 2) writes the multipart filename raw in UTF-8 with `"` as %22; the
    volume server must take the part whatever its name says."""
    weed = _client(cluster)
    data = os.urandom(100)
    fid = weed.upload_file(stream=io.BytesIO(data), name=name)
    assert isinstance(fid, str) and FID.match(fid), (name, fid)
    assert weed.get_file(fid) == data


def test_compressible_text_reads_back_as_written(cluster: Cluster) -> None:
    """A `.txt` is stored gzipped; requests asks for gzip and decodes, so the bytes match, and
    `get_file_size` reports the stored (compressed) length, as pyseaweed's docstring warns."""
    weed = _client(cluster)
    text = b"the quick brown fox jumps over the lazy dog\n" * 300
    fid = weed.upload_file(stream=io.BytesIO(text), name="notes.txt")
    assert weed.get_file(fid) == text
    size = weed.get_file_size(fid)
    assert isinstance(size, int) and 0 < size < len(text), size


def test_assign_options_reach_the_master(cluster: Cluster) -> None:
    """upload_file's keyword arguments are /dir/assign's query: collection, replication, ttl."""
    weed = _client(cluster)
    data = os.urandom(1000)
    fid = weed.upload_file(
        stream=io.BytesIO(data), name="r.bin", collection="clients", replication="001"
    )
    ttl_fid = weed.upload_file(stream=io.BytesIO(data), name="t.bin", ttl="5m")
    assert weed.get_file(fid) == data
    assert weed.get_file(ttl_fid) == data

    vid = int(fid.split(",")[0])
    layouts = get_json(f"{cluster.master_url}/dir/status")["Topology"]["Layouts"]
    holding = [lay for lay in layouts if vid in lay["writables"]]
    assert [(lay["collection"], lay["replication"]) for lay in holding] == [("clients", "001")]
    ttl_vid = int(ttl_fid.split(",")[0])
    assert [lay["ttl"] for lay in layouts if ttl_vid in lay["writables"]] == ["5m"]

    # Replicated: both volume servers serve it, whichever location pyseaweed picks.
    found = get_json(f"{cluster.master_url}/dir/lookup?volumeId={vid}&collection=clients")
    assert sorted(loc["url"] for loc in found["locations"]) == sorted(cluster.volume_urls)
    for volume in cluster.volume_urls:
        assert call("GET", f"{volume}/{fid}") == (200, data)


def test_session_and_internal_urls(cluster: Cluster) -> None:
    weed = _client(cluster, use_session=True, use_public_url=False)
    data = os.urandom(500)
    fid = weed.upload_file(stream=io.BytesIO(data), name="s.bin")
    assert weed.get_file(fid) == data
    assert weed.get_file_url(fid) in _urls_of(cluster, fid)
    assert weed.delete_file(fid) is True
    assert weed.get_file(fid) is None


def test_delete_makes_the_file_missing(cluster: Cluster) -> None:
    weed = _client(cluster)
    fid = weed.upload_file(stream=io.BytesIO(b"short-lived"), name="gone.bin")
    assert weed.file_exists(fid) is True

    assert weed.delete_file(fid) is True

    assert weed.get_file(fid) is None
    assert weed.get_file_size(fid) is None
    assert weed.file_exists(fid) is False
    # A second delete finds nothing: the volume server answers 404, pyseaweed reports False.
    assert weed.delete_file(fid) is False


def test_unknown_key_in_a_known_volume_is_missing(cluster: Cluster) -> None:
    weed = _client(cluster)
    fid = weed.upload_file(stream=io.BytesIO(b"neighbour"), name="n.bin")
    vid = fid.split(",")[0]
    stranger = f"{vid},7fffffff0102030405"
    assert weed.get_file(stranger) is None
    assert weed.file_exists(stranger) is False
    assert weed.delete_file(stranger) is False


def test_empty_file_is_stored_but_not_reported(cluster: Cluster) -> None:
    """The reference omits `size` when it is 0, and pyseaweed takes a missing `size` to mean the
    upload failed: upload_file answers None although the volume server answered 201. weedpy
    must answer the same way, or a client that works around it would break."""
    weed = _client(cluster)
    assert weed.upload_file(stream=io.BytesIO(b""), name="empty.bin") is None


def test_vacuum(cluster: Cluster) -> None:
    weed = _client(cluster)
    assert weed.vacuum() is True
    assert weed.vacuum(threshold=0.9) is True
