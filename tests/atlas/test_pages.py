"""attnlab.atlas without a browser: pages are self-contained, specs hold what the charts need.

tests/experiments/test_atlas.py renders real runs' and sweeps' pages in headless Chromium."""

import json
import re

import numpy as np
import pytest

from attnlab.atlas import charts, page, run

SERIES = ("none", "additive", "dot")


def curve_points(with_band=True):
  rng = np.random.default_rng(0)
  points = []
  for series in SERIES:
    for panel in ("exact match", "BLEU"):
      for bucket, x in (("1-4", 3.0), ("5-8", 6.5)):
        y = float(rng.random())
        point = {"series": series, "panel": panel, "x": x, "y": y, "bucket": bucket,
                 "examples": 12}
        if with_band:
          point.update(low=y - 0.1, high=y + 0.1)
        points.append(point)
  return points


def sentence(index, n_src, n_tgt):
  return {"index": index, "src": [f"s{k}" for k in range(n_src)],
          "target": [f"t{k}" for k in range(n_tgt)],
          "gold": [[k, k] for k in range(min(n_src, n_tgt))], "label": f"{n_src} words"}


def model_examples(sentences, attention=True):
  rng = np.random.default_rng(1)
  out = []
  for s in sentences:
    forced = rng.random((len(s["target"]) + 1, len(s["src"])))
    forced /= forced.sum(1, keepdims=True)
    out.append({"index": s["index"], "prediction": s["target"] + ["</s>"],
                "attention": forced.tolist() if attention else None,
                "forced_attention": forced.tolist() if attention else None})
  return out


def specs_of(html: str) -> dict:
  block = re.search(r'<script type="application/json" id="atlas-specs">(.*?)</script>', html,
                    re.DOTALL)
  return json.loads(block.group(1))


def test_a_page_is_one_self_contained_file(tmp_path):
  p = page.Page("a <title>", "sub")
  p.section("Tables", "note")
  p.table(["name", "score"], [["a</script>", "0.5 ± 0.1"], ["b", "0.7 ± 0.2"]],
          sort_keys=[[None, 0.5], [None, 0.7]])
  p.section("Charts")
  p.chart(charts.metric_curves(curve_points(), x_title="length", series_title="variant"), "m")
  html = p.write(tmp_path / "x.html").read_text(encoding="utf-8")
  # Nothing is fetched: no external scripts, styles or images; the libraries are inline.
  markup = re.sub(r"<script[^>]*>.*?</script>", "", html, flags=re.DOTALL)
  assert not re.search(r"<script[^>]*\bsrc=|<link\b|<img\b|\bsrc=|url\(", markup)
  assert html.count("window.vegaEmbed") == 1 and len(html) > 500_000
  assert "a &lt;title&gt;" in html and "a&lt;/script&gt;" in html
  assert '<table class="sortable">' in html and 'data-sort="0.7"' in html
  assert '<div class="chart" id="chart-m"></div>' in html
  assert set(specs_of(html)) == {"chart-m"}
  assert html.count("</script>") == html.count("<script")  # no spec closes its block early
  assert '<a href="#tables">Tables</a>' in html


HOSTILE = ["<!--<script>", "</script><script>alert(1)</script>", "a & b > c", "-->",
           "line\u2028sep\u2029", "<![CDATA[", "\\u003c", "ok"]


def test_embedded_json_has_no_markup_and_parses_back_to_the_original():
  value = {"words": HOSTILE, "nested": {"<key>": [1.5, None, "</SCRIPT >"]}}
  text = page.script_json(value)
  assert json.loads(text) == value
  assert not set(text) & set("<>&\u2028\u2029"), text


def test_markup_in_chart_data_cannot_stop_the_charts(tmp_path):
  """Issue 22: ``<!--<script>`` in a spec's data opened a script-data escape, so the block's
  ``</script>`` no longer closed it and the charts never drew."""
  p = page.Page("hostile")
  spec = charts.metric_curves(curve_points(), x_title="length", series_title="variant")
  spec["title"] = " ".join(HOSTILE)
  p.chart(spec, "m")
  html = p.write(tmp_path / "x.html").read_text(encoding="utf-8")
  block = re.search(r'<script type="application/json" id="atlas-specs">(.*?)</script>', html,
                    re.DOTALL).group(1)
  assert "<" not in block and ">" not in block and "&" not in block
  assert json.loads(block) == {"chart-m": json.loads(json.dumps(spec))}


def test_a_page_without_charts_carries_no_libraries():
  html = page.Page("plain").html()
  assert "vegaEmbed" not in html and 'data-atlas-ready="0"' in html and len(html) < 10_000


def test_two_charts_of_one_name_are_refused():
  p = page.Page("t")
  spec = charts.metric_curves(curve_points(), x_title="x", series_title="s")
  p.chart(spec, "same")
  with pytest.raises(ValueError, match="two charts named 'same'"):
    p.chart(spec, "same")


def test_the_bundle_is_cached_on_disk(tmp_path, monkeypatch):
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
  page.vega_bundle.cache_clear()
  try:
    first = page.vega_bundle()
    cached = list((tmp_path / "attnlab" / "vega").glob("bundle-*.js"))
    assert len(cached) == 1 and cached[0].read_text(encoding="utf-8") == first
  finally:
    page.vega_bundle.cache_clear()


def test_metric_curves_hide_and_show_series_from_the_legend():
  spec = charts.metric_curves(curve_points(), x_title="length", series_title="variant")
  assert len(spec["concat"]) == 2 and spec["columns"] == 3  # a panel per metric
  params = spec["params"]
  assert params[0]["bind"] == "legend" and params[0]["select"]["toggle"] == "true"
  assert params[0]["value"] == [{"series": s} for s in SERIES]  # every series shown at first
  marks = [layer["mark"]["type"] for layer in spec["concat"][0]["layer"]]
  assert marks == ["area", "line", "point"]  # band, line, hoverable points
  tooltip = [t["field"] for t in spec["concat"][0]["layer"][2]["encoding"]["tooltip"]]
  assert tooltip == ["series", "x", "y", "bucket", "examples"]
  no_band = charts.metric_curves(curve_points(False), x_title="x", series_title="s")
  assert [layer["mark"]["type"] for layer in no_band["concat"][0]["layer"]] == ["line", "point"]


def test_attention_explorer_rows_menu_and_gold():
  sentences = [sentence(3, 5, 6), sentence(7, 12, 11)]
  spec = charts.attention_explorer({"additive": model_examples(sentences),
                                    "dot": model_examples(sentences)}, sentences, "variant")
  values = next(iter(spec["datasets"].values())) if "datasets" in spec else spec["data"]["values"]
  rows = [r for r in values if "w" in r]
  # One compact row per (model, sentence, view, output position), holding that row's weights.
  assert len(rows) == 2 * 2 * (7 + 12)
  assert {r["v"] for r in rows} == {"teacher-forced", "decoding"}
  assert all("g" not in r for r in rows if r["v"] == "decoding")
  assert sum(len(r.get("g", ())) for r in rows) == 2 * (5 + 11)  # gold: forced rows only
  bind = {p["name"]: p for p in spec["params"]}
  assert bind["sentence"]["bind"]["options"] == [3, 7] and bind["sentence"]["value"] == 3
  assert bind["view"]["bind"]["options"] == ["teacher-forced", "decoding"]
  without = charts.attention_explorer({"none": model_examples(sentences, attention=False)},
                                      sentences)
  assert without is None


def test_decode_index_links_each_line_to_its_heatmap(tmp_path):
  path = page.decode_index(tmp_path, [("a <b>", "x y"), ("c", "z")])
  html = open(path, encoding="utf-8").read()
  assert '<img src="decode_0.png"' in html and '<img src="decode_1.png"' in html
  assert "a &lt;b&gt; &rarr; x y" in html and "<script src" not in html


def write_multiseed_workdir(workdir):
  workdir.mkdir()
  (workdir / "config.json").write_text(json.dumps(
      {"model": {"decoder": "luong", "attention": "dot"}, "data": {"task": "toy"},
       "eval": {"length_boundaries": [4, 8]}}))
  test = {"exact_match": 0.5, "exact_match_by_length": {
      "1-4": {"count": 3, "mean": 1.0, "std": 0.0, "mean_length": 3.0},
      "5-8": {"count": 4, "mean": 0.25, "std": 0.4, "mean_length": 6.5}}}
  (workdir / "summary.json").write_text(json.dumps(
      {"step": 4, "best_step": 4, "wall_time_s": 2.0,
       "seeds": [{"seed": 0, "test": test}, {"seed": 1, "test": test}]}))
  sentences = [sentence(0, 3, 3), sentence(1, 6, 5)]
  for seed in (0, 1):
    (workdir / f"seed_{seed}").mkdir()
    (workdir / f"seed_{seed}" / "metrics.jsonl").write_text(
        "".join(json.dumps({"step": s, "split": split, "loss": 2.0 / s, "exact_match": 0.1 * s})
                + "\n" for s in (2, 4) for split in ("train", "valid")) + '{"torn": ')
    examples = [{**s, **m, "spread": True, "worst": s["index"] == 1, "quality": 0.5,
                 "exact_match": False} for s, m in zip(sentences, model_examples(sentences))]
    (workdir / f"seed_{seed}" / "attention_examples.json").write_text(json.dumps(
        {"quality": "token accuracy", "has_attention": True, "has_alignment": True,
         "examples": examples}))


def test_run_page_of_a_multiseed_workdir(tmp_path):
  workdir = tmp_path / "run"
  write_multiseed_workdir(workdir)
  html = run.write_run_page(workdir).read_text(encoding="utf-8")
  specs = specs_of(html)
  assert set(specs) == {"chart-curves", "chart-by-length", "chart-explorer"}
  assert "seed 0" in html and "seed 1" in html and "eval.length_boundaries" in html
  assert "[4, 8]" in html  # lists shown in the config table
  menu = specs["chart-explorer"]["params"]
  labels = next(p for p in menu if p["name"] == "sentence")["bind"]["labels"]
  assert labels[0].startswith("6 tokens · #1") and "worst" in labels[0]  # the worst first


def test_bands_prefer_the_reports_interval():
  assert run.band({"mean": 0.5, "std": 0.1, "low": 0.3, "high": 0.6}) == (0.3, 0.6)
  assert run.band({"mean": 0.5, "std": 0.1, "low": "", "high": ""}) == (0.4, 0.6)
  assert run.band({"mean": 0.5, "ci_low": 0.2, "ci_high": 0.7}) == (0.2, 0.7)
  assert run.band({"mean": 0.5, "std": 0.1}, with_std=False) is None


def test_a_run_page_shows_paths_relative_to_itself(tmp_path):
  """A corpus at an absolute path of the machine that trained: the published page names it
  relative to the page's folder, never the absolute path."""
  workdir = tmp_path / "runs" / "run"
  workdir.parent.mkdir()
  write_multiseed_workdir(workdir)
  config = json.loads((workdir / "config.json").read_text())
  config["data"]["path"] = str(tmp_path / "corpora" / "mar.txt")
  (workdir / "config.json").write_text(json.dumps(config))
  html = run.write_run_page(workdir).read_text(encoding="utf-8")
  assert str(tmp_path) not in html
  assert "../../corpora/mar.txt" in html
  assert run.page_path("data/mar.txt", workdir) == "data/mar.txt"  # relative: as it is


@pytest.mark.parametrize("src_len,models_per_row", [(8, 3), (20, 2), (30, 1), (60, 1), (200, 1)])
def test_the_explorer_fits_long_sentences_to_the_page(src_len, models_per_row):
  """Cells shrink (20 px down to 9) and panels per row follow, so a panel fits a 1400 px page
  up to ~140 words; longer sentences scroll inside their chart (the page's CSS)."""
  step, font, columns = charts.explorer_layout(src_len, src_len + 1, 3)
  assert 9 <= step <= 20 and 7 <= font <= 11 and columns == models_per_row
  if src_len <= 120:
    assert columns * (step * src_len + 130) <= 1400
  sentences = [sentence(0, src_len, src_len)]
  spec = charts.attention_explorer({m: model_examples(sentences) for m in SERIES}, sentences)
  assert spec["width"] == {"step": step} and spec["encoding"]["facet"]["columns"] == columns
  assert "max-width: 100%" in page.Page("p").html()  # a wider chart scrolls, not the page
