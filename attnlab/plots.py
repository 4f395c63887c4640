"""Figures: attention heatmaps and metric-vs-length curves, written as PNG files.

Figures are built on `matplotlib.figure.Figure` directly, never through `pyplot`: no global
figure registry, no interactive backend, nothing to leak in a long sweep; saving a PNG renders
with Agg. `*_figure` functions return the Figure (tests inspect its tick labels); `plot_*`
functions save it to the requested path and return that path. No other I/O happens here.

Text in any script: every figure's texts (tick labels, titles, legends) get the fonts that draw
them (`fit_fonts`): where matplotlib's default font (DejaVu Sans) lacks some of a text's
characters (Devanagari for a Marathi corpus, CJK, ...), installed fonts that have them follow
it in the text's font family list, and matplotlib (>= 3.6) takes each glyph from the first
font that has it. Where no installed font has them, one warning per script says which font
to install (e.g. Debian's fonts-noto-core), instead of a "Glyph ... missing" warning per
character and figure; the figure is still written, with boxes for those characters.
"""

from __future__ import annotations

import functools
import math
import os
import pathlib
import unicodedata
import warnings
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from matplotlib import font_manager, ft2font
from matplotlib.figure import Figure
from matplotlib.text import Text

# Weights are probabilities: a fixed [0, 1] colour scale keeps panels comparable across
# variants (a soft and a hard attention map would otherwise both look saturated).
_CMAP = "viridis"
_VMIN, _VMAX = 0.0, 1.0
_CELL_INCHES = 0.35  # size of one heatmap cell, so long sentences keep readable labels


# ---------------------------------------------------------------- fonts for any script

# Scripts already warned about (no installed font draws them): one warning per process each.
warned_scripts: set[str] = set()


@functools.lru_cache(maxsize=None)
def _codepoints(path: str) -> frozenset[int]:
  """The characters the font file at ``path`` has glyphs for (empty if it cannot be read)."""
  try:
    return frozenset(ft2font.FT2Font(path).get_charmap())
  except (OSError, RuntimeError, ValueError):
    return frozenset()


def _needs_glyph(char: str) -> bool:
  """Letters, marks, digits, punctuation, symbols: not spaces, controls or joiners (ZWJ)."""
  return unicodedata.category(char)[0] not in "CZ"


@functools.lru_cache(maxsize=1)
def _installed_fonts() -> tuple:
  """The system's fonts, regular faces first (a fallback font's bold would stand out), without
  Unicode's Last Resort font: it has every character, as a box naming its script (matplotlib
  >= 3.10 falls back on it anyway, and warns). Fonts installed after matplotlib cached its
  font list are added to it (``fontManager.addfont``), so a font the warning below named is
  found once installed, with no cache to delete."""
  manager = font_manager.fontManager
  known = {f.fname for f in manager.ttflist}
  for path in font_manager.findSystemFonts():
    if path not in known:
      try:
        manager.addfont(path)
      except (OSError, RuntimeError, ValueError):  # a file FreeType cannot read
        pass
  fonts = [f for f in manager.ttflist if not f.name.startswith("Last Resort")]
  return tuple(sorted(fonts, key=lambda f: (f.style != "normal",
                                            f.weight not in (400, "normal"), f.name)))


def fonts_for(texts: Iterable[str]) -> tuple[list[str], set[str]]:
  """The font families that draw ``texts``, and the characters no installed font draws.

  Returns:
    ([], set()) when the default font draws every character; else ([default family,
    fallback families covering the rest...], characters still without a glyph).
  """
  default = font_manager.FontProperties()
  default_path = font_manager.findfont(default)
  missing = {c for text in texts for c in text if _needs_glyph(c)}
  missing = {c for c in missing if ord(c) not in _codepoints(default_path)}
  if not missing:
    return [], set()
  families = [font_manager.get_font(default_path).family_name]
  for font in _installed_fonts():
    covered = {c for c in missing if ord(c) in _codepoints(font.fname)}
    if covered and font.name not in families:
      families.append(font.name)
      missing -= covered
    if not missing:
      break
  return families, missing


def _script(char: str) -> str:
  """The Unicode script a character's name starts with: DEVANAGARI, CJK, ARABIC, ..."""
  return unicodedata.name(char, "UNKNOWN").split()[0]


def _font_hint(script: str) -> str:
  if script in ("CJK", "HIRAGANA", "KATAKANA", "HANGUL", "IDEOGRAPHIC"):
    return "Noto Sans CJK (Debian/Ubuntu: apt-get install fonts-noto-cjk)"
  return f"Noto Sans {script.title()} (Debian/Ubuntu: apt-get install fonts-noto-core)"


def fit_fonts(fig: Figure) -> Figure:
  """Gives each text of ``fig`` fonts that draw it (module doc); returns ``fig``.

  Characters no installed font draws: one ``UserWarning`` per script and process, naming a
  font to install; matplotlib's own "Glyph ... missing" warnings for them are silenced.
  """
  texts = [t for t in fig.findobj(Text) if t.get_text()]
  families, missing = fonts_for(t.get_text() for t in texts)
  if not families:
    return fig
  for text in texts:
    text.set_fontfamily(families)
  for ax in fig.axes:  # ticks matplotlib makes later (on draw) too
    ax.tick_params(labelfontfamily=families)
  for char in missing:  # said once below; matplotlib would repeat it per glyph and draw
    warnings.filterwarnings("ignore", message=rf"Glyph {ord(char)} \(", category=UserWarning)
  scripts = sorted({_script(c) for c in missing} - warned_scripts)
  for script in scripts:
    sample = next(t.get_text() for t in texts
                  if any(c in missing and _script(c) == script for c in t.get_text()))
    warnings.warn(f"no installed font draws {script.title()} text (e.g. {sample!r}): figures "
                  f"show boxes for it; install a font for it, e.g. {_font_hint(script)}",
                  stacklevel=3)
    warned_scripts.add(script)
  return fig


# ---------------------------------------------------------------- heatmaps

def _cropped_weights(weights, src_tokens: Sequence[str], tgt_tokens: Sequence[str]) -> np.ndarray:
  """weights [tgt_len, src_len] cropped to [len(tgt_tokens), len(src_tokens)]."""
  weights = np.asarray(weights, dtype=np.float32)
  if weights.ndim != 2:
    raise ValueError(f"weights must be [tgt_len, src_len], got shape {weights.shape}")
  if isinstance(src_tokens, str) or isinstance(tgt_tokens, str):
    raise ValueError("src_tokens and tgt_tokens must be sequences of tokens, not one string")
  n_tgt, n_src = len(tgt_tokens), len(src_tokens)
  if n_tgt == 0 or n_src == 0:
    raise ValueError("src_tokens and tgt_tokens must be non-empty")
  if n_tgt > weights.shape[0] or n_src > weights.shape[1]:
    raise ValueError(f"{n_tgt} target x {n_src} source tokens do not fit in weights of shape "
                     f"{weights.shape} [tgt_len, src_len]")
  return weights[:n_tgt, :n_src]


def _draw_attention(ax, weights: np.ndarray, src_tokens, tgt_tokens, title=None):
  """Heatmap on `ax`: source tokens along the top (rotated), output tokens down the side."""
  image = ax.matshow(weights, cmap=_CMAP, vmin=_VMIN, vmax=_VMAX, aspect="auto")
  ax.set_xticks(range(len(src_tokens)))
  ax.set_xticklabels([str(t) for t in src_tokens], rotation=90)
  ax.set_yticks(range(len(tgt_tokens)))
  ax.set_yticklabels([str(t) for t in tgt_tokens])
  ax.tick_params(axis="both", which="both", length=0)
  if title:
    ax.set_title(title, pad=12)
  return image


def attention_figure(weights, src_tokens: Sequence[str], tgt_tokens: Sequence[str],
                     title: str | None = None) -> Figure:
  """Attention heatmap Figure, as in the TensorFlow / PyTorch NMT tutorials.

  Args:
    weights: [tgt_len, src_len] attention weights (rows = output positions); cropped to
      [len(tgt_tokens), len(src_tokens)], so padded arrays can be passed as they are.
    src_tokens: [n_src] source tokens, the x tick labels (top, rotated).
    tgt_tokens: [n_tgt] output tokens, the y tick labels.
    title: optional title.

  Returns:
    The Figure: `fig.axes[0]` is the heatmap, `fig.axes[1]` its colorbar.
  """
  cropped = _cropped_weights(weights, src_tokens, tgt_tokens)
  n_tgt, n_src = cropped.shape
  fig = Figure(figsize=(max(4.0, 1.8 + _CELL_INCHES * n_src),
                        max(3.0, 1.6 + _CELL_INCHES * n_tgt)), layout="constrained")
  ax = fig.add_subplot()
  image = _draw_attention(ax, cropped, src_tokens, tgt_tokens, title)
  fig.colorbar(image, ax=ax)
  return fit_fonts(fig)


def _save(fig: Figure, path) -> pathlib.Path:
  fig.savefig(os.fspath(path), dpi=100)
  fig.clear()  # frees artists now; a pyplot-free Figure needs no plt.close
  return pathlib.Path(path)


def plot_attention(weights, src_tokens: Sequence[str], tgt_tokens: Sequence[str], path,
                   title: str | None = None) -> pathlib.Path:
  """Save `attention_figure(weights, src_tokens, tgt_tokens, title)` to `path` (PNG).

  Args: as `attention_figure`, plus `path`, the file to write (its folder must exist).

  Returns:
    `path` as a pathlib.Path.
  """
  return _save(attention_figure(weights, src_tokens, tgt_tokens, title), path)


def metric_vs_length_figure(curves: Mapping[str, tuple], xlabel: str, ylabel: str,
                            title: str | None = None) -> Figure:
  """One line per variant of a metric against length, with a ±std band when given.

  Args:
    curves: {variant name: (lengths [n], means [n], stds [n] or None)}; a 2-tuple
      (lengths, means) means no band. `attnlab.length_buckets.bucket_curve` builds one from
      `per_bucket_mean`.
    xlabel, ylabel: axis labels.
    title: optional title.

  Returns:
    The Figure, a single axes with a legend.
  """
  if not curves:
    raise ValueError("curves must hold at least one variant")
  fig = Figure(figsize=(6.0, 4.0), layout="constrained")
  ax = fig.add_subplot()
  _draw_curves(ax, curves, xlabel, ylabel)
  if title:
    ax.set_title(title)
  return fit_fonts(fig)


def _draw_curves(ax, curves: Mapping[str, tuple], xlabel: str, ylabel: str,
                 marker: str | None = "o") -> None:
  """One line per entry of ``curves`` ({name: (x [n], means [n], stds [n] or None)}) on
  ``ax``, a ±std band where given, with axis labels, a grid and a legend."""
  for name, curve in curves.items():
    if len(curve) not in (2, 3):
      raise ValueError(f"curve {name!r} must be (lengths, means) or (lengths, means, stds)")
    lengths, means = np.asarray(curve[0], float), np.asarray(curve[1], float)
    stds = None if len(curve) == 2 or curve[2] is None else np.asarray(curve[2], float)
    if lengths.ndim != 1 or means.shape != lengths.shape or (
        stds is not None and stds.shape != lengths.shape):
      raise ValueError(f"curve {name!r}: lengths, means and stds must be 1-D of equal length")
    (line,) = ax.plot(lengths, means, marker=marker, label=str(name))
    if stds is not None:
      ax.fill_between(lengths, means - stds, means + stds, color=line.get_color(), alpha=0.2,
                      linewidth=0)
  ax.set_xlabel(xlabel)
  ax.set_ylabel(ylabel)
  ax.grid(True, alpha=0.3)
  ax.legend()


def learning_curves_figure(panels: Sequence[tuple[str, Mapping[str, tuple]]],
                           title: str | None = None) -> Figure:
  """Validation metrics against the training step, side by side: did each variant converge?

  Args:
    panels: [(ylabel, curves), ...], one axes each; curves {line name: (steps [n],
      means [n], stds [n] or None)} as in `metric_vs_length_figure` (a band: ±std over seeds).
    title: optional title over all panels.

  Returns:
    The Figure: one axes per panel, left to right, each with a legend.
  """
  if not panels or not all(curves for _, curves in panels):
    raise ValueError("panels must hold at least one (ylabel, curves) panel, each with a curve")
  fig = Figure(figsize=(5.0 * len(panels), 4.0), layout="constrained")
  axes = fig.subplots(1, len(panels), squeeze=False)[0]
  most = max(len(c[0]) for _, curves in panels for c in curves.values())
  for ax, (ylabel, curves) in zip(axes, panels):
    _draw_curves(ax, curves, "training step", ylabel, marker="o" if most <= 30 else None)
  if title:
    fig.suptitle(title)
  return fit_fonts(fig)


def plot_learning_curves(panels: Sequence[tuple[str, Mapping[str, tuple]]], path,
                         title: str | None = None) -> pathlib.Path:
  """Save `learning_curves_figure(panels, title)` to `path`; return it."""
  return _save(learning_curves_figure(panels, title), path)


def plot_metric_vs_length(curves: Mapping[str, tuple], path, xlabel: str, ylabel: str,
                          title: str | None = None) -> pathlib.Path:
  """Save `metric_vs_length_figure(curves, xlabel, ylabel, title)` to `path`; return it."""
  return _save(metric_vs_length_figure(curves, xlabel, ylabel, title), path)


def attention_grid_figure(panels: Sequence[tuple], ncols: int = 3) -> Figure:
  """A grid of attention heatmaps sharing one [0, 1] colorbar (one example, many variants).

  Args:
    panels: [(title, weights [tgt_len, src_len], src_tokens, tgt_tokens), ...]; each weights
      array is cropped to its tokens as in `attention_figure`.
    ncols: panels per row.

  Returns:
    The Figure: one heatmap axes per panel (row-major), then the colorbar axes.
  """
  if not panels:
    raise ValueError("panels must hold at least one (title, weights, src, tgt) panel")
  if not isinstance(ncols, int) or ncols < 1:
    raise ValueError(f"ncols must be a positive int, got {ncols!r}")
  cropped = []
  for panel in panels:
    if len(panel) != 4:
      raise ValueError("each panel must be (title, weights, src_tokens, tgt_tokens)")
    title, weights, src, tgt = panel
    cropped.append((title, _cropped_weights(weights, src, tgt), src, tgt))
  ncols = min(ncols, len(cropped))
  nrows = math.ceil(len(cropped) / ncols)
  max_src = max(w.shape[1] for _, w, _, _ in cropped)
  max_tgt = max(w.shape[0] for _, w, _, _ in cropped)
  fig = Figure(figsize=(ncols * max(3.0, 1.6 + _CELL_INCHES * max_src) + 1.0,
                        nrows * max(2.5, 1.8 + _CELL_INCHES * max_tgt)), layout="constrained")
  axes = fig.subplots(nrows, ncols, squeeze=False)
  used = list(axes.flat)[:len(cropped)]
  for ax in list(axes.flat)[len(cropped):]:
    fig.delaxes(ax)  # empty cells of the last row
  for ax, (title, weights, src, tgt) in zip(used, cropped):
    image = _draw_attention(ax, weights, src, tgt, title)
  fig.colorbar(image, ax=used, shrink=0.8)
  return fit_fonts(fig)


def plot_attention_grid(panels: Sequence[tuple], path, ncols: int = 3) -> pathlib.Path:
  """Save `attention_grid_figure(panels, ncols)` to `path`; return it."""
  return _save(attention_grid_figure(panels, ncols), path)
