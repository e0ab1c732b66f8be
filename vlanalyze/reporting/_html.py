"""The report's HTML: one self-contained page, no script, no request.

Every text from the data (file paths, labels, ids, urls, recipe text) goes through
:func:`esc` (``html.escape``, quotes included), so a label ``<script>`` is shown, not
run; a link's target is kept only when it is an ``http(s)`` URL. The page's own
Content-Security-Policy forbids every fetch and script, as a second guard. Images are
``data:`` URIs. Nothing here reads the export or writes a file.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

CSS = """
:root{--fg:#0f172a;--muted:#64748b;--line:#e2e8f0;--bg:#f8fafc;--card:#fff;--accent:#2563eb;
--keep:#16a34a;--warn:#b45309}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
color:var(--fg);background:var(--bg)}
header{background:#0f172a;color:#f8fafc;padding:18px 28px}
header h1{margin:0;font-size:20px;font-weight:650}
header p{margin:4px 0 0;color:#cbd5e1;font-size:13px;word-break:break-all}
nav{position:sticky;top:0;z-index:2;background:#fff;border-bottom:1px solid var(--line);
padding:8px 28px;display:flex;gap:18px;flex-wrap:wrap}
nav a{color:var(--accent);text-decoration:none;font-weight:550}
main{max-width:1280px;margin:0 auto;padding:8px 28px 40px}
section{margin-top:26px}
h2{font-size:18px;margin:0 0 4px}
h3{font-size:14px;margin:0}
.note{color:var(--muted);margin:2px 0 12px;font-size:13px}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin:12px 0}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:8px 14px;
min-width:110px}
.card b{display:block;font-size:19px}
.card span{color:var(--muted);font-size:12px}
.plots{display:grid;grid-template-columns:repeat(auto-fit,minmax(360px,1fr));gap:14px;
align-items:start;margin-bottom:12px}
.plot{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:10px}
.plot img{width:100%;height:auto;display:block}
table{border-collapse:collapse;background:var(--card);font-size:13px;margin:6px 0 12px}
th,td{border:1px solid var(--line);padding:4px 10px;text-align:left}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.group{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:10px 12px;
margin:10px 0}
.group h3 span{color:var(--muted);font-weight:400}
.strip{display:flex;gap:8px;overflow-x:auto;padding:8px 0 2px}
.grid{display:flex;flex-wrap:wrap;gap:8px}
.tile{flex:0 0 auto;width:150px;display:block;text-decoration:none;color:var(--fg);
border:2px solid transparent;border-radius:6px;background:#f1f5f9;overflow:hidden;position:relative}
.tile:hover{border-color:var(--accent)}
.tile img,.tile .ph{width:150px;height:112px;object-fit:cover;display:block;background:#e2e8f0}
.tile .ph{display:flex;align-items:center;justify-content:center;color:var(--muted);font-size:12px}
.tile .cap{padding:3px 6px;font-size:11px;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.tile .cap small{color:var(--muted)}
.tile.keep{border-color:var(--keep)}
.badge{position:absolute;top:4px;left:4px;background:var(--keep);color:#fff;font-size:10px;
font-weight:700;padding:1px 6px;border-radius:4px;letter-spacing:.03em}
.bar{display:inline-block;height:8px;background:var(--accent);border-radius:2px;vertical-align:middle}
.warn{color:var(--warn)}
pre{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:10px;
overflow-x:auto;font-size:12px}
footer{color:var(--muted);font-size:12px;padding:20px 28px;border-top:1px solid var(--line)}
"""


def esc(value: object) -> str:
    """``value`` as HTML text (``<``, ``>``, ``&`` and both quotes escaped)."""
    return html.escape("" if value is None else str(value), quote=True)


def safe_url(url: object) -> str | None:
    """``url`` if it is an http(s) URL (a ``javascript:`` link from data never is)."""
    text = str(url or "").strip()
    return text if text.lower().startswith(("https://", "http://")) else None


def data_uri(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def num(value: int | float) -> str:
    return f"{value:,}" if isinstance(value, int) else f"{value:,.3g}"


@dataclass(frozen=True)
class Tile:
    """One image on the page."""

    media_id: str
    file_path: str | None
    url: str | None
    score: float | None
    labels: Sequence[str]
    thumb: bytes | None
    keep: bool = False

    def render(self) -> str:
        score = "—" if self.score is None else f"{self.score:.3f}"
        folder, _, name = (self.file_path or self.media_id).rpartition("/")
        where = f" · {folder.rsplit('/', 1)[-1]}" if folder else ""  # a video's frames
        tip = "\n".join(
            [
                self.file_path or self.media_id,
                f"uniqueness_score: {score}",
                f"labels: {', '.join(self.labels) or '—'}",
                f"media_id: {self.media_id}",
            ]
        )
        if self.thumb is not None:
            picture = f'<img src="{data_uri("image/jpeg", self.thumb)}" alt="{esc(name)}">'
        else:
            picture = '<div class="ph">no image</div>'
        href = safe_url(self.url)
        attrs = f' href="{esc(href)}" target="_blank" rel="noopener noreferrer"' if href else ""
        badge = '<span class="badge">KEEP</span>' if self.keep else ""
        cls = "tile keep" if self.keep else "tile"
        return (
            f'<a class="{cls}"{attrs} title="{esc(tip)}" data-media-id="{esc(self.media_id)}">'
            f'{badge}{picture}<div class="cap">{esc(name)}<br><small>{score}{esc(where)}'
            "</small></div></a>"
        )


def table(headers: Sequence[str], rows: Iterable[Sequence[object]], numeric: set[int]) -> str:
    """An HTML table; columns in ``numeric`` are right-aligned and formatted."""
    head = "".join(
        f'<th class="n">{esc(h)}</th>' if i in numeric else f"<th>{esc(h)}</th>"
        for i, h in enumerate(headers)
    )
    body = []
    for row in rows:
        cells = []
        for i, v in enumerate(row):
            if i in numeric and isinstance(v, (int, float)):
                cells.append(f'<td class="n">{num(v)}</td>')
            else:
                cells.append(f"<td>{v if isinstance(v, Markup) else esc(v)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


class Markup(str):
    """HTML made here (never from data): not escaped again by :func:`table`."""


def plot_img(svg: str, alt: str) -> str:
    uri = data_uri("image/svg+xml", svg.encode("utf-8"))
    return f'<div class="plot"><img src="{uri}" alt="{esc(alt)}"></div>'


def page(title: str, subtitle: str, sections: Sequence[tuple[str, str, str]], footer: str) -> str:
    """The whole document: ``sections`` are (id, nav name, HTML body)."""
    nav = "".join(f'<a href="#{sid}">{esc(name)}</a>' for sid, name, _ in sections)
    body = "".join(f'<section id="{sid}">{content}</section>' for sid, _, content in sections)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="referrer" content="no-referrer">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
        f"<header><h1>{esc(title)}</h1><p>{esc(subtitle)}</p></header>"
        f"<nav>{nav}</nav><main>{body}</main><footer>{footer}</footer></body></html>\n"
    )
