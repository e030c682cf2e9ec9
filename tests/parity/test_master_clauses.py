"""Master HTTP clauses of spec §2 one by one (conventions, parameters, error shapes, redirects,
health and /submit edges), the same assertions against `weed` and weedpy.

Nothing here grows volumes: growth clauses live in test_master_admin.py, whose cluster has room.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.parity.blobs import CANONICAL_FID, assign, split_fid, store
from tests.parity.client import Reply, get, head, multipart, request
from tests.parity.targets import Endpoints, skip_unless_runnable
from tests.servers import IMPLS, STOP_GRACE, WEED, Impl, free_port

pytestmark = pytest.mark.parity

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def assert_json(reply: Reply, status: int = 200) -> None:
    """Spec §2.1: JSON answers carry `application/json` and `nosniff`."""
    assert reply.status == status, reply.describe()
    assert reply.header("Content-Type") == "application/json", reply.describe()
    assert reply.header("X-Content-Type-Options") == "nosniff", reply.describe()


def assert_indented(reply: Reply) -> None:
    """`pretty` is Go's 2-space MarshalIndent: what `json.dumps(indent=2)` writes, no newline
    at the end."""
    assert reply.body == json.dumps(reply.json(), indent=2).encode(), reply.body


def assert_compact(reply: Reply) -> None:
    assert reply.body == json.dumps(reply.json(), separators=(",", ":")).encode(), reply.body


# ------------------------------------------------------------ §2.1 conventions


@pytest.mark.parametrize(
    "path",
    ["/dir/assign", "/dir/lookup?volumeId={vid}", "/dir/status", "/vol/status", "/cluster/status"],
)
def test_json_answers_are_compact_and_pretty_indents_them(cluster: Endpoints, path: str) -> None:
    vid, _ = split_fid(assign(cluster).fid)
    url = f"{cluster.master}{path.format(vid=vid)}"
    plain = get(url)
    assert_json(plain)
    assert_compact(plain)
    pretty = get(url + ("&" if "?" in url else "?") + "pretty=y")
    assert_json(pretty)
    assert_indented(pretty)


@pytest.mark.parametrize(
    "path", ["/dir/lookup?volumeId=9999", "/dir/assign?replication=xyz", "/9999,01637037d6"]
)
def test_error_answers_are_json_objects_with_an_error_string(cluster: Endpoints, path: str) -> None:
    reply = get(f"{cluster.master}{path}")
    assert reply.status in (404, 406), reply.describe()
    assert_json(reply, reply.status)
    assert isinstance(reply.json()["error"], str) and reply.json()["error"]


def test_error_answers_honour_pretty(cluster: Endpoints) -> None:
    reply = get(f"{cluster.master}/dir/lookup?volumeId=9999&pretty=y")
    assert_json(reply, 404)
    assert_indented(reply)
    assert reply.json() == {"volumeOrFileId": "9999", "error": "volume id 9999 not found"}


def test_callback_is_ignored_no_jsonp(cluster: Endpoints) -> None:
    reply = get(f"{cluster.master}/dir/assign?callback=cb")
    assert_json(reply)
    assert reply.body.startswith(b"{"), reply.body
    assert CANONICAL_FID.match(reply.json()["fid"])


def test_assign_reads_a_form_body(cluster: Endpoints) -> None:
    reply = request("POST", f"{cluster.master}/dir/assign", headers=FORM, body=b"count=3")
    assert_json(reply)
    assert reply.json()["count"] == 3


@pytest.mark.parametrize(
    "path", ["/dir/assign", "/dir/lookup?volumeId=1", "/collection/info?collection=none"]
)
def test_pretty_is_read_from_the_url_only(cluster: Endpoints, path: str) -> None:
    reply = request("POST", f"{cluster.master}{path}", headers=FORM, body=b"pretty=y")
    assert reply.header("Content-Type") == "application/json", reply.describe()
    assert_compact(reply)


def test_lookup_reads_a_form_body(cluster: Endpoints) -> None:
    vid, _ = split_fid(assign(cluster).fid)
    reply = request(
        "POST", f"{cluster.master}/dir/lookup", headers=FORM, body=f"volumeId={vid}".encode()
    )
    assert_json(reply)
    assert reply.json()["volumeOrFileId"] == vid


def test_lookup_and_assign_read_multipart_form_fields(cluster: Endpoints) -> None:
    # `curl -F volumeId=3 .../dir/lookup`: Go's FormValue reads multipart fields too.
    vid, _ = split_fid(assign(cluster).fid)
    boundary = "parityform"

    def fields(**values: str) -> bytes:
        return (
            b"".join(
                f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
                for k, v in values.items()
            )
            + f"--{boundary}--\r\n".encode()
        )

    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    reply = request(
        "POST", f"{cluster.master}/dir/lookup", headers=headers, body=fields(volumeId=vid)
    )
    assert_json(reply)
    assert reply.json()["volumeOrFileId"] == vid
    reply = request("POST", f"{cluster.master}/dir/assign", headers=headers, body=fields(count="3"))
    assert_json(reply)
    assert reply.json()["count"] == 3


# ------------------------------------------------------------ §2.3 /dir/assign parameters


@pytest.mark.parametrize("count", ["0", "abc", "-2", "0x10"])
def test_assign_count_that_is_zero_or_unparsable(cluster: Endpoints, count: str) -> None:
    """The reference reads it as 1; weedpy refuses it (400), so that a client asking for 16
    keys with `count=0x10` is not handed one without knowing (docs/compat.md)."""
    reply = get(f"{cluster.master}/dir/assign?count={count}")
    if cluster.impl == "weed":
        assert_json(reply)
        assert reply.json()["count"] == 1
    else:
        assert_json(reply, 400)
        assert reply.json() == {
            "error": f"invalid count {count!r}: want a whole number in 1..4294967295"
        }


def test_assign_with_unparsable_memory_map_size_is_406(cluster: Endpoints) -> None:
    reply = get(f"{cluster.master}/dir/assign?memoryMapMaxSizeMb=abc")
    assert_json(reply, 406)
    assert set(reply.json()) == {"error"}, reply.json()


@pytest.mark.parametrize("param", ["preallocate=abc", "ttl=abc", "replication=xyz"])
def test_assign_with_an_unparsable_grow_option_is_406(cluster: Endpoints, param: str) -> None:
    reply = get(f"{cluster.master}/dir/assign?{param}")
    assert_json(reply, 406)
    assert set(reply.json()) == {"error"}, reply.json()


@pytest.mark.parametrize("path", ["/dir/assign?", "/vol/grow?count=0&"])
@pytest.mark.parametrize("code", ["abc", "300"])
def test_a_malformed_replication_is_406_in_the_reference_s_words(
    cluster: Endpoints, path: str, code: str
) -> None:
    reply = get(f"{cluster.master}{path}replication={code}")
    assert_json(reply, 406)
    assert reply.json() == {"error": f"unexpected replication type: {code}"}


@pytest.mark.parametrize(
    ("query", "named"),
    [
        # The parameter is `disk` (spec §2.3): no server has an ssd, so there is nowhere to grow.
        ("disk=ssd", '"ssd"'),
        # A constrained assign keeps the same message; the option JSON names the constraint.
        ("disk=ssd&dataNode=nowhere", '"dataNode":"nowhere"'),
    ],
)
def test_assign_with_nowhere_to_grow_is_406_with_the_reference_message(
    cluster: Endpoints, query: str, named: str
) -> None:
    reply = get(f"{cluster.master}/dir/assign?{query}")
    assert_json(reply, 406)
    error = reply.json()["error"]
    assert error.startswith(
        "failed to find writable volumes for collection: replication:000 ttl: error: "
        "No writable volumes and no free volumes left for {"
    ), error
    assert named in error


# ------------------------------------------------------------ §2.4 /dir/lookup


def test_lookup_without_a_volume_id_is_404(cluster: Endpoints) -> None:
    reply = get(f"{cluster.master}/dir/lookup")
    assert_json(reply, 404)
    assert reply.json() == {"error": "unknown volume id "}


def test_lookup_of_an_unparsable_volume_id_is_404(cluster: Endpoints) -> None:
    reply = get(f"{cluster.master}/dir/lookup?volumeId=abc")
    assert_json(reply, 404)
    assert reply.json() == {"volumeOrFileId": "abc", "error": "unknown volume id abc"}


def test_lookup_in_a_collection_that_lacks_the_volume_is_404(cluster: Endpoints) -> None:
    vid, _ = split_fid(assign(cluster).fid)
    reply = get(f"{cluster.master}/dir/lookup?volumeId={vid}&collection=elsewhere")
    assert_json(reply, 404)
    assert reply.json() == {"volumeOrFileId": vid, "error": f"volume id {vid} not found"}


def test_lookup_file_id_wins_over_volume_id(cluster: Endpoints) -> None:
    fid = assign(cluster).fid
    vid, _ = split_fid(fid)
    reply = get(f"{cluster.master}/dir/lookup?volumeId=9999&fileId={fid}")
    assert_json(reply)
    assert reply.json()["volumeOrFileId"] == vid
    assert reply.json()["locations"][0]["url"] == cluster.volume


@pytest.mark.parametrize("file_id", ["abc", "9999", ",01637037d6"])
def test_lookup_file_id_without_a_vid_and_comma_falls_back_to_volume_id(
    cluster: Endpoints, file_id: str
) -> None:
    vid, _ = split_fid(assign(cluster).fid)
    reply = get(f"{cluster.master}/dir/lookup?fileId={file_id}&volumeId={vid}")
    assert_json(reply)
    assert reply.json()["volumeOrFileId"] == vid
    alone = get(f"{cluster.master}/dir/lookup?fileId={file_id}")
    assert_json(alone, 404)
    assert alone.json() == {"error": "unknown volume id "}


# ------------------------------------------------------------ §2.12 the /<fid> redirect


def test_redirect_answers_go_s_html_body(cluster: Endpoints) -> None:
    fid = store(cluster, b"redirect body")
    reply = get(f"{cluster.master}/{fid}")
    location = f"http://{cluster.volume}/{fid}"
    assert reply.status == 308, reply.describe()
    assert reply.header("Location") == location
    assert reply.header("Content-Type") == "text/html; charset=utf-8"
    assert reply.body == f'<a href="{location}">Permanent Redirect</a>.\n\n'.encode()


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_redirect_keeps_every_method(cluster: Endpoints, method: str) -> None:
    fid = store(cluster, b"redirect any method")
    reply = request(method, f"{cluster.master}/{fid}?ts=1")
    assert reply.status == 308, reply.describe()
    assert reply.header("Location") == f"http://{cluster.volume}/{fid}?ts=1"


def test_redirect_honours_collection(cluster: Endpoints) -> None:
    fid = store(cluster, b"redirect in default collection")
    reply = get(f"{cluster.master}/{fid}?collection=elsewhere")
    vid, _ = split_fid(fid)
    assert_json(reply, 404)
    assert reply.json() == {"error": f"volume id {vid} not found: volume id {vid} not found"}


@pytest.mark.parametrize("segment", ["abc", "abc,01637037d6", "dir"])
def test_redirect_of_an_unparsable_volume_id_is_404(cluster: Endpoints, segment: str) -> None:
    vid = segment.split(",")[0]
    reply = get(f"{cluster.master}/{segment}")
    assert_json(reply, 404)
    assert reply.json() == {"error": f"volume id {vid} not found: unknown volume id {vid}"}


@pytest.mark.parametrize(
    "path", ["/3/01637037d6", "/3,01637037d6/name.txt", "/dir/", "/stats/health", "/stats/counter"]
)
def test_paths_of_more_than_one_segment_are_go_s_text_404(cluster: Endpoints, path: str) -> None:
    reply = get(f"{cluster.master}{path}")
    assert reply.status == 404, reply.describe()
    assert reply.header("Content-Type") == "text/plain; charset=utf-8"
    assert reply.header("X-Content-Type-Options") == "nosniff"
    assert reply.body == b"404 page not found\n"


# ------------------------------------------------------------ §2.13 health and cluster


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/cluster/healthz"])
def test_health_probes_answer_200_to_get_and_head(cluster: Endpoints, path: str) -> None:
    for reply in (get(f"{cluster.master}{path}"), head(f"{cluster.master}{path}")):
        assert reply.status == 200, reply.describe()
        assert reply.body == b""


def test_cluster_status_refuses_post(cluster: Endpoints) -> None:
    assert request("POST", f"{cluster.master}/cluster/status").status == 405


def test_cluster_status_head_has_the_get_headers(cluster: Endpoints) -> None:
    reply = head(f"{cluster.master}/cluster/status")
    assert reply.status == 200, reply.describe()
    assert reply.header("Content-Type") == "application/json"
    assert reply.body == b""


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_ui_pages_are_html_for_any_method(cluster: Endpoints, method: str) -> None:
    for path in ("/", "/ui/index.html"):
        reply = request(method, f"{cluster.master}{path}")
        assert reply.status == 200, reply.describe()
        assert reply.header("Content-Type") == "text/html; charset=utf-8"
        assert reply.body.lstrip().lower().startswith(b"<!doctype html>")
    page = head(f"{cluster.master}/")
    assert page.status == 200, page.describe()
    assert page.body == b""


# ------------------------------------------------------------ §2.11 /submit edges


def test_submit_pretty_indents_the_answer(cluster: Endpoints) -> None:
    body, form_type = multipart(b"pretty submit", "p.txt")
    reply = request(
        "POST",
        f"{cluster.master}/submit?pretty=y",
        headers={"Content-Type": form_type},
        body=body,
    )
    assert_json(reply, 201)
    assert_indented(reply)
    assert reply.json()["fileName"] == "p.txt"


def test_submit_of_a_raw_body_is_named_after_the_path(cluster: Endpoints) -> None:
    data = b"raw submitted body"
    reply = request(
        "POST",
        f"{cluster.master}/submit",
        headers={"Content-Type": "application/octet-stream"},
        body=data,
    )
    assert_json(reply, 201)
    answer = reply.json()
    assert answer["fileName"] == "submit"
    assert answer["size"] == len(data)
    assert get(answer["fileUrl"]).body == data


@pytest.mark.parametrize("data", [b"", b"untyped body"])
def test_submit_without_a_content_type_is_400(cluster: Endpoints, data: bytes) -> None:
    reply = request("POST", f"{cluster.master}/submit", body=data)
    assert_json(reply, 400)
    assert reply.json() == {"error": "request Content-Type isn't multipart/form-data"}


def test_submit_of_a_malformed_multipart_body_is_400(cluster: Endpoints) -> None:
    reply = request(
        "POST",
        f"{cluster.master}/submit",
        headers={"Content-Type": "multipart/form-data; boundary=nowhere"},
        body=b"no parts in here",
    )
    assert_json(reply, 400)
    assert isinstance(reply.json()["error"], str)


def test_submit_refuses_put(cluster: Endpoints) -> None:
    body, form_type = multipart(b"put", "p.txt")
    reply = request(
        "PUT", f"{cluster.master}/submit", headers={"Content-Type": form_type}, body=body
    )
    assert_json(reply, 405)
    assert reply.json() == {"error": "Only submit via POST!"}


# ------------------------------------------------------------ §2.2 -disableHttp


@pytest.fixture(scope="module", params=IMPLS)
def api_disabled(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A lone master started with `-disableHttp` (no volume server is needed to see its
    routes); yields its `host:port`."""
    impl: Impl = request.param
    skip_unless_runnable(impl)
    base: Path = tmp_path_factory.mktemp(f"disable-http-{impl}")
    port = free_port()
    command = [str(WEED)] if impl == "weed" else [sys.executable, "-m", "seaweed_py"]
    args = ["master", "-ip=127.0.0.1", f"-port={port}", f"-mdir={base}", "-peers=none"]
    with (base / "master.log").open("wb") as log:
        proc = subprocess.Popen(
            [*command, *args, "-telemetry=false", "-disableHttp"],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    address = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, (base / "master.log").read_text(errors="replace")
            try:
                if get(f"{address}/healthz").status == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the master did not come up"
            time.sleep(0.1)
        yield address
    finally:
        proc.terminate()
        try:
            proc.wait(STOP_GRACE)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize(
    "path",
    [
        "/dir/assign",
        "/dir/lookup?volumeId=1",
        "/dir/status",
        "/vol/status",
        "/vol/grow?count=1",
        "/col/delete?collection=x",
        "/collection/info?collection=x",
        "/submit",
        "/3,01637037d6",
    ],
)
def test_disable_http_turns_the_client_api_off(api_disabled: str, path: str) -> None:
    reply = get(f"{api_disabled}{path}")
    assert reply.status == 404, reply.describe()
    assert reply.header("Content-Type") == "text/plain; charset=utf-8"
    assert reply.body == b"404 page not found\n"


@pytest.mark.parametrize(
    "path", ["/healthz", "/readyz", "/cluster/healthz", "/cluster/status", "/"]
)
def test_disable_http_keeps_the_ui_and_probes(api_disabled: str, path: str) -> None:
    reply = get(f"{api_disabled}{path}")
    assert reply.status == 200, reply.describe()
