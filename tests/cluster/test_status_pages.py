"""The master's and the volume server's status pages, rendered by headless Chromium.

`weedpy server` runs with some traffic behind it; Chromium loads each page as a browser would
(the stylesheet included, nothing else), dumps the rendered DOM, whose text is checked, and
takes a laptop-sized screenshot, checked for the stylesheet's colours. With
`WEEDPY_SCREENSHOTS=<dir>` the screenshots are also copied there (`make screenshots` refreshes
the ones in docs/).

Chromium comes from the Debian packages `chromium` and `chromium-driver` (`.ci/run` installs
them); where it is missing the test is skipped with that reason.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from seaweed_py.client import Client
from tests.cluster.test_readme_walkthrough import weedpy_server

CHROMIUM = next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
)
WINDOW = (1366, 900)
HEADER_RGB = (0x1F, 0x3A, 0x2E)  # --head in seaweed_py/httpkit/static/weedpy.css
_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    f"--window-size={WINDOW[0]},{WINDOW[1]}",
]
_ENV = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}


def chromium(tmp_path: Path, *args: str) -> bytes:
    profile = tmp_path / f"profile-{time.monotonic_ns()}"
    assert CHROMIUM is not None
    done = subprocess.run(
        [CHROMIUM, *_FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        env=_ENV,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    shutil.rmtree(profile, ignore_errors=True)
    return done.stdout


def rendered_text(tmp_path: Path, url: str) -> str:
    """The page's text after rendering, one line per table row or block."""
    for _ in range(3):  # a headless Chromium starved of CPU now and then prints nothing at all
        dom = chromium(tmp_path, "--dump-dom", url).decode()
        if dom.strip():
            break
    dom = re.sub(r"<(script|style)\b.*?</\1>", "", dom, flags=re.S)
    dom = re.sub(r"</(tr|h1|h2|div|p|header)>", "\n", dom)
    dom = re.sub(r"</t[dh]>", " | ", dom)
    return html.unescape(re.sub(r"<[^>]+>", " ", dom))


def screenshot(tmp_path: Path, url: str, name: str) -> Path:
    from PIL import Image

    path = tmp_path / name
    chromium(tmp_path, f"--screenshot={path}", url)
    with Image.open(path) as image:
        assert image.size == WINDOW
        rgb = image.convert("RGB")
        # The stylesheet was loaded: the header bar has its colour, the page is not blank.
        assert rgb.getpixel((WINDOW[0] // 2, 3)) == HEADER_RGB
        assert len(rgb.resize((64, 40)).getcolors(64 * 40) or []) > 8
    target = os.environ.get("WEEDPY_SCREENSHOTS")
    if target:
        shutil.copyfile(path, Path(target) / name)
    return path


def _get_json(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=5) as resp:
        answer: dict[str, object] = json.loads(resp.read())
        return answer


def _traffic(master: str) -> str:
    """Uploads into two collections, reads, a delete; returns the volume server's address."""
    with Client(master) as client:
        stored = [client.upload(os.urandom(40_000 * (i + 1)), name=f"f{i}.bin") for i in range(6)]
        for i in range(3):
            client.upload(os.urandom(300_000), name=f"p{i}.jpg", collection="pictures")
        for result in stored:
            assert len(client.download(result.fid)) > 0
        client.delete(stored[0].fid)
        return stored[1].url.partition("/")[0]


def _wait_for_reported_sizes(master: str) -> None:
    """Until a heartbeat has brought the volume sizes to the master."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = _get_json(f"http://{master}/vol/status")
        text = json.dumps(status)
        if re.search(r'"Size": [1-9]\d{5,}', text) and '"pictures"' in text:
            return
        time.sleep(0.2)
    raise AssertionError("the master never learned the volume sizes")


@pytest.mark.timeout(240)
def test_status_pages_render_in_chromium(tmp_path: Path) -> None:
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed (Debian: apt-get install chromium chromium-driver)")
    pytest.importorskip("PIL")
    with weedpy_server(tmp_path) as master:
        volume = _traffic(master)
        _wait_for_reported_sizes(master)

        page = rendered_text(tmp_path, f"http://{master}/")
        for label in ("weedpy master", "Leader", "Version", "Uptime", "Volume servers"):
            assert label.upper() in page.upper(), label
        assert re.search(r"FREE SLOTS\s*\d+\s+of \d+", page, re.I), page
        assert re.search(r"Topology.*\|\s*" + re.escape(volume), page, re.S | re.I), page
        assert re.search(r"\d+(\.\d)? (KiB|MiB)", page), page
        assert "pictures" in page and "writable" in page
        screenshot(tmp_path, f"http://{master}/", "master-status-page.png")

        page = rendered_text(tmp_path, f"http://{volume}/ui/index.html")
        for label in ("weedpy volume server", "Uptime", "Disks", "Requests, last minute"):
            assert label.upper() in page.upper(), label
        data_dir = str((tmp_path / "data").resolve())
        disk_row = next(line for line in page.splitlines() if data_dir in line)
        # directory | size | used | free | usage %
        size = r"\|\s*[\d.]+ [KMGT]iB\s*"
        assert re.search(size * 3 + r"\|\s*\d+%", disk_row), disk_row
        read_row = next(line for line in page.splitlines() if line.strip().startswith("read |"))
        assert re.search(r"[\d.]+/s", read_row) and not read_row.rstrip(" |").endswith(" 0")
        assert "connected" in page and "pictures" in page
        screenshot(tmp_path, f"http://{volume}/ui/index.html", "volume-status-page.png")


def test_the_readme_shows_the_committed_screenshots() -> None:
    from PIL import Image

    root = Path(__file__).resolve().parents[2]
    readme = (root / "README.md").read_text()
    for name in ("master-status-page.png", "volume-status-page.png"):
        assert f"](docs/{name})" in readme, name
        with Image.open(root / "docs" / name) as image:
            assert image.format == "PNG" and image.size == WINDOW
