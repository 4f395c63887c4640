"""The attention atlas in a real browser: headless Chromium (Debian's ``chromium``) driven by
playwright over the Chrome DevTools Protocol.

Pages of real runs: the tiny long-sentence sweep (two variants, two vmapped seeds each) and its
report's ``index.html``, a trial's ``report.html``, a date run's ``report.html`` and the
``index.html`` of its ``--mode=decode --heatmaps``. Each page must load from disk with no
console error and no request leaving the file, draw its charts and the attention explorer
(elements of non-zero size), show a cell's weight on hover, and leave a screenshot
(under pytest's tmp_path; also in ``$ATTNLAB_ATLAS_SCREENSHOTS`` when set).
"""

import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

from attnlab import training
from attnlab.atlas import charts, page
from attnlab.defaults import load_config_file
from experiments import report

REPO = pathlib.Path(__file__).resolve().parents[2]
# As the machine's own probe starts it: no sandbox (root), no GPU, no background traffic.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-dev-shm-usage"]

pytestmark = pytest.mark.slow


def chromium_path() -> str | None:
  """``$ATTNLAB_CHROMIUM``, else a Chromium on PATH."""
  candidates = [os.environ.get("ATTNLAB_CHROMIUM")] + [
      shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")]
  return next((c for c in candidates if c and os.path.exists(c)), None)


@pytest.fixture(scope="module")
def browser():
  sync_api = pytest.importorskip(
      "playwright.sync_api", reason="playwright is not installed (pip install -e '.[test]')")
  path = chromium_path()
  if path is None:
    pytest.skip("no Chromium to drive: `apt-get install -y chromium` (.ci/run installs it) or "
                "set ATTNLAB_CHROMIUM to a Chromium binary")
  with sync_api.sync_playwright() as p:
    chromium = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
    yield chromium
    chromium.close()


class Loaded:
  """A page opened from disk, with what its console said and what it requested."""

  def __init__(self, browser, path: pathlib.Path):
    self.page = browser.new_page(viewport={"width": 1400, "height": 900})
    self.errors, self.requests = [], []
    self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
    self.page.on("pageerror", lambda e: self.errors.append(str(e)))
    self.page.on("request", lambda r: self.requests.append(r.url))
    self.page.goto(path.resolve().as_uri())
    self.page.wait_for_selector("body[data-atlas-ready], body[data-atlas-error]",
                                state="attached", timeout=60_000)

  def check_loaded(self, charts: int) -> None:
    assert self.errors == [] and self.page.get_attribute("body", "data-atlas-error") is None
    assert self.page.get_attribute("body", "data-atlas-ready") == str(charts)
    assert [u for u in self.requests if not u.startswith(("file:", "data:", "blob:"))] == []
    for chart in self.page.query_selector_all("div.chart"):
      box = chart.query_selector("svg.marks").bounding_box()
      assert box["width"] > 100 and box["height"] > 100, chart.get_attribute("id")

  def hover(self, selector: str, index: int = 0) -> str:
    """Moves the mouse onto the index-th element matching ``selector``; the tooltip's text."""
    self.page.mouse.move(0, 0)  # off any mark: the tooltip hides
    self.page.wait_for_selector("#vg-tooltip-element.visible", state="detached", timeout=5_000)
    element = self.page.query_selector_all(selector)[index]
    element.scroll_into_view_if_needed()
    box = element.bounding_box()
    assert box["width"] > 0 and box["height"] > 0
    self.page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    self.page.wait_for_selector("#vg-tooltip-element.visible", timeout=5_000)
    return self.page.inner_text("#vg-tooltip-element")

  def screenshot(self, path: pathlib.Path) -> pathlib.Path:
    # The sticky navigation bar laid out in place: a full-page picture would paint it over the
    # charts where the last hover scrolled (as experiments/screenshot.py does).
    self.page.add_style_tag(content="nav { position: static !important; }")
    self.page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 20_000
    if os.environ.get("ATTNLAB_ATLAS_SCREENSHOTS"):
      shutil.copy(path, pathlib.Path(os.environ["ATTNLAB_ATLAS_SCREENSHOTS"]) / path.name)
    return path


def check_explorer(loaded: Loaded, chart_id: str) -> None:
  """The explorer draws cells; hovering one shows its weight; another sentence redraws."""
  cells = f"#{chart_id} g.mark-rect.role-mark path"
  assert len(loaded.page.query_selector_all(cells)) > 0
  text = loaded.hover(cells, 3)
  weight = float(re.search(r"weight\s+([0-9.]+)", text).group(1))
  assert 0.0 <= weight <= 1.0 and "source word" in text and "output word" in text
  options = loaded.page.query_selector_all(f"#{chart_id} select option")
  assert len(options) >= 1
  loaded.page.select_option(f"#{chart_id} select", index=len(options) - 1)
  loaded.page.wait_for_timeout(300)
  assert len(loaded.page.query_selector_all(cells)) > 0 and loaded.errors == []


def test_each_cell_shows_its_own_weight(browser, tmp_path):
  """The explorer stores a row's weights as one list and expands them in the browser: the
  weight hovered must be that of the cell's source and output word."""
  sentence = {"index": 0, "src": [f"s{i}" for i in range(5)], "target": ["t0", "t1", "t2"],
              "gold": [[0, 0], [2, 4]], "label": "5 words"}
  weights = [[(10 * j + i) / 100 for i in range(5)] for j in range(4)]  # rows: t0-t2, </s>
  spec = charts.attention_explorer({"m": [{"index": 0, "prediction": ["t0", "t1", "t2", "</s>"],
                                           "attention": weights, "forced_attention": weights}]},
                                   [sentence])
  atlas_page = page.Page("cells")
  atlas_page.chart(spec, "explorer")
  loaded = Loaded(browser, atlas_page.write(tmp_path / "cells.html"))
  loaded.check_loaded(charts=1)
  cells = "#chart-explorer g.mark-rect.role-mark path"
  assert len(loaded.page.query_selector_all(cells)) == 4 * 5
  for k in (0, 3, 7, 12, 19):
    text = loaded.hover(cells, k)
    i = int(re.search(r"source word\s+s(\d)", text).group(1))
    output = re.search(r"output word\s+(\S+)", text).group(1)
    j = 3 if output == "</s>" else int(output[1:])
    assert f"{(10 * j + i) / 100:.3f}" in text
    gold = re.search(r"gold link\s+(\w+)", text).group(1)
    assert gold == ("yes" if (j, i) in {(0, 0), (2, 4)} else "no")


def test_a_60_word_sentence_stays_within_the_page(browser, tmp_path):
  """The explorer of a 60-word sentence under 4 variants: no panel runs off a 1400 px page
  (cells shrink, a panel per row); on a narrow window the chart scrolls inside itself and the
  page keeps its width."""
  n = 60
  sentence = {"index": 0, "src": [f"w{i}" for i in range(n)],
              "target": [f"o{i}" for i in range(n)], "gold": None, "label": f"{n} words"}
  weights = [[1.0 / n] * n for _ in range(n + 1)]
  example = {"index": 0, "prediction": sentence["target"] + ["</s>"], "attention": weights,
             "forced_attention": weights}
  spec = charts.attention_explorer({v: [example] for v in ("none", "dot", "general", "mlp")},
                                   [sentence], model_title="variant")
  atlas_page = page.Page("long")
  atlas_page.chart(spec, "explorer")
  loaded = Loaded(browser, atlas_page.write(tmp_path / "long.html"))
  loaded.check_loaded(charts=1)
  widths = ("() => ({page: document.documentElement.scrollWidth, window: window.innerWidth, "
            "chart: document.querySelector('div.chart').clientWidth, "
            "drawn: document.querySelector('div.chart svg').getBoundingClientRect().width})")
  sizes = loaded.page.evaluate(widths)
  assert sizes["page"] <= sizes["window"] and sizes["drawn"] <= sizes["chart"], sizes
  loaded.page.set_viewport_size({"width": 800, "height": 900})
  sizes = loaded.page.evaluate(widths)
  assert sizes["page"] <= sizes["window"] and sizes["drawn"] > sizes["chart"], sizes
  loaded.screenshot(tmp_path / "long_explorer.png")


@pytest.fixture(scope="module")
def sweep_atlas(tiny_sweep, tmp_path_factory):
  root, _, _ = tiny_sweep
  out = tmp_path_factory.mktemp("atlas")
  assert report.main(["--root", str(root), "--out", str(out)]) == 0
  return root, out / "index.html"


def test_sweep_atlas_renders_with_charts_explorer_and_hover(browser, sweep_atlas, tmp_path):
  root, index = sweep_atlas
  assert index.stat().st_size < 5_000_000
  loaded = Loaded(browser, index)
  loaded.check_loaded(charts=3)  # metrics vs length, one explorer, learning curves
  text = loaded.hover("#chart-metrics .mark-symbol path")
  assert "variant" in text and "bucket" in text and "examples" in text
  # A click on a legend entry hides that variant; another shows it again.
  view = "atlasViews['chart-metrics'].data('shown_store').length"
  assert loaded.page.evaluate(view) == 2
  symbol = loaded.page.query_selector_all("#chart-metrics .role-legend-symbol path")[0]
  box = symbol.bounding_box()
  loaded.page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
  assert loaded.page.evaluate(view) == 1
  loaded.page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
  assert loaded.page.evaluate(view) == 2
  check_explorer(loaded, "chart-explorer-0")
  assert "No attention to show for none" in loaded.page.inner_text("body")
  # Clicking a results table's header sorts its rows by that column, again reverses them.
  header = loaded.page.query_selector("table.sortable th:nth-child(1)")
  first = "table.sortable tbody tr:first-child td:first-child"
  header.click()
  assert header.get_attribute("data-dir") == "asc" and loaded.page.inner_text(first) == "additive"
  header.click()
  assert header.get_attribute("data-dir") == "desc" and loaded.page.inner_text(first) == "none"
  loaded.screenshot(tmp_path / "sweep_atlas.png")


def test_the_sweep_atlas_names_no_machine_path_and_no_spread_of_one_value(sweep_atlas):
  """Published as it is: the atlas names the sweep's folder relative to itself, never the
  absolute path it was made under; a cost the vmapped seeds share (train steps/s) is one
  measurement, shown without "± 0.000"."""
  root, index = sweep_atlas
  html = index.read_text(encoding="utf-8")
  assert str(root) not in html and str(root.resolve()) not in html
  assert "relative to this page" in html
  assert "<title>attnlab atlas: tiny_sweep.py</title>" in html  # the sweep file's name alone
  assert "± 0.000" not in html and "± 0.0<" not in html
  assert "± 0.0 |" not in (index.parent / "results.md").read_text(encoding="utf-8")
  for run_page in root.glob("*/report.html"):
    assert str(root.resolve()) not in run_page.read_text(encoding="utf-8")


def test_a_cost_shows_a_spread_only_where_it_was_measured_more_than_once():
  """train steps/s: the vmapped seeds of one trial share one measurement (std 0: the mean
  alone); seeds run as separate trials measured it each (a real spread: shown)."""
  from experiments import report_tables  # pylint: disable=import-outside-toplevel
  shared = {"mean": 12.34, "std": 0.0, "low": "", "high": "", "num_seeds": 2}
  assert report_tables.fmt(shared, "train_steps_per_second") == "12.3"
  assert report_tables.fmt({**shared, "std": 0.5}, "train_steps_per_second") == "12.3 ± 0.5"
  assert report_tables.fmt({**shared, "std": 0.0}, "loss") == "12.340 ± 0.000"  # 2 seeds, tie


def test_a_trials_run_page_renders(browser, sweep_atlas, tmp_path):
  root, _ = sweep_atlas
  loaded = Loaded(browser, root / "variant=additive,train_len=8" / "report.html")
  loaded.check_loaded(charts=3)  # curves, by length, explorer
  assert "seed 0" in loaded.page.inner_text("body")
  check_explorer(loaded, "chart-explorer")
  loaded.screenshot(tmp_path / "trial_run_page.png")


@pytest.fixture(scope="module")
def date_run(tmp_path_factory):
  config = load_config_file(REPO / "configs" / "date.py").get_config("quick")
  workdir = tmp_path_factory.mktemp("date")
  training.train_and_evaluate(config, str(workdir))
  return workdir


def test_date_run_page_puts_the_worst_examples_first(browser, date_run, tmp_path):
  assert (date_run / "attention_examples.json").exists()
  loaded = Loaded(browser, date_run / "report.html")
  loaded.check_loaded(charts=3)
  selected = loaded.page.eval_on_selector("#chart-explorer select",
                                          "s => s.options[s.selectedIndex].text")
  assert "worst" in selected
  text = loaded.hover("#chart-explorer g.mark-rect.role-mark path")
  assert "gold link" in text  # the date task knows its alignment
  check_explorer(loaded, "chart-explorer")
  loaded.screenshot(tmp_path / "date_run_page.png")


def test_decode_heatmaps_get_an_index_page(browser, date_run, tmp_path):
  heatmaps = tmp_path / "heatmaps"
  proc = subprocess.run(
      [sys.executable, "-m", "attnlab.main", "--mode=decode", f"--workdir={date_run}",
       f"--heatmaps={heatmaps}"], input="98-03-23\n\n01-12-05\n", capture_output=True,
      text=True, cwd=REPO, timeout=300, env={**os.environ, "JAX_PLATFORMS": "cpu"})
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert sorted(p.name for p in heatmaps.iterdir()) == ["decode_0.png", "decode_1.png",
                                                        "index.html"]
  loaded = Loaded(browser, heatmaps / "index.html")
  loaded.check_loaded(charts=0)
  images = loaded.page.query_selector_all("img")
  assert len(images) == 2
  for image in images:
    image.scroll_into_view_if_needed()
    assert loaded.page.evaluate("(img) => img.complete && img.naturalWidth", image) > 100
  assert "98-03-23" in loaded.page.inner_text("body")


def test_the_screenshot_command_photographs_an_atlas_from_a_section(sweep_atlas, tmp_path):
  """experiments.screenshot, as the README regenerates docs/atlas/*.png with it: a process of
  its own (its playwright cannot nest in the ``browser`` fixture's, in one thread)."""
  pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
  if chromium_path() is None:
    pytest.skip("no Chromium: `apt-get install -y chromium` (.ci/run installs it)")
  _, index = sweep_atlas
  out = tmp_path / "shot.png"

  def shoot(*args):
    return subprocess.run([sys.executable, "-m", "experiments.screenshot", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=300)

  done = shoot("--page", str(index), "--out", str(out), "--start", "#metrics-vs-source-length",
               "--height", "900")
  assert done.returncode == 0, done.stderr[-3000:]
  assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 20_000
  missing = shoot("--page", str(index), "--out", str(tmp_path / "x.png"), "--start", "#nope")
  assert missing.returncode == 1 and "no such element" in missing.stderr
  bad = shoot("--page", str(tmp_path / "missing.html"), "--out", str(out))
  assert bad.returncode == 2 and bad.stderr.startswith("error: --page")
