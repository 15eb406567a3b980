"""Small HTML builders for the reports: a page, sections, tables, embedded images.

Everything a builder receives as text is escaped here (``html.escape``), so the callers pass the
raw strings read from run files; a builder's ``body`` argument is HTML already built by these
helpers and is inserted as is. Images are embedded as ``data:image/png;base64`` URIs and the style
sheet is inline: a report needs no network and no file beside it.
"""
from __future__ import annotations

import base64
import html
from typing import Any, Iterable, Sequence

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1.5em auto;
       max-width: 72em; padding: 0 1em; color: #222; line-height: 1.4; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; }
h2 { font-size: 1.2em; border-bottom: 1px solid #ccc; margin-top: 1.8em; }
h3 { font-size: 1.0em; margin-bottom: 0.3em; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 0.2em 0.6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
pre { background: #f7f7f7; padding: 0.6em; overflow-x: auto; font-size: 0.85em; }
.scroll { overflow-x: auto; }
.figures { display: flex; flex-wrap: wrap; gap: 1em; align-items: flex-start; }
figure { margin: 0; }
figcaption { font-size: 0.85em; color: #555; text-align: center; }
img { max-width: 100%; image-rendering: auto; }
img.pixel { image-rendering: pixelated; min-width: 16em; }
.note { color: #666; font-size: 0.9em; }
.warn { color: #a40; }
nav a { margin-right: 1em; }
details { margin: 0.4em 0; }
summary { cursor: pointer; }
"""


def esc(value: Any) -> str:
    """The text of ``value``, escaped for HTML (quotes included)."""
    return html.escape(str(value), quote=True)


def page(title: str, body: str, nav: Sequence[tuple[str, str]] = ()) -> str:
    """A whole HTML document; ``nav`` is (anchor id, label) pairs linking to the sections."""
    links = "".join(f'<a href="#{esc(anchor)}">{esc(label)}</a>' for anchor, label in nav)
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{esc(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
            f"<h1>{esc(title)}</h1>\n" + (f"<nav>{links}</nav>\n" if links else "") + body
            + "\n</body>\n</html>\n")


def section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{esc(anchor)}">\n<h2>{esc(title)}</h2>\n{body}\n</section>\n'


def heading(title: str) -> str:
    return f"<h3>{esc(title)}</h3>\n"


def paragraph(text: str, cls: str = "note") -> str:
    return f'<p class="{esc(cls)}">{esc(text)}</p>\n'


def pre(text: str) -> str:
    return f"<pre>{esc(text)}</pre>\n"


def details(summary: str, body: str, open_: bool = False) -> str:
    return f"<details{' open' if open_ else ''}><summary>{esc(summary)}</summary>\n{body}</details>\n"


class Raw(str):
    """A table cell that is HTML already (a link), inserted without escaping."""


def link(href: str, text: str) -> Raw:
    return Raw(f'<a href="{esc(href)}">{esc(text)}</a>')


def table(headers: Sequence[str] | None, rows: Iterable[Sequence[Any]], numeric: Sequence[bool] | None = None) -> str:
    """A table of escaped cells (``Raw`` cells are inserted as is), with a header row unless
    ``headers`` is None; ``numeric[i]`` right-aligns column i. Wide tables scroll sideways
    instead of widening the page."""
    numeric = list(numeric) if numeric is not None else []
    head = "<tr>" + "".join(f"<th>{esc(h)}</th>" for h in headers) + "</tr>\n" if headers else ""
    lines = []
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            text = cell if isinstance(cell, Raw) else esc(cell)
            cls = ' class="num"' if i < len(numeric) and numeric[i] else ""
            cells.append(f"<td{cls}>{text}</td>")
        lines.append("<tr>" + "".join(cells) + "</tr>")
    return f'<div class="scroll"><table>\n{head}' + "\n".join(lines) + "\n</table></div>\n"


def is_png(data: bytes) -> bool:
    return data[:8] == PNG_MAGIC


def png_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def image(data: bytes, alt: str, caption: str | None = None, pixelated: bool = False) -> str:
    """A PNG embedded as a data URI, in a figure with an optional caption."""
    if not is_png(data):
        raise ValueError(f"{alt}: not a PNG image")
    cls = ' class="pixel"' if pixelated else ""
    cap = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
    return f'<figure><img{cls} src="{png_uri(data)}" alt="{esc(alt)}">{cap}</figure>\n'


def figures(items: Iterable[str]) -> str:
    """Figures (or any blocks) side by side, wrapping on narrow screens."""
    return '<div class="figures">\n' + "".join(f"<div>{item}</div>\n" for item in items) + "</div>\n"
