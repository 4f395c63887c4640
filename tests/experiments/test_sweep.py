"""experiments.sweep and experiments.grid: grid expansion, trial names, the local launcher (skip,
failures), Ray."""

import json
import os
import pathlib
import sys

import jax
import pytest

from attnlab.attention import score_names
from attnlab.config import validate
from attnlab import defaults
from experiments import grid, ray_launch, sweep

REPO = pathlib.Path(__file__).resolve().parents[2]
SWEEPS = REPO / "configs" / "sweeps"


def test_expand_is_the_product_of_the_axes_in_order():
  trials = grid.expand({
      "variant": {"none": {"model.decoder": "none"}, "dot": {"model.attention": "dot"}},
      "train_len": {"10": {"data.train_max_src_len": 10}, "20": {"data.train_max_src_len": 20},
                    "all": {}},
  })
  assert [t["name"] for t in trials] == [
      "variant=none,train_len=10", "variant=none,train_len=20", "variant=none,train_len=all",
      "variant=dot,train_len=10", "variant=dot,train_len=20", "variant=dot,train_len=all"]
  assert trials[4]["overrides"] == {"model.attention": "dot", "data.train_max_src_len": 20}
  assert trials[2]["overrides"] == {"model.decoder": "none"}
  assert trials[4]["labels"] == {"variant": "dot", "train_len": "20"}


@pytest.mark.parametrize("axes,needle", [
    ({}, "at least one axis"),
    ({"a": {}}, "no values"),
    ({"a": {"x": {"seed": 1}}, "b": {"y": {"seed": 2}}}, "set seed twice"),
    ({"a": {"x/y": {}}}, "unfit for a folder name"),
])
def test_expand_rejects_bad_grids(axes, needle):
  with pytest.raises(ValueError, match=needle):
    grid.expand(axes)


def test_parse_arg():
  assert defaults.parse_arg("full,task=mar_eng,seeds=2", profile="small", task="toy", seeds=0) == {
      "profile": "full", "task": "mar_eng", "seeds": 2}
  assert defaults.parse_arg(None, profile="small") == {"profile": "small"}
  with pytest.raises(ValueError, match="valid: profile, seeds"):
    defaults.parse_arg("small,sedes=3", profile="small", seeds=0)


def _apply(config, overrides):
  for key, value in overrides.items():
    *parents, leaf = key.split(".")
    node = config
    for part in parents:
      node = node[part]
    node[leaf] = value
  return config


@pytest.mark.parametrize("spec,count", [
    ("long_sentence.py:small", 3 * 2),  # none, none_matched, bahdanau x 30, 50 words
    ("long_sentence.py:small,luong=true", 5 * 2),  # and general, scaled_dot
    ("long_sentence.py:full,luong=false", 3 * 2),
    ("long_sentence.py:full", (3 + len(score_names()) - 2) * 2),
    ("multi30k.py", 3 * 3),  # attention, none, the tutorial replica x 3 seeds
    ("multi30k.py:seeds=2", 3 * 2),
    # three passes: each centre, each factor moved alone; a setting two passes reach runs once
    ("multi30k_search.py", 5 + 3 + 1),
    ("long_sentence.py:tiny", 2),
    ("score_scaling.py:small", 4 * 4),
    ("score_scaling.py:full", 4 * 4),
    ("alignment.py:small", len(score_names())),
    ("mechanisms.py:small", 6),  # and hard attention trained with Gumbel-softmax
    ("mechanisms.py:full", 6),
    ("mechanisms.py:tiny", 2),
])
def test_sweep_files_expand_to_valid_configs(tmp_path, spec, count):
  plan = grid.plan(str(SWEEPS / spec), tmp_path)
  assert len(plan["trials"]) == count
  path, arg = grid.split_spec(str(SWEEPS / spec))
  module = grid.load_sweep_module(path)
  for trial in plan["trials"]:
    assert trial["workdir"] == str(tmp_path.resolve() / trial["name"])
    assert trial["command"][1:5] == ["-m", "attnlab.main", "--config",
                                     f"{path}:{arg}" if arg else path]
    config = _apply(module.get_config(arg), trial["overrides"])
    if config.data.task == "corpus" and not os.path.exists(config.data.path):
      config.data.path = str(tmp_path)  # Multi30k outside the repository, absent here
    validate(config)  # every trial is runnable
  if spec.startswith("long_sentence") and "tiny" not in spec:
    names = [t["name"] for t in plan["trials"]]
    assert names[0].startswith("variant=none,train_len=")
    assert plan["trials"][0]["overrides"]["model.decoder"] == "none"
    scores = ({"general", "scaled_dot"} if "small" in spec
              else set(score_names()) - {"concat", "additive_normalized"})
    if spec.endswith(("small", "luong=false")):
      scores = set()
    assert {t["labels"]["variant"] for t in plan["trials"]} == {
        "none", "none_matched", "bahdanau", *scores}
    assert {t["labels"]["train_len"] for t in plan["trials"]} == {"30", "50"}  # RNNsearch-30/50
    for trial in plan["trials"]:  # training in one padded shape: one call per step
      config = _apply(module.get_config(arg), trial["overrides"])
      assert config.batching.bucket_boundaries == (config.data.train_max_src_len,
                                                   config.data.max_len)
    config = module.get_config(arg)
    # Trained short, tested long; every trial stops on its own validation curve.
    assert config.data.train_max_src_len < config.data.max_len
    assert max(config.eval.length_boundaries) >= 50
    assert config.train.early_stopping_patience > 0 and config.eval.test_beam_sizes == (5,)
    assert config.train.early_stopping_min_relative_delta > 0 and config.eval.test_at_steps
    assert config.num_seeds >= 10
  if spec.startswith("score_scaling"):  # the attention width varies, the recurrent one not
    config = module.get_config(arg)
    widths = sorted({t["overrides"]["model.attention_dim"] for t in plan["trials"]})
    assert widths[-1] == (1024 if spec.endswith("small") else 2048)  # Britz et al.'s Mul-1024
    assert all("model.hidden_dim" not in t["overrides"] for t in plan["trials"])
    assert config.model.hidden_dim < widths[-1] // 4
    assert config.train.eval_every == config.train.num_steps // 5  # learning curves


@pytest.mark.parametrize("profile", ["small", "full"])
def test_the_wider_no_attention_baseline_matches_rnnsearchs_parameters(profile):
  from attnlab.training.preparation import init_state, prepare
  module = grid.load_sweep_module(str(SWEEPS / "long_sentence.py"))
  variants = module.get_sweep(profile)["variant"]

  def parameters(variant):
    config = _apply(module.get_config(profile), variants[variant])
    config.data.num_train, config.data.num_valid, config.data.num_test = 500, 50, 50
    state = init_state(config, prepare(config))
    return sum(leaf.size for leaf in jax.tree.leaves(state.params))

  matched, rnnsearch = parameters("none_matched"), parameters("bahdanau")
  assert abs(matched / rnnsearch - 1) <= 0.05
  assert parameters("none") < 0.7 * rnnsearch  # the same-width baseline is much smaller


def test_trial_command_formats_overrides():
  command = grid.trial_command("c.py:small", "/r/x", {"model.attention": "dot",
                                                      "eval.length_boundaries": (5, 10),
                                                      "model.bidirectional": False})
  assert command[-3:] == ["--config.model.attention=dot", "--config.eval.length_boundaries=5,10",
                          "--config.model.bidirectional=False"]


# ---------------------------------------------------------------- running real trials

def test_failed_trial_is_recorded_and_the_others_finish(tiny_sweep):
  root, exit_code, _ = tiny_sweep
  assert exit_code == 1  # one trial failed
  status = json.loads((root / "variant=broken,train_len=8" / "status.json").read_text())
  assert status["status"] == "failed" and status["returncode"] == 2
  assert "config.model.attention: unknown value 'no_such_score'" in status["stderr_tail"]
  for variant in ("none", "additive"):
    workdir = root / f"variant={variant},train_len=8"
    assert json.loads((workdir / "status.json").read_text())["status"] == "ok"
    summary = json.loads((workdir / "summary.json").read_text())
    assert summary["num_seeds"] == 2 and len(summary["seeds"]) == 2
    assert json.loads((workdir / "config.json").read_text())["data"]["train_max_src_len"] == 8
  recorded = json.loads((root / "sweep.json").read_text())
  assert {t["name"]: t["status"] for t in recorded["trials"]} == {
      "variant=none,train_len=8": "ok", "variant=additive,train_len=8": "ok",
      "variant=broken,train_len=8": "failed"}


def test_rerun_skips_finished_trials(tiny_sweep, capsys):
  root, _, sweep_file = tiny_sweep
  done = root / "variant=none,train_len=8" / "status.json"
  before = done.stat().st_mtime_ns
  exit_code = sweep.main(["--sweep", str(sweep_file), "--root", str(root)])
  assert exit_code == 1  # the broken trial ran again and failed again
  assert done.stat().st_mtime_ns == before  # the finished ones did not run
  out = capsys.readouterr().out
  assert "3 trials, 2 already complete, running 1" in out
  recorded = json.loads((root / "sweep.json").read_text())
  assert recorded["trials"][0]["status"] == "skipped (complete)"


def test_ray_launcher_runs_and_records_trials(tmp_path):
  ray = pytest.importorskip("ray")  # optional extra [ray]; CI installs only [test]
  trials = [
      {"name": "ok", "workdir": str(tmp_path / "ok"),
       "command": [sys.executable, "-c", "print('trained')"]},
      {"name": "crash", "workdir": str(tmp_path / "crash"),
       "command": [sys.executable, "-c", "import sys; sys.exit('boom')"]},
  ]
  ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
  try:
    statuses = ray_launch.launch_ray(trials, max_parallel=2, address=None)
  finally:
    ray.shutdown()
  assert [s["status"] for s in statuses] == ["ok", "failed"]
  assert statuses[1]["returncode"] == 1 and "boom" in statuses[1]["stderr_tail"]
  assert (tmp_path / "ok" / "stdout.txt").read_text() == "trained\n"
  assert json.loads((tmp_path / "crash" / "status.json").read_text())["status"] == "failed"


def test_only_selects_trials_by_pattern_in_pattern_order():
  trials = grid.expand({"variant": {v: {} for v in ("none", "dot", "additive")},
                        "dim": {d: {} for d in ("16", "256")}})
  chosen = grid.select(trials, ["*,dim=256", "variant=dot,*"])
  assert [t["name"] for t in chosen] == [
      "variant=none,dim=256", "variant=dot,dim=256", "variant=additive,dim=256",
      "variant=dot,dim=16"]
  assert grid.select(trials, None) == trials
