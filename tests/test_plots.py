"""Tests for attnlab.plots: files are written, tick labels are the tokens, bad input raises."""

import os
import pathlib
import subprocess
import sys
import warnings

import numpy as np
import pytest

from attnlab import plots

SRC = ["le", "chat", "est", "noir", "</s>"]
TGT = ["the", "cat", "is", "black", "</s>"]


def _weights(tgt_len, src_len, seed=0):
  rng = np.random.default_rng(seed)
  w = rng.random((tgt_len, src_len))
  return w / w.sum(-1, keepdims=True)


def _assert_png(path):
  assert path.exists()
  data = path.read_bytes()
  assert data[:8] == b"\x89PNG\r\n\x1a\n"
  assert len(data) > 5_000  # a real picture, not an empty canvas


def test_attention_figure_tick_labels_are_tokens_and_weights_are_cropped():
  padded = _weights(8, 9)  # [tgt_len, src_len] with padding beyond the tokens
  fig = plots.attention_figure(padded, SRC, TGT, title="luong / dot")
  ax = fig.axes[0]
  assert [t.get_text() for t in ax.get_xticklabels()] == SRC
  assert [t.get_text() for t in ax.get_yticklabels()] == TGT
  assert ax.get_title() == "luong / dot"
  assert ax.images[0].get_array().shape == (len(TGT), len(SRC))
  assert len(fig.axes) == 2  # heatmap + colorbar


def test_plot_attention_writes_png(tmp_path):
  out = plots.plot_attention(_weights(5, 5), SRC, TGT, tmp_path / "attention.png")
  assert out == tmp_path / "attention.png"
  _assert_png(out)


def test_plot_attention_bad_input_raises(tmp_path):
  with pytest.raises(ValueError, match="do not fit"):
    plots.attention_figure(_weights(2, 5), SRC, TGT)
  with pytest.raises(ValueError, match="tgt_len, src_len"):
    plots.attention_figure(np.ones(5), SRC, TGT)
  with pytest.raises(ValueError, match="non-empty"):
    plots.attention_figure(_weights(5, 5), [], TGT)


def test_plot_metric_vs_length_writes_png(tmp_path):
  lengths = np.array([5.0, 15.0, 30.0, 50.0])
  curves = {
      "bahdanau": (lengths, np.array([0.9, 0.85, 0.7, 0.6]), np.array([0.05, 0.05, 0.1, 0.1])),
      "no attention": (lengths, np.array([0.9, 0.6, 0.3, 0.1]), None),
      "luong": (lengths, [0.92, 0.88, 0.8, 0.7]),
  }
  fig = plots.metric_vs_length_figure(curves, "source length", "BLEU", title="vs length")
  ax = fig.axes[0]
  assert [t.get_text() for t in ax.get_legend().get_texts()] == list(curves)
  assert len(ax.collections) == 1  # one ±std band
  out = plots.plot_metric_vs_length(curves, tmp_path / "bleu.png", "source length", "BLEU")
  _assert_png(out)
  with pytest.raises(ValueError):
    plots.plot_metric_vs_length({}, tmp_path / "x.png", "x", "y")
  with pytest.raises(ValueError):
    plots.plot_metric_vs_length({"a": (lengths, [1.0])}, tmp_path / "x.png", "x", "y")


def test_plot_attention_grid_writes_png(tmp_path):
  panels = [(name, _weights(6, 6, seed), SRC, TGT)
            for seed, name in enumerate(["dot", "general", "concat", "additive"])]
  fig = plots.attention_grid_figure(panels, ncols=3)
  heatmaps = [ax for ax in fig.axes if ax.images]
  assert [ax.get_title() for ax in heatmaps] == ["dot", "general", "concat", "additive"]
  assert all([t.get_text() for t in ax.get_xticklabels()] == SRC for ax in heatmaps)
  out = plots.plot_attention_grid(panels, tmp_path / "grid.png", ncols=3)
  _assert_png(out)
  with pytest.raises(ValueError):
    plots.plot_attention_grid([], tmp_path / "x.png")
  with pytest.raises(ValueError):
    plots.plot_attention_grid(panels, tmp_path / "x.png", ncols=0)


# ---------------------------------------------------------------- text in any script

MARATHI = ["माझे", "नाव", "राम", "आहे", "</s>"]


def test_devanagari_labels_get_a_covering_font_or_one_warning(tmp_path, monkeypatch):
  """Marathi tick labels and title: drawn with an installed font that has Devanagari (no
  "Glyph missing" warning), or, with none installed, one warning that names a font to
  install, however many figures and glyphs, and still a picture."""
  monkeypatch.setattr(plots, "warned_scripts", set())
  families, missing = plots.fonts_for(MARATHI)
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    for k in range(2):
      _assert_png(plots.plot_attention(_weights(5, 5), MARATHI, TGT, tmp_path / f"{k}.png",
                                       title="मराठी → English"))
    plots.plot_attention_grid([("a", _weights(5, 5), MARATHI, TGT)], tmp_path / "grid.png")
  messages = [str(w.message) for w in caught]
  assert not [m for m in messages if m.startswith("Glyph")], messages
  ours = [m for m in messages if m.startswith("no installed font draws")]
  if missing:
    assert len(ours) == 1 and "Devanagari" in ours[0] and "fonts-noto-core" in ours[0]
  else:
    assert ours == [] and len(families) >= 2  # DejaVu Sans, then a Devanagari font
    fig = plots.attention_figure(_weights(5, 5), MARATHI, TGT)
    assert fig.axes[0].get_xticklabels()[0].get_fontfamily() == families


def test_latin_labels_keep_the_default_font():
  assert plots.fonts_for(SRC + TGT + ["é", "ß", "—"]) == ([], set())
  fig = plots.attention_figure(_weights(5, 5), SRC, TGT)
  assert fig.axes[0].get_xticklabels()[0].get_fontfamily() == ["sans-serif"]


@pytest.mark.slow
def test_a_marathi_run_draws_its_heatmaps_without_glyph_warnings(tmp_path):
  """Through ``python -m attnlab.main`` on the shipped English-Marathi corpus: its attention
  heatmaps (Marathi output words) are written; stderr has no "Glyph ... missing" line, and
  the one line naming a font to install exactly when no installed font has Devanagari."""
  repo = pathlib.Path(__file__).resolve().parents[1]
  proc = subprocess.run(
      [sys.executable, "-m", "attnlab.main", "--config", f"{repo / 'configs' / 'mar_eng.py'}:quick",
       "--workdir", str(tmp_path)], capture_output=True, text=True, cwd=repo, timeout=600,
      env={**os.environ, "JAX_DISABLE_MOST_OPTIMIZATIONS": "true", "JAX_PLATFORMS": "cpu"})
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert list(tmp_path.glob("attention_*.png"))
  assert "Glyph" not in proc.stderr
  _, missing = plots.fonts_for(["आहे"])
  assert proc.stderr.count("no installed font draws Devanagari") == (1 if missing else 0)
