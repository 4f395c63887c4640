"""experiments.report on the tiny sweep that tests/experiments/test_sweep.py runs."""

import csv
import json
import re
import shutil

import pytest

from statsmodels.stats.multitest import multipletests

from attnlab import intervals, plots, results
from experiments import report, report_tables


@pytest.fixture(scope="module")
def written(tiny_sweep, tmp_path_factory):
  root, _, _ = tiny_sweep
  return report.write_report(root, tmp_path_factory.mktemp("report"))


def test_csv_has_mean_and_spread_over_seeds_per_length_bucket(written):
  with open(written["csv"], encoding="utf-8") as f:
    rows = list(csv.DictReader(f))
  assert {r["variant"] for r in rows} == {"none", "additive"}  # the failed trial is left out
  assert {r["train_len"] for r in rows} == {"8"}
  assert all(r["num_seeds"] == "2" for r in rows)
  exact = [r for r in rows if r["metric"] == "exact_match" and r["variant"] == "additive"]
  assert [r["bucket"] for r in exact] == ["all", "1-4", "5-6", ">6"]
  for r in exact:
    assert 0.0 <= float(r["mean"]) <= 1.0 and float(r["std"]) >= 0.0
  metrics = {r["metric"] for r in rows}
  assert {"exact_match", "bleu", "alignment_error_rate", "attention_entropy"} <= metrics
  # No beam decodings: no decoding axis. Trained on sources of up to 8 words, tested on up to
  # 8: every bucket is in range.
  assert "decoding" not in rows[0]
  assert {r["regime"] for r in rows if r["bucket"] != "all"} == {"in_range"}
  assert {r["regime"] for r in rows if r["bucket"] == "all"} == {""}
  # No attention, no alignment: the baseline has no AER rows.
  assert not [r for r in rows if r["variant"] == "none" and r["metric"] == "alignment_error_rate"]


def test_trials_csv_has_each_trials_wall_time_and_steps(written, tiny_sweep):
  root, _, _ = tiny_sweep
  with open(written["trials"], encoding="utf-8") as f:
    rows = list(csv.DictReader(f))
  finished = sorted(p.parent.name for p in root.glob("*/summary.json"))
  assert sorted(r["trial"] for r in rows) == finished  # once each; the broken one is not there
  for row in rows:
    status = json.loads((root / row["trial"] / "status.json").read_text(encoding="utf-8"))
    summary = json.loads((root / row["trial"] / "summary.json").read_text(encoding="utf-8"))
    # One run each: its own wall time is the total over its runs.
    assert float(row["wall_time_s"]) == status["total_wall_time_s"] == status["wall_time_s"] > 0
    assert int(row["runs"]) == status["runs"] == 1
    assert int(row["step"]) == summary["step"] and row["variant"]
    assert float(row["train_wall_time_s"]) == summary["wall_time_s"]


def test_markdown_tables(written):
  text = written["markdown"].read_text(encoding="utf-8")
  assert "**exact match by source length**" in text and "**all test examples**" in text
  assert "| variant | train_len | 1-4 (" in text
  assert "| additive | 8 |" in text and " ± " in text


def test_figures(written):
  names = sorted(p.name for p in written["figures"])
  assert names == ["alignment_error_rate_vs_length__train_len-8.png",
                   "attention_grid__train_len-8.png", "bleu_vs_length__train_len-8.png",
                   "exact_match_vs_length__train_len-8.png",
                   "first_error_share_vs_position__train_len-8.png",
                   "learning_curves__train_len-8.png",
                   "token_accuracy_vs_position__train_len-8.png"]
  for path in written["figures"]:
    assert path.stat().st_size > 5000 and path.read_bytes()[:4] == b"\x89PNG"


def test_several_line_axes_draw_a_line_per_combination(tiny_sweep, tmp_path, monkeypatch):
  """``--line variant,train_len`` (Bahdanau et al.'s Fig. 2: a line per model and training
  length): one figure, no panel per training length, a line labelled per combination."""
  tiny, _, _ = tiny_sweep
  root = tmp_path / "two_lengths"  # the tiny sweep's trials, each also as train_len=9
  for trial in tiny.glob("variant=*,train_len=8"):
    if (trial / "summary.json").exists():
      for length in (8, 9):
        shutil.copytree(trial, root / trial.name.replace("train_len=8", f"train_len={length}"),
                        ignore=shutil.ignore_patterns("checkpoints"))
  drawn = []
  figure = plots.metric_vs_length_figure

  def recording(curves, *args, **kwargs):
    drawn.append(sorted(curves))
    return figure(curves, *args, **kwargs)
  monkeypatch.setattr(plots, "metric_vs_length_figure", recording)
  paths = report.write_report(root, tmp_path / "report", line="variant,train_len")
  names = sorted(p.name for p in paths["figures"])
  assert names == ["alignment_error_rate_vs_length.png", "attention_grid.png",
                   "bleu_vs_length.png", "exact_match_vs_length.png",
                   "first_error_share_vs_position.png", "learning_curves.png",
                   "token_accuracy_vs_position.png"]
  assert drawn[0] == ["additive, train_len=8", "additive, train_len=9", "none, train_len=8",
                      "none, train_len=9"]
  # The tables keep the sweep's own axes.
  assert "| variant | train_len | 1-4 (" in paths["markdown"].read_text(encoding="utf-8")
  with pytest.raises(report.ReportError, match="'nope' is not an axis"):
    report.write_report(root, tmp_path / "report", line="variant,nope")


def test_a_line_axis_with_one_label_stays_a_figure_axis(written, tiny_sweep, tmp_path):
  """The tiny sweep has one training length: ``variant,train_len`` draws as ``variant``."""
  root, _, _ = tiny_sweep
  paths = report.write_report(root, tmp_path, line="variant,train_len")
  assert sorted(p.name for p in paths["figures"]) == sorted(p.name for p in written["figures"])


def test_x_axis_can_be_a_sweep_axis(tiny_sweep, tmp_path):
  root, _, _ = tiny_sweep
  paths = report.write_report(root, tmp_path, line="variant", x_axis="train_len")
  assert "exact_match_vs_train_len.png" in {p.name for p in paths["figures"]}
  assert "| variant | train_len=8 |" in paths["markdown"].read_text(encoding="utf-8")


# ---------------------------------------------------------------- --root that is not a sweep

def test_a_single_runs_workdir_gives_a_one_row_report(tiny_sweep, tmp_path, capsys):
  """``--root`` at one run's workdir (``attnlab.main --workdir``): one row, its seeds pooled."""
  root, _, _ = tiny_sweep
  run = root / "variant=additive,train_len=8"
  assert report.main(["--root", str(run), "--out", str(tmp_path)]) == 0
  with open(tmp_path / "results.csv", encoding="utf-8") as f:
    rows = list(csv.DictReader(f))
  overall = [r for r in rows if r["bucket"] == "all" and r["metric"] == "exact_match"]
  assert len(overall) == 1
  assert overall[0]["run"] == "variant=additive,train_len=8" and overall[0]["num_seeds"] == "2"
  text = (tmp_path / "results.md").read_text(encoding="utf-8")
  table = text[text.index("**all test examples**"):text.index("## Where outputs go wrong")]
  table = table.splitlines()
  assert [line for line in table if line.startswith("| variant=")] == [
      line for line in table if line.startswith("| variant=additive,train_len=8 |")]
  assert len([line for line in table if line.startswith("| variant=")]) == 1
  assert (tmp_path / "exact_match_vs_length.png").exists()
  assert (tmp_path / "attention_grid.png").exists()
  assert "results.md" in capsys.readouterr().out


@pytest.mark.parametrize("setup,needle", [
    (lambda d: None, "no such folder"),
    (lambda d: (d.mkdir(), (d / "config.json").write_text("{}")), "has not finished"),
    (lambda d: d.mkdir(), "no finished trials"),
])
def test_a_root_without_results_is_one_line_and_exit_2(tmp_path, capsys, setup, needle):
  root = tmp_path / "run"
  setup(root)
  with pytest.raises(SystemExit) as exit_info:
    report.main(["--root", str(root)])
  assert exit_info.value.code == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and err[0].startswith("error: ") and needle in err[0], err


def test_a_bad_line_axis_is_one_line_and_exit_2(tiny_sweep, tmp_path, capsys):
  root, _, _ = tiny_sweep
  with pytest.raises(SystemExit) as exit_info:
    report.main(["--root", str(root), "--out", str(tmp_path), "--line", "nope"])
  assert exit_info.value.code == 2
  err = capsys.readouterr().err.strip().splitlines()  # after the note on the broken trial
  assert err[-1] == "error: --line 'nope' is not an axis of this sweep: variant, train_len"
  assert [line for line in err if line.startswith("error:")] == err[-1:]


# ---------------------------------------------------------------- intervals and --compare

def test_intervals_are_t_intervals_over_the_seeds(tiny_sweep, written):
  root, _, _ = tiny_sweep
  seed_dirs = sorted((root / "variant=additive,train_len=8").glob("seed_*"))
  assert len(seed_dirs) == 2  # one outcomes file per vmapped seed
  assert all((d / "test_outcomes.jsonl").exists() for d in seed_dirs)
  with open(written["csv"], encoding="utf-8") as f:
    rows = list(csv.DictReader(f))
  for metric in ("exact_match", "bleu", "alignment_error_rate", "attention_entropy", "loss"):
    mine = [r for r in rows if r["metric"] == metric and r["variant"] == "additive"]
    assert mine and all(r["interval"] == "t" for r in mine), metric
    for r in mine:  # the t interval of the 2 per-seed values, 1 degree of freedom
      values = [float(r["mean"]) - float(r["std"]) / 2 ** 0.5,
                float(r["mean"]) + float(r["std"]) / 2 ** 0.5]
      expected = intervals.values_interval(values, bounds=intervals.RANGES[metric])
      assert float(r["low"]) == pytest.approx(expected.low, abs=1e-9)
      assert float(r["high"]) == pytest.approx(expected.high, abs=1e-9)
      # Cut to the metric's range: 1 degree of freedom gives wide intervals.
      low, high = intervals.RANGES[metric]
      assert low <= float(r["low"]) <= float(r["mean"]) <= float(r["high"]) <= high
  # The training cost is one measurement per trial: no interval.
  speed = [r for r in rows if r["metric"] == "train_steps_per_second"]
  assert speed and all(r["low"] == r["interval"] == "" for r in speed)
  text = written["markdown"].read_text(encoding="utf-8")
  assert "**corpus BLEU by source length**" in text
  assert "95% t interval over seeds (seeds - 1 df): where the mean of a new training seed" in text
  assert "bootstrap" not in text  # every setting has 2 seeds
  cell = text[text.index("| additive | 8 |"):].splitlines()[0].split(" | ")[2]
  assert cell.count("[") == 1 and cell.endswith("]"), cell  # e.g. 0.000 [0.000, 0.000]


def test_intervals_over_seeds_and_sentences_widen_the_sentence_metrics(tiny_sweep, written,
                                                                       tmp_path, capsys):
  """--intervals seeds_and_sentences: BLEU, exact match and AER get
  intervals.seeds_and_sentences_interval of the seeds' per-sentence statistics (labelled, and
  noted under the tables); the other metrics keep the seed t interval; a bad value is one
  line and exit 2."""
  root, _, _ = tiny_sweep
  paths = report.write_report(root, tmp_path / "wide", population="seeds_and_sentences")
  with open(paths["csv"], encoding="utf-8") as f:
    wide = list(csv.DictReader(f))
  with open(written["csv"], encoding="utf-8") as f:
    narrow = {(r["variant"], r["metric"], r["bucket"]): r for r in csv.DictReader(f)}
  _, groups = results.group_runs(results.load_trials(root)[0])
  runs = next(r for k, r in groups.items() if "additive" in k)
  checked = 0
  for r in wide:
    if r["variant"] != "additive" or r["low"] == "":
      continue
    seed_only = narrow[(r["variant"], r["metric"], r["bucket"])]
    assert r["mean"] == seed_only["mean"]
    if r["metric"] in intervals.STATISTICS:
      assert r["interval"] == intervals.SEEDS_AND_SENTENCES_METHOD, r
      expected = intervals.seeds_and_sentences_interval(
          results.sentence_stats(runs, r["metric"], r["bucket"]), r["metric"])
      assert float(r["low"]) == pytest.approx(expected.low, abs=1e-9)
      assert float(r["high"]) == pytest.approx(expected.high, abs=1e-9)
      assert float(r["low"]) <= float(seed_only["low"]) <= float(seed_only["high"]) <= float(
          r["high"])
      checked += 1
    else:
      assert r["interval"] == "t" and r["low"] == seed_only["low"], r
  assert checked >= 3
  assert "interval over seeds and test sentences" in paths["markdown"].read_text(
      encoding="utf-8")
  with pytest.raises(SystemExit) as exit_info:
    report.main(["--root", str(root), "--out", str(tmp_path / "bad"), "--intervals", "nope"])
  assert exit_info.value.code == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert err[-1] == "error: --intervals: valid seeds, seeds_and_sentences, got 'nope'"


def test_compare_tests_a_against_b_with_holm_over_the_page(tiny_sweep, tmp_path, capsys):
  root, _, _ = tiny_sweep
  argv = ["--root", str(root), "--out", str(tmp_path), "--compare", "variant=additive",
          "--compare", "variant=none"]
  assert report.main(argv) == 0
  text = (tmp_path / "comparison.md").read_text(encoding="utf-8")
  assert text in capsys.readouterr().out
  assert "**A = variant=additive vs B = variant=none** (A and B are separate trainings: " \
      "Welch's t" in text
  lines = [line for line in text.splitlines() if line.startswith("| exact match | ")]
  assert lines[0].startswith("| exact match | all | ")
  assert "| Welch t over 2 seeds |" in lines[0]
  assert [line for line in text.splitlines() if line.startswith("| BLEU | all | ")]
  with open(tmp_path / "comparison.csv", encoding="utf-8") as f:
    tests = list(csv.DictReader(f))
  family = len(tests)
  assert family > 3 and {t["family_size"] for t in tests} == {str(family)}
  assert f"| p (Holm, {family}) |" in text and f"all {family} comparisons on this page" in text
  raw = [float(t["p"]) for t in tests]
  assert [float(t["p_holm"]) for t in tests] == pytest.approx(
      multipletests(raw, method="holm")[1])
  assert all(0 < p <= 1 for p in raw)
  # One sentence per metric over all test sentences, from the adjusted p.
  said = [line for line in text.splitlines() if line.startswith("- ")]
  overall = [t for t in tests if t["bucket_a"] == "all"]
  assert said[:len(overall)] == [f"- {t['finding']}" for t in overall]
  for t in tests:
    claims = " beats " in t["finding"]
    assert claims == (float(t["p_holm"]) < 0.05), t["finding"]
    assert claims or " are indistinguishable on " in t["finding"] and " at 2 seeds (" in \
        t["finding"]
  # Against itself: the same trained models, paired by seed; no difference at all.
  same = report.write_report(root, tmp_path / "same",
                             compare=["variant=additive", "variant=additive"])
  same_text = same["comparison"].read_text(encoding="utf-8")
  assert "(A and B are the same trained models" in same_text
  with open(same["comparison_csv"], encoding="utf-8") as f:
    for t in csv.DictReader(f):
      assert t["test"] == "paired t over 2 seeds" and float(t["difference"]) == 0.0
      assert float(t["p"]) == 1.0 and "indistinguishable" in t["finding"]
  with pytest.raises(report.ReportError, match="matches 0 settings"):
    report.write_report(root, tmp_path / "bad", compare=["variant=nope", "variant=none"])
  # Pairs of settings: one table each, in order, one family.
  two = report.write_report(root, tmp_path / "two", compare=[
      "variant=additive", "variant=none", "variant=none", "variant=additive"])
  headings = [line.split("**")[1] for line in two["comparison"].read_text(
      encoding="utf-8").splitlines() if line.startswith("**A = ")]
  assert headings == ["A = variant=additive vs B = variant=none",
                      "A = variant=none vs B = variant=additive"]
  with open(two["comparison_csv"], encoding="utf-8") as f:
    assert {t["family_size"] for t in csv.DictReader(f)} == {str(2 * family)}
  with pytest.raises(report.ReportError, match="in pairs"):
    report.write_report(root, tmp_path / "odd", compare=["variant=none"] * 3)


def test_compare_metrics_limits_the_tests_and_the_family(tiny_sweep, tmp_path, capsys):
  root, _, _ = tiny_sweep
  pair = ["variant=additive", "variant=none"]
  every = report.write_report(root, tmp_path / "every", compare=pair)
  with open(every["comparison_csv"], encoding="utf-8") as f:
    all_tests = list(csv.DictReader(f))
  bleu = report.write_report(root, tmp_path / "bleu", compare=pair, compare_metrics=["bleu"])
  with open(bleu["comparison_csv"], encoding="utf-8") as f:
    bleu_tests = list(csv.DictReader(f))
  assert bleu_tests and {t["metric"] for t in bleu_tests} == {"bleu"}
  assert len(bleu_tests) == len([t for t in all_tests if t["metric"] == "bleu"])
  assert {t["family_size"] for t in bleu_tests} == {str(len(bleu_tests))}
  # The raw p of a test does not depend on the family; its Holm p does.
  raw = {(t["bucket_a"]): t["p"] for t in all_tests if t["metric"] == "bleu"}
  assert {t["bucket_a"]: t["p"] for t in bleu_tests} == raw
  assert "| exact match |" not in bleu["comparison"].read_text(encoding="utf-8")
  # From the command line, and an unknown metric is one line, exit status 2.
  assert report.main(["--root", str(root), "--out", str(tmp_path / "cli"), "--compare", pair[0],
                      "--compare", pair[1], "--compare_metrics", "bleu"]) == 0
  capsys.readouterr()
  with pytest.raises(SystemExit) as e:
    report.main(["--root", str(root), "--out", str(tmp_path / "bad"), "--compare", pair[0],
                 "--compare", pair[1], "--compare_metrics", "bleu,nope"])
  assert e.value.code == 2
  err = capsys.readouterr().err.strip()
  assert len(err.splitlines()) == 1 and "unknown metric(s) nope" in err


def test_compare_one_model_at_two_test_lengths_pairs_by_seed(tiny_sweep, tmp_path):
  root, _, _ = tiny_sweep
  paths = report.write_report(root, tmp_path, compare=[
      "variant=additive,bucket=1-4", "variant=additive,bucket=>6"])
  with open(paths["comparison_csv"], encoding="utf-8") as f:
    tests = list(csv.DictReader(f))
  assert [(t["metric"], t["bucket_a"], t["bucket_b"]) for t in tests] == [
      (m, "1-4", ">6") for m in ("exact_match", "bleu", "alignment_error_rate")]
  assert {t["test"] for t in tests} == {"paired t over 2 seeds"}
  assert "| exact match | 1-4 vs >6 |" in paths["comparison"].read_text(encoding="utf-8")
  with pytest.raises(report.ReportError, match="both settings or in neither"):
    report.write_report(root, tmp_path / "one", compare=["variant=additive,bucket=1-4",
                                                        "variant=none"])


# ---------------------------------------------------------------- learning curves

def test_learning_curves_have_a_line_per_variant_pooling_seeds(written):
  with open(written["learning_curves"], encoding="utf-8") as f:
    rows = list(csv.DictReader(f))
  # The sweep's best metric (exact match) and the validation loss, at its one validation step.
  assert {(r["variant"], r["metric"], r["step"], r["num_seeds"]) for r in rows} == {
      (v, m, "4", "2") for v in ("none", "additive") for m in ("exact_match", "loss")}
  assert all(r["train_len"] == "8" and float(r["std"]) >= 0 for r in rows)
  text = written["markdown"].read_text(encoding="utf-8")
  assert "[learning_curves__train_len-8.png](learning_curves__train_len-8.png)" in text
  panels = [(f"validation {m}", {v: ([4], [0.5], [0.1]) for v in ("none", "additive")})
            for m in ("exact_match", "loss")]
  fig = plots.learning_curves_figure(panels)
  assert [[line.get_label() for line in ax.get_lines()] for ax in fig.axes] == [
      ["none", "additive"]] * 2


# ---------------------------------------------------------------- greedy vs beam, one run

@pytest.fixture(scope="module")
def beam_report(beam_run, tmp_path_factory):
  workdir, _ = beam_run
  out = tmp_path_factory.mktemp("beam_report")
  paths = report.write_report(workdir, out, compare=["decoding=beam2", "decoding=greedy"])
  with open(paths["csv"], encoding="utf-8") as f:
    return paths, list(csv.DictReader(f))


def test_beam_decodings_are_a_decoding_axis_of_the_same_runs(beam_run, beam_report):
  _, summary = beam_run
  paths, rows = beam_report
  assert {r["decoding"] for r in rows} == {"greedy", "beam2"}
  for decoding, test in (("greedy", summary["test"]), ("beam2", summary["test_beam"]["2"])):
    mine = {(r["metric"], r["bucket"]): r for r in rows if r["decoding"] == decoding}
    assert float(mine["exact_match", "all"]["mean"]) == pytest.approx(test["exact_match"])
    for bucket, cell in test["bleu_by_length"].items():
      assert float(mine["bleu", bucket]["mean"]) == pytest.approx(cell["mean"])
      assert mine["bleu", bucket]["num_examples"] == str(cell["count"])
      assert mine["bleu", bucket]["low"] != ""  # an interval: the beam's outcomes were read
  text = paths["markdown"].read_text(encoding="utf-8")
  assert re.search(r"\| run \| decoding \| 1-4 \(\d+\) \|", text) and "| run | beam2 |" in text
  assert "**decoding**" in text
  # One run: its decodings are the figures' lines.
  assert "exact_match_vs_length__run-run.png" in {p.name for p in paths["figures"]}
  comparison = paths["comparison"].read_text(encoding="utf-8")
  assert "A = decoding=beam2 vs B = decoding=greedy** (A and B are the same trained models" \
      in comparison
  assert [line for line in comparison.splitlines() if line.startswith("| BLEU | >6 | ")]
  # One seed: the permutation test over the test sentences, and the sentence bootstrap.
  assert "| permutation over test sentences, 1 seed a side (seed variation not measured) |" \
      in comparison
  assert {r["interval"] for r in rows if r["low"] != ""} == {"sentence bootstrap"}
  assert "with one seed, a 95% bootstrap interval over its test sentences" in text
  cells = [line for line in text.splitlines() if line.startswith("| run | ")]
  assert cells and not [line for line in cells if " ± 0" in line]  # one seed: never "± 0.000"


def test_buckets_beyond_the_training_lengths_are_labelled_extrapolation(beam_report):
  paths, rows = beam_report  # trained on sources of at most 4 words
  regimes = {r["bucket"]: r["regime"] for r in rows if r["metric"] == "exact_match"}
  assert regimes == {"all": "", "1-4": "in_range", "5-6": "extrapolation",
                     ">6": "extrapolation"}
  text = paths["markdown"].read_text(encoding="utf-8")
  assert re.search(r"\| 1-4 \(\d+\) \| 5-6 \(extrapolation, \d+\) \| >6 \(extrapolation, ", text)
  with open(paths["learning_curves"], encoding="utf-8") as f:
    steps = [r["step"] for r in csv.DictReader(f) if r["metric"] == "loss"]
  assert steps == ["2", "4"]


def test_the_extrapolation_label_goes_per_cell_when_the_train_length_is_an_axis():
  cells = [{"train_len": str(n), "metric": "exact_match", "bucket": b, "regime": regime,
            "mean": 0.5, "std": 0.0, "low": "", "high": "", "num_seeds": 1, "num_examples": 7}
           for n, b, regime in ((4, "5-8", "extrapolation"), (8, "5-8", "in_range"))]
  text = report_tables.markdown(["train_len"], cells)
  assert "| train_len | 5-8 (7) |" in text
  # One seed and no interval: the mean alone, never "± 0.000".
  assert "| 4 | 0.500 (extrapolation) |" in text and "| 8 | 0.500 |" in text


def test_cost_scalars_become_overall_metrics(written):
  assert results.cost_scalars({"train_steps_per_second": 12.5, "train_step_memory_bytes": 2**21,
                              "peak_memory_source": "x"}) == {
      "train_steps_per_second": 12.5, "train_step_memory_mb": 2.0}
  assert results.cost_scalars({"train_step_memory_bytes": None}) == {}
  assert results.cost_scalars(None) == {}
  with open(written["csv"], encoding="utf-8") as f:
    speed = [r for r in csv.DictReader(f) if r["metric"] == "train_steps_per_second"]
  # Every run records its training speed; one row per variant, over all its seeds.
  assert {r["variant"] for r in speed} == {"none", "additive"}
  assert all(float(r["mean"]) > 0 and r["bucket"] == "all" for r in speed)
  assert "train steps/s" in written["markdown"].read_text(encoding="utf-8")


def test_a_compare_spec_that_names_too_little_says_which_axes_to_add():
  axes = ("variant", "checkpoint", "decoding")
  groups = {("none", "best", "greedy"): [], ("none", "best", "beam5"): [],
            ("none", "step1000", "greedy"): [], ("additive", "best", "greedy"): []}
  assert report.select_setting(axes, groups, "variant=none,decoding=beam5") == (
      ("none", "best", "beam5"), None)
  with pytest.raises(report.ReportError) as e:
    report.select_setting(axes, groups, "variant=none,decoding=greedy")
  message = str(e.value)
  assert "matches 2 settings, not 1 (name checkpoint too)" in message
  assert "additive" not in message and "beam5" not in message  # only the ones it matched
  with pytest.raises(report.ReportError, match="matches 0 settings, not 1: .*additive"):
    report.select_setting(axes, groups, "variant=nope")


def _corpus_trial(splits):
  return {"config": {"data": {"task": "corpus", "splits": list(splits)}}}


def test_a_search_on_the_validation_split_says_the_test_set_was_not_read(written):
  search = [_corpus_trial(("train", "val", "val"))] * 2
  note = report_tables.split_note(search)
  assert note.startswith("**Evaluated on the validation split** (`val`)")
  assert "never read the test set" in note
  # Any trial that reads its test split, and tasks without splits, say nothing.
  assert report_tables.split_note(search + [_corpus_trial(("train", "val", "test"))]) == ""
  assert report_tables.split_note([_corpus_trial(("train", "val", "test"))]) == ""
  assert report_tables.split_note([{"config": {"data": {}}}]) == ""
  assert not written["markdown"].read_text(encoding="utf-8").startswith("**Evaluated")
