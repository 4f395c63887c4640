"""Every decimal number in the prose of README.md and docs/*.md comes from a generated file:
it appears, at the precision written, in the page's own result folder (docs/<page>/: CSV,
JSON, Markdown tables the report wrote). A number that does not is either stale (the file was
regenerated, the prose was not) or a quote from elsewhere, listed in QUOTED with where it
comes from. Tables (lines starting with '|') and code blocks are the generated files' own copies
and are not checked here; the report regenerates them.

A weak check on purpose: a prose number matches any value of the folder that rounds to it, so a
number copied from the wrong row can pass; a stale or invented one cannot.
"""

import pathlib
import re

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
# Pages whose prose is checked, each against docs/<page>/ (the README against all of them).
PAGES = ("long_sentence", "multi30k", "score_scaling", "alignment", "mechanisms", "benchmark",
         "kjv_length")
# Numbers a page quotes from outside its result folder: {page: {number: where it comes from}}.
QUOTED = {
    "README": {
        "15.5": "the Quickstart's wall time, printed by experiments.date_wall_time (beside it)",
        "16.1": "the Quickstart's wall time, printed by experiments.date_wall_time (beside it)",
        "0.00073": "a bfloat16 date run's test loss, the command written beside it",
        "0.00077": "the float32 twin of that run, the command written beside it",
        "18.22": "Britz et al. (2017), Table 3 (published anchor)",
        "22.10": "Britz et al. (2017), Table 3 (published anchor)",
    },
    "multi30k": {
        "0.3": "configs/multi30k.py's dropout before its search (the recipe of the rows shown)",
        "32.0": "a wall time in minutes, beside its seconds from summary.json",
        "32.2": "sacrebleu's case-sensitive score, printed by the command written beside it",
        "28.3": "bentrevett/pytorch-seq2seq notebook 3's published BLEU (published anchor)",
        "13.8": "bentrevett/pytorch-seq2seq notebook 1's published BLEU (published anchor)",
        "4.5": "the long buckets' interval half-width, rounded by hand (written 'about')",
    },
    "benchmark": {
        "0.96": "a hand run of benchmark_padding's 400 steps, four buckets (stated as such)",
        "1.42": "a hand run of benchmark_padding's 400 steps, eight buckets (stated as such)",
        "1.11": "a hand run of the training loop with glibc's malloc defaults (stated as such)",
        "1.14": "a hand run of the training loop with glibc's malloc defaults (stated as such)",
        "1.41": "a hand run of the training loop with freed memory kept (stated as such)",
        "1.34": "a hand run of the training loop with freed memory kept (stated as such)",
    },
    "score_scaling": {
        "18.22": "Britz et al. (2017), Table 3 (published anchor)",
    },
    "alignment": {
        "0.036": "the AER change from no longer scoring the </s> row, measured once (dated)",
    },
    "mechanisms": {
        "0.34": "Luong et al. (2015)'s AER for local-m (published anchor)",
        "0.36": "Luong et al. (2015)'s AER for local-p (published anchor)",
        "0.39": "Luong et al. (2015)'s AER for location-based global attention (published "
                "anchor)",
        "0.32": "the Berkeley aligner's AER in Luong et al. (2015), Table 6 (published anchor)",
    },
}
NUMBER = re.compile(r"(?<![\w.])[-+]?\d[\d,]*\.\d+(?![\w.])")
VALUE = re.compile(r"[-+]?\d+\.\d+(?:[eE][-+]?\d+)?")


def _values(folder: pathlib.Path) -> set[str]:
  """Every decimal value in the folder's result files, written at 0 to 4 decimals."""
  found = set()
  for path in folder.rglob("*"):
    if path.suffix in (".csv", ".json", ".jsonl", ".md"):
      for token in VALUE.findall(path.read_text(encoding="utf-8", errors="ignore")):
        found.update(f"{abs(float(token)):.{digits}f}" for digits in range(5))
  return found


def _prose_numbers(text: str) -> list[tuple[str, str]]:
  """(number without sign or thousands separators, its line) of each decimal number outside
  code blocks and tables."""
  body = re.sub(r"```.*?```", "", text, flags=re.DOTALL)
  return [(token.lstrip("+-").replace(",", ""), line.strip())
          for line in body.splitlines() if not line.lstrip().startswith("|")
          for token in NUMBER.findall(line)]


def _unsupported(page: str, text: str, values: set[str]) -> list[str]:
  quoted = QUOTED.get(page, {})
  return [f"{number} in: {line[:120]}" for number, line in _prose_numbers(text)
          if number not in values and number not in quoted]


@pytest.mark.parametrize("page", [p for p in PAGES if (DOCS / f"{p}.md").is_file()])
def test_a_pages_prose_numbers_come_from_its_result_files(page):
  values = _values(DOCS / page)
  assert values, f"docs/{page}/ holds no result files"
  assert _unsupported(page, (DOCS / f"{page}.md").read_text(encoding="utf-8"), values) == []


def test_the_readmes_prose_numbers_come_from_the_result_files():
  values = set().union(*(_values(DOCS / p) for p in PAGES if (DOCS / p).is_dir()))
  text = (REPO / "README.md").read_text(encoding="utf-8")
  assert _unsupported("README", text, values) == []


def test_a_stale_number_is_caught():
  values = {"0.500", "0.50", "0.5", "1", "0"}
  assert _unsupported("x", "BLEU 0.50 here", values) == []
  assert _unsupported("x", "BLEU 0.51 here", values) == ["0.51 in: BLEU 0.51 here"]
  assert _unsupported("x", "| 0.51 | a table row |", values) == []
  assert _unsupported("x", "```\n0.51\n```", values) == []


# "value [low, high]": a mean or a difference with its interval, in a table or in prose.
WITH_INTERVAL = re.compile(r"(?<![\w.])([-+]?\d+\.\d+) \[([-+]?\d+\.\d+), ([-+]?\d+\.\d+)\]")


def _intervals(text: str) -> set[tuple[str, ...]]:
  """Each "value [low, high]" of ``text`` as (|value|, |low|, |high| sorted): a difference may
  be written either way round ("A beats B by 0.10 [0.02, 0.21]" for B - A = -0.10 [-0.21,
  -0.02])."""
  return {(v.lstrip("+-"), *sorted(x.lstrip("+-") for x in (a, b)))
          for v, a, b in WITH_INTERVAL.findall(text)}


@pytest.mark.parametrize("page", [p for p in PAGES if (DOCS / p).is_dir()])
def test_a_pages_intervals_are_the_reports(page):
  """Every value with its interval on docs/<page>.md, tables included, is one the report wrote
  (docs/<page>/*.md, at the same precision): an interval computed another way, or left from an
  earlier run, is caught."""
  written = _intervals("".join(p.read_text(encoding="utf-8") for p in (DOCS / page).rglob("*.md")))
  shown = _intervals((DOCS / f"{page}.md").read_text(encoding="utf-8"))
  assert sorted(shown - written) == []


def test_an_interval_computed_elsewhere_is_caught():
  written = _intervals("| a | 0.936 [0.867, 1.000] |\n| b | -0.100 [-0.208, -0.022] |")
  assert _intervals("0.936 [0.867, 1.000] and by 0.100 [0.022, 0.208]") <= written
  assert not _intervals("0.936 [0.867, 1.005]") <= written


def test_the_readmes_intervals_are_the_reports():
  written = _intervals("".join(p.read_text(encoding="utf-8")
                               for page in PAGES if (DOCS / page).is_dir()
                               for p in (DOCS / page).rglob("*.md")))
  shown = _intervals((REPO / "README.md").read_text(encoding="utf-8"))
  assert sorted(shown - written) == []


def _table_rows(text: str, header: str) -> dict[str, list[str]]:
  """{first cell without bold: cells} of the Markdown table whose header row starts with
  ``header`` in ``text``."""
  lines = text[text.index(header):].splitlines()
  rows = {}
  for line in lines[2:]:
    if not line.startswith("|"):
      break
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    rows[cells[0].strip("*")] = cells
  return rows


def test_the_multi30k_search_table_is_the_search_s_report():
  """docs/multi30k.md's table of the recipe search: every committed setting, each row with its
  search overrides, the report's validation BLEU (results.md) and its wall time (trials.csv)."""
  import csv
  from attnlab.defaults import load_config_file
  search = load_config_file(str(REPO / "configs" / "sweeps" / "multi30k_search.py"))
  folder = DOCS / "multi30k" / "search"
  shown = _table_rows((DOCS / "multi30k.md").read_text(encoding="utf-8"), "| setting | passes |")
  report = _table_rows((folder / "results.md").read_text(encoding="utf-8").split(
      "**all test examples**")[1], "| setting |")
  with open(folder / "trials.csv", encoding="utf-8") as f:
    wall = {row["setting"]: float(row["wall_time_s"]) for row in csv.DictReader(f)}
  assert list(shown) == list(search.settings()) == list(wall)
  for name, overrides in search.settings().items():
    _, _, lr, dropout, smoothing, bleu, detokenized, seconds = shown[name]
    assert [float(lr), float(dropout), float(smoothing)] == [
        overrides["train.learning_rate"], overrides["model.dropout_rate"],
        overrides["train.label_smoothing"]], name
    assert (bleu, detokenized) == (report[name][2], report[name][3]), name
    assert seconds == f"{wall[name]:,.0f}", name
