"""The status pages' shared pieces: human units, escaping, the stylesheet."""

from __future__ import annotations

import pytest

from seaweed_py.httpkit import Request
from seaweed_py.httpkit.pages import (
    Cell,
    facts,
    fill_bar,
    human_bytes,
    human_duration,
    human_rate,
    page,
    stylesheet,
    table,
)


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "0 B"),
        (1, "1 B"),
        (1023, "1023 B"),
        (1024, "1 KiB"),
        (1536, "1.5 KiB"),
        (43_234, "42.2 KiB"),
        (150 * 1024, "150 KiB"),
        (30 * 1024**3, "30 GiB"),
        (1024**4 - 1, "1 TiB"),
        (99.97 * 1024, "100 KiB"),
        (-2048, "-2 KiB"),
        (5 * 1024**6, "5 EiB"),
        (2**70, "1024 EiB"),  # beyond the largest unit: still that unit
    ],
)
def test_human_bytes(n: int, text: str) -> None:
    assert human_bytes(n) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (-5, "0s"),
        (0, "0s"),
        (59.9, "59s"),
        (60, "1m"),
        (200, "3m 20s"),
        (3661, "1h 1m"),
        (5 * 86400 + 7200 + 5, "5d 2h"),
    ],
)
def test_human_duration(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


def test_human_rate() -> None:
    assert [human_rate(r) for r in (0, 0.016, 9.999, 12.4, 25_000)] == [
        "0/s",
        "0.02/s",
        "10.00/s",
        "12/s",
        "25,000/s",
    ]


def test_fill_bar_clamps_and_warns() -> None:
    assert "width:0.0%" in fill_bar(-1) and "width:100.0%" in fill_bar(7)
    assert 'class="bar"' in fill_bar(0.5)
    assert 'class="bar warn"' in fill_bar(0.85)
    assert 'class="bar bad"' in fill_bar(0.97)
    assert fill_bar(0.5, "<x>").endswith("&lt;x&gt;")


def test_table_escapes_plain_values_and_keeps_cells() -> None:
    html_text = table(["<h>", "n"], [["<script>", 3], [Cell("<b>ok</b>", numeric=True), 2.5]])
    assert "&lt;h&gt;" in html_text and "&lt;script&gt;" in html_text
    assert "<script>" not in html_text
    assert '<td class="n"><b>ok</b></td>' in html_text and '<td class="n">3</td>' in html_text
    assert "nothing here" in table(["a"], [], empty="nothing here")


def test_page_escapes_its_text_and_links_only_the_stylesheet() -> None:
    resp = page("t<1>", "s&2", [("h<3>", facts([("k<4>", "<b>v</b>")]))])
    body = bytes(resp.body)  # type: ignore[arg-type]
    assert resp.headers["Content-Type"] == "text/html; charset=utf-8"
    for escaped in (b"t&lt;1&gt;", b"s&amp;2", b"h&lt;3&gt;", b"k&lt;4&gt;"):
        assert escaped in body
    assert b"<b>v</b>" in body
    assert body.count(b"href=") == 1 and b'href="/ui/weedpy.css"' in body
    assert b"http" not in body and b"<script" not in body


def test_stylesheet_is_served_from_the_package() -> None:
    resp = stylesheet(Request("GET", "/ui/weedpy.css"))
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/css")
    css = bytes(resp.body)  # type: ignore[arg-type]
    assert b"header" in css and b"url(" not in css and b"@import" not in css
    assert len(css) < 8 * 1024
