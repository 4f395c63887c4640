"""attnlab.results.trials: a sweep's finished trials read back from its run record, older
records included."""

import json

import pytest

from attnlab import results, run_record


def _outcomes(n: int) -> list[dict]:
  return [{"index": i, "src_length": 3 + i, "tgt_length": 3, "length_bucket": "1-4" if i < 2
           else ">4", "exact_match": i % 2} for i in range(n)]


def _test(exact: float) -> dict:
  return {"exact_match": exact, "num_examples": 4,
          "exact_match_by_length": {"1-4": {"mean": exact, "mean_length": 3.5, "count": 2}}}


def _old_sweep(root):
  """A sweep root as an older launcher and trainer wrote it: sweep.json with a bare NaN,
  seeds entries without their folder's name, a single-model trial with beam decodings."""
  root.mkdir()
  (root / "sweep.json").write_text(json.dumps({
      "axes": ["variant"], "report": {"line": "variant"}, "wall_time_s": float("nan"),
      "trials": [{"name": f"variant={v}", "labels": {"variant": v}}
                 for v in ("dot", "none", "broken")]}))
  dot = root / "variant=dot"
  dot.mkdir()
  (dot / "config.json").write_text(json.dumps({"seed": 0, "data": {"train_max_src_len": 4}}))
  (dot / "summary.json").write_text(json.dumps({
      "num_seeds": 2, "cost": {"train_steps_per_second": 3.0},
      "seeds": [{"seed": s, "test": _test(0.5 + s / 10)} for s in (0, 1)]}))
  for s in (0, 1):
    (dot / f"seed_{s}").mkdir()
    run_record.write_jsonl(dot / f"seed_{s}" / "test_outcomes.jsonl", _outcomes(4))
  none = root / "variant=none"
  none.mkdir()
  (none / "config.json").write_text(json.dumps({"seed": 7, "eval": {"beam_size": 1}}))
  (none / "summary.json").write_text(json.dumps({"test": _test(0.25),
                                                 "test_beam": {"5": _test(0.3)}}))
  (root / "variant=broken").mkdir()  # failed: no summary.json
  return root


def test_an_older_sweep_root_still_loads(tmp_path, capsys):
  trials, defaults = results.load_trials(_old_sweep(tmp_path / "root"))
  assert defaults == {"line": "variant"}
  assert "skipping 1 unfinished or failed trial(s): variant=broken" in capsys.readouterr().err
  # Beam decodings of variant=none give every trial a decoding axis.
  assert [t["labels"] for t in trials] == [
      {"variant": "dot", "decoding": "greedy"}, {"variant": "none", "decoding": "greedy"},
      {"variant": "none", "decoding": "beam5"}]
  dot = trials[0]["runs"]
  assert [(r["label"], r["folder"].name, r["seed"]) for r in dot] == [
      ("seed 0", "seed_0", 0), ("seed 1", "seed_1", 1)]
  assert dot[0]["test"]["train_steps_per_second"] == 3.0 and dot[0]["train_max_src_len"] == 4
  assert dot[1]["outcomes"] == _outcomes(4)
  (single,) = trials[1]["runs"]
  assert (single["label"], single["seed"], single["outcomes"]) == ("run", 7, None)
  assert trials[2]["decoded_again"] and trials[2]["runs"][0]["test"]["exact_match"] == 0.3


def test_rows_pool_the_seeds_of_each_setting(tmp_path):
  trials, _ = results.load_trials(_old_sweep(tmp_path / "root"))
  axes, groups = results.group_runs(trials)
  assert axes == ["variant", "decoding"] and len(groups[("dot", "greedy")]) == 2
  rows = {(r["variant"], r["decoding"], r["metric"], r["bucket"]): r
          for r in results.rows(axes, groups)}
  dot = rows["dot", "greedy", "exact_match", "all"]
  assert dot["mean"] == pytest.approx(0.55) and dot["num_seeds"] == 2
  assert dot["interval"] == "t" and dot["low"] < 0.55 < dot["high"]
  assert rows["dot", "greedy", "exact_match", "1-4"]["regime"] == "in_range"
  cost = rows["dot", "greedy", "train_steps_per_second", "all"]
  assert cost["interval"] == "" and cost["std"] == 0.0  # one measurement per trial
  none = rows["none", "greedy", "exact_match", "all"]
  assert none["num_seeds"] == 1 and none["interval"] == ""  # no outcomes: no bootstrap


def test_a_single_runs_workdir_is_one_trial(tmp_path):
  workdir = _old_sweep(tmp_path / "root") / "variant=dot"
  trials, defaults = results.load_trials(workdir)
  assert [t["labels"] for t in trials] == [{"run": "variant=dot"}] and defaults == {}


@pytest.mark.parametrize("make,needle", [
    (lambda root: None, "no such folder"),
    (lambda root: root.mkdir(), "no finished trials"),
    (lambda root: (root.mkdir(), (root / "config.json").write_text("{}")), "not finished"),
])
def test_nothing_to_read_is_one_error(tmp_path, make, needle):
  root = tmp_path / "root"
  make(root)
  with pytest.raises(results.ResultsError, match=needle):
    results.load_trials(root)


def test_a_damaged_summary_is_named(tmp_path):
  root = _old_sweep(tmp_path / "root")
  (root / "variant=dot" / "summary.json").write_text("{")
  with pytest.raises(run_record.RecordError, match="variant=dot/summary.json is damaged"):
    results.load_trials(root)
