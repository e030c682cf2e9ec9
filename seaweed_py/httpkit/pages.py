"""What the master's and the volume server's HTML status pages share: the stylesheet both
serve at `STYLESHEET_PATH` (the pages' only asset), the page frame, and human-readable numbers.

Pages are rendered on the server, as one string per request; every value that comes from
outside (names, addresses, collections) goes through `html.escape`.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from importlib import resources

from seaweed_py.httpkit.request import Request
from seaweed_py.httpkit.response import Response

__all__ = [
    "STYLESHEET_PATH",
    "Cell",
    "facts",
    "fill_bar",
    "human_bytes",
    "human_duration",
    "human_rate",
    "page",
    "stylesheet",
    "table",
]

STYLESHEET_PATH = "/ui/weedpy.css"
_STYLESHEET = resources.files("seaweed_py.httpkit").joinpath("static/weedpy.css").read_bytes()
_CSS_HEADERS = {"Content-Type": "text/css; charset=utf-8", "Cache-Control": "max-age=3600"}
_HTML_HEADERS = {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-cache"}
_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")


def stylesheet(req: Request) -> Response:
    """The handler of `STYLESHEET_PATH`."""
    return Response(200, _CSS_HEADERS, _STYLESHEET)


def human_bytes(n: float) -> str:
    """`0 B`, `512 B`, `1.5 KiB`, `43.2 MiB`, `30 GiB`: binary units, three digits at most."""
    if abs(n) < 1024:
        return f"{int(n)} B"
    value = float(n)
    for unit in _UNITS[1:]:
        value /= 1024
        text = f"{value:.1f}" if abs(value) < 99.95 else f"{value:.0f}"
        if abs(float(text)) < 1024 or unit == _UNITS[-1]:  # 1023.99 GiB shows as 1 TiB
            return f"{text.removesuffix('.0')} {unit}"
    raise AssertionError("unreachable")


def human_duration(seconds: float) -> str:
    """The two largest units: `45s`, `3m 20s`, `5h 2m`, `12d 3h`."""
    left = max(0, int(seconds))
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if left >= size or (unit == "s" and not parts):
            parts.append(f"{left // size}{unit}")
            left %= size
    return " ".join(parts[:2])


def human_rate(per_second: float) -> str:
    """Requests per second, with as many decimals as small rates need."""
    if per_second == 0:
        return "0/s"
    if per_second < 10:
        return f"{per_second:.2f}/s"
    return f"{per_second:,.0f}/s"


def fill_bar(fraction: float, label: str = "") -> str:
    """A horizontal bar filled to `fraction` (amber from 80 %, red from 95 %), then `label`."""
    pct = max(0.0, min(1.0, fraction)) * 100
    level = " bad" if pct >= 95 else " warn" if pct >= 80 else ""
    text = html.escape(label) if label else f"{pct:.0f}%"
    return (
        f'<span class="bar{level}" title="{pct:.1f}%"><i style="width:{pct:.1f}%"></i></span>{text}'
    )


class Cell:
    """A table cell of ready HTML; `numeric` right-aligns it."""

    __slots__ = ("html", "numeric")

    def __init__(self, html_text: str, numeric: bool = False) -> None:
        self.html = html_text
        self.numeric = numeric


def _cell(value: object, tag: str = "td") -> str:
    if isinstance(value, Cell):
        cls = ' class="n"' if value.numeric else ""
        return f"<{tag}{cls}>{value.html}</{tag}>"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f'<{tag} class="n">{value}</{tag}>'
    return f"<{tag}>{html.escape(str(value))}</{tag}>"


def table(headers: Sequence[str], rows: Iterable[Sequence[object]], empty: str = "none") -> str:
    """A table: plain values are escaped (numbers right-aligned); `Cell`s are used as given."""
    body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in rows)
    if not body:
        body = f'<tr><td class="muted" colspan="{len(headers)}">{html.escape(empty)}</td></tr>'
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def facts(items: Iterable[tuple[str, str]]) -> str:
    """Label/value pairs shown as a grid of figures (values are HTML)."""
    cells = "".join(f"<div><dt>{html.escape(k)}</dt><dd>{v}</dd></div>" for k, v in items)
    return f'<dl class="facts">{cells}</dl>'


def page(title: str, subtitle: str, sections: Iterable[tuple[str, str]]) -> Response:
    """A whole page: a header with `title` and `subtitle` (text), then (heading, HTML body)
    sections."""
    parts = [
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title>",
        f'<link rel="stylesheet" href="{STYLESHEET_PATH}"></head><body>',
        f"<header><h1>{html.escape(title)}</h1><span>{html.escape(subtitle)}</span></header>",
        "<main>",
    ]
    parts += [f"<section><h2>{html.escape(h)}</h2>{body}</section>" for h, body in sections]
    parts.append("</main></body></html>")
    return Response(200, _HTML_HEADERS, "".join(parts).encode())
