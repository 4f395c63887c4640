"""The shell of an atlas page: one self-contained HTML file.

A ``Page`` collects sections (headings, text, sortable tables, Vega-Lite charts) and writes one
file holding everything it needs: the Vega / Vega-Lite / vega-embed JavaScript inlined once (from
``vl_convert.javascript_bundle``, cached on disk: building it takes seconds), each chart's spec
with its data, a short script that sorts a table by the clicked column. No CDN, no server:
the file opens from disk, offline. ``decode_index`` is the plain page beside decode heatmaps.

When every chart has been drawn the page sets ``<body data-atlas-ready="N">`` (N charts); a
chart that fails sets ``data-atlas-error`` and logs to the console (the browser test reads both).
``window.atlasViews`` maps each chart's element id to its Vega view.
"""

from __future__ import annotations

import functools
import html
import os
import pathlib
from collections.abc import Sequence

import simplejson

from attnlab import summaries

# Sorts a table.sortable by the clicked header's column: numbers by value (a cell's data-sort,
# else its text), then text; empty cells last; clicking again reverses.
_SORT_JS = """
for (const th of document.querySelectorAll('table.sortable th')) {
  th.addEventListener('click', () => {
    const table = th.closest('table'), col = th.cellIndex;
    const dir = th.dataset.dir === 'asc' ? 'desc' : 'asc';
    for (const h of table.querySelectorAll('th')) delete h.dataset.dir;
    th.dataset.dir = dir;
    const key = (row) => {
      const cell = row.cells[col], raw = cell ? (cell.dataset.sort ?? cell.textContent) : '';
      const n = parseFloat(raw);
      return raw === '' ? null : (Number.isNaN(n) ? raw : n);
    };
    const rows = [...table.tBodies[0].rows].sort((a, b) => {
      const x = key(a), y = key(b);
      if (x === null || y === null) return (x === null) - (y === null);
      const order = typeof x === typeof y ? (x < y ? -1 : x > y ? 1 : 0)
                                          : (typeof x === 'number' ? -1 : 1);
      return dir === 'asc' ? order : -order;
    });
    table.tBodies[0].append(...rows);
  });
}
"""

# Draws every chart of the page (specs in the JSON block #atlas-specs), then marks the body.
_EMBED_JS = """
const specs = JSON.parse(document.getElementById('atlas-specs').textContent);
const options = {renderer: 'svg', actions: {export: true, source: false, compiled: false,
                                            editor: false}};
window.atlasViews = {};
Promise.all(Object.entries(specs).map(([id, spec]) => vegaEmbed('#' + id, spec, options)
    .then((result) => { window.atlasViews[id] = result.view; })))
  .then((views) => { document.body.dataset.atlasReady = String(views.length); })
  .catch((error) => { document.body.dataset.atlasError = String(error); console.error(error); });
"""

_CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 0 2em 3em; color: #222; max-width: 1600px; }
h1 { margin: .6em 0 .1em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #ddd; }
nav { position: sticky; top: 0; background: #fff; padding: .4em 0; border-bottom: 1px solid #eee;
      z-index: 2; } nav a { margin-right: 1.2em; }
.note { color: #555; max-width: 70em; }
table { border-collapse: collapse; margin: .6em 0 1.2em; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #ddd; padding: .2em .6em; text-align: right; }
th { background: #f4f4f4; } td:first-child, th:first-child { text-align: left; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th[data-dir=asc]::after { content: ' \\25B2'; }
table.sortable th[data-dir=desc]::after { content: ' \\25BC'; }
.chart { margin: .5em 0 1.5em; overflow-x: auto; max-width: 100%; }
pre { background: #f7f7f7; padding: .6em; overflow-x: auto; max-height: 30em; }
.vega-bindings { margin: .3em 0; } .vega-bind { margin-right: 1.5em; display: inline-block; }
.vega-bind select { max-width: 60em; }
"""


def _vl_version() -> str:
  """The Vega-Lite version altair writes specs for (``6.4``)."""
  import altair
  return ".".join(altair.SCHEMA_VERSION.lstrip("v").split(".")[:2])


@functools.lru_cache(maxsize=1)
def vega_bundle() -> str:
  """Vega, Vega-Lite and vega-embed as one script that sets ``window.vegaEmbed``.

  Built by ``vl_convert.javascript_bundle`` (a few seconds) and cached under
  ``$XDG_CACHE_HOME/attnlab/vega`` (default ``~/.cache``), one file per vl-convert and
  Vega-Lite version; an unwritable cache only costs the rebuild.
  """
  import vl_convert
  version = _vl_version()
  cache_home = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
  path = pathlib.Path(cache_home, "attnlab", "vega",
                      f"bundle-{vl_convert.__version__}-vl{version}.js")
  try:
    return path.read_text(encoding="utf-8")
  except OSError:
    pass
  try:
    bundle = vl_convert.javascript_bundle(vl_version=version)
  except (ValueError, RuntimeError):  # vl-convert lacks altair's Vega-Lite: its latest one
    bundle = vl_convert.javascript_bundle()
  try:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(bundle, encoding="utf-8")
    os.replace(tmp, path)
  except OSError:
    pass
  return bundle


def script_json(value) -> str:
  """``value`` as strict JSON (non-finite floats as null) to embed in an HTML page: every
  page's JSON goes through here. ``<``, ``>``, ``&`` (and U+2028 / U+2029) are written as
  ``\\u003c``-style escapes (simplejson's ``JSONEncoderForHTML``), so no text in the data
  (``</script>``, ``<!--<script>``, which would hold the block open) can end or change the
  ``<script>`` element around it; ``json.loads`` gives ``value`` back unchanged."""
  return summaries.dumps(value, separators=(",", ":"), cls=simplejson.JSONEncoderForHTML)


def esc(text) -> str:
  """HTML-escaped text."""
  return html.escape(str(text), quote=True)


def slug(text: str) -> str:
  """An id made of the letters and digits of ``text``."""
  return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-") or "x"


class Page:
  """An atlas page: ``section``, ``text``, ``table``, ``chart`` in order, then ``write``."""

  def __init__(self, title: str, subtitle: str = ""):
    self.title, self.subtitle = title, subtitle
    self.body: list[str] = []
    self.nav: list[tuple[str, str]] = []
    self.specs: dict[str, dict] = {}

  def section(self, title: str, note: str = "") -> None:
    """A heading (listed in the page's navigation bar) and an optional note (HTML)."""
    anchor = slug(title)
    self.nav.append((anchor, title))
    self.body.append(f'<h2 id="{anchor}">{esc(title)}</h2>')
    if note:
      self.text(note)

  def text(self, markup: str, heading: str = "") -> None:
    """A paragraph of trusted HTML (callers escape data with ``esc``), under an optional h3."""
    if heading:
      self.body.append(f"<h3>{esc(heading)}</h3>")
    self.body.append(f'<p class="note">{markup}</p>')

  def raw(self, markup: str) -> None:
    """Trusted HTML, as is."""
    self.body.append(markup)

  def table(self, header: Sequence[str], rows: Sequence[Sequence], caption: str = "",
            sort_keys: Sequence[Sequence] | None = None) -> None:
    """A sortable table: ``rows`` of cell texts; ``sort_keys`` (same shape, optional) the
    values a column sorts by (a number where the text is ``0.912 ± 0.010``)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    lines = []
    for r, row in enumerate(rows):
      cells = []
      for c, cell in enumerate(row):
        key = sort_keys[r][c] if sort_keys is not None else None
        attr = "" if key is None or key == "" else f' data-sort="{esc(key)}"'
        cells.append(f"<td{attr}>{esc(cell)}</td>")
      lines.append(f"<tr>{''.join(cells)}</tr>")
    caption = f"<caption>{esc(caption)}</caption>" if caption else ""
    self.body.append(f'<table class="sortable">{caption}<thead><tr>{head}</tr></thead>'
                     f"<tbody>{''.join(lines)}</tbody></table>")

  def chart(self, spec: dict, name: str) -> None:
    """A Vega-Lite chart (``altair.Chart.to_dict()``) drawn into ``<div id="chart-NAME">``."""
    chart_id = f"chart-{slug(name)}"
    if chart_id in self.specs:
      raise ValueError(f"two charts named {name!r} on one page")
    self.specs[chart_id] = spec
    self.body.append(f'<div class="chart" id="{chart_id}"></div>')

  def html(self) -> str:
    """The whole page."""
    nav = " ".join(f'<a href="#{a}">{esc(t)}</a>' for a, t in self.nav)
    subtitle = f'<p class="note">{self.subtitle}</p>' if self.subtitle else ""
    scripts = ""
    if self.specs:
      scripts = (f'<script type="module">{vega_bundle()}</script>\n'
                 f'<script type="application/json" id="atlas-specs">'
                 f"{script_json(self.specs)}</script>\n"
                 f'<script type="module">{_EMBED_JS}</script>\n')
    ready = "" if self.specs else ' data-atlas-ready="0"'
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{esc(self.title)}</title><style>{_CSS}</style></head>\n"
            f"<body{ready}><h1>{esc(self.title)}</h1>{subtitle}<nav>{nav}</nav>\n"
            + "\n".join(self.body)
            + f"\n{scripts}<script>{_SORT_JS}</script>\n</body></html>\n")

  def write(self, path: str | os.PathLike) -> pathlib.Path:
    """Writes the page (atomically: a reader never sees half a page); returns its path."""
    path = pathlib.Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(self.html(), encoding="utf-8")
    os.replace(tmp, path)
    return path


def decode_index(directory: str | os.PathLike, entries: Sequence[tuple[str, str]]) -> str:
  """``DIR/index.html`` beside decode heatmaps: per decoded (non-empty) line k, its input, its
  output and its heatmap ``decode_{k}.png`` (``entries``: (input, output) in order). Plain
  HTML, relative links, no script. Returns the path."""
  page = Page("attnlab decode", f"{len(entries)} decoded line(s); attention heatmaps: source "
                                "words across the top, output words down the side.")
  for k, (source, output) in enumerate(entries):
    image = f"decode_{k}.png"
    page.raw(f'<h3 id="line-{k}">{k}. {esc(source)} &rarr; {esc(output)}</h3>'
             f'<p><a href="{image}"><img src="{image}" alt="attention of line {k}" '
             'loading="lazy" style="max-width:100%"></a></p>')
  return str(page.write(pathlib.Path(directory) / "index.html"))
