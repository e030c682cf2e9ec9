"""A client-only install at work: with every server package unimportable, the SDK and
`weedpy upload`/`download` store and fetch blobs on a real cluster (weedpy, and the reference `weed`)."""

from __future__ import annotations

from pathlib import Path

from tests import servers
from tests.servers import Cluster
from tests.unit.test_packaging import SERVER_PACKAGES, _client_only

impl = servers.impl
shared_cluster = servers.shared_cluster


def test_sdk_and_client_commands_work_without_server_packages(
    shared_cluster: Cluster, tmp_path: Path
) -> None:
    (tmp_path / "a.txt").write_bytes(b"client only\n")
    done = _client_only(
        """
        import sys
        from pathlib import Path
        from seaweed_py.client import Client
        from seaweed_py.cli.main import main
        master, folder = sys.argv[1], Path(sys.argv[2])
        with Client(master) as client:
            stored = client.upload(b"sdk bytes", name="s.bin")
            assert client.download(stored.fid) == b"sdk bytes"
        assert main(["upload", f"-master={master}", str(folder / "a.txt")]) == 0
        loaded = {n.partition(".")[0] for n in sys.modules} & set(sys.argv[3:])
        assert not loaded, loaded
        """,
        shared_cluster.master_url,
        str(tmp_path),
        *SERVER_PACKAGES,
    )
    assert done.returncode == 0, done.stderr
    fid = done.stdout.split("\t")[0]
    out = tmp_path / "out"
    out.mkdir()
    done = _client_only(
        """
        import sys
        from seaweed_py.cli.main import main
        sys.exit(main(["download", f"-master={sys.argv[1]}", f"-dir={sys.argv[2]}", sys.argv[3]]))
        """,
        shared_cluster.master_url,
        str(out),
        fid,
    )
    assert done.returncode == 0, done.stderr
    assert (out / "a.txt").read_bytes() == b"client only\n"
