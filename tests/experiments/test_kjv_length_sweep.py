"""configs/sweeps/kjv_length.py: Bahdanau et al.'s Fig. 2 on the KJV / Reina-Valera 1909 corpus,
its grid, and its tiny profile run for real through the launcher (when the corpus is there)."""

import json
import os
import pathlib

import pytest

from attnlab.config import validate
from experiments import grid, sweep

REPO = pathlib.Path(__file__).resolve().parents[2]
SWEEP = REPO / "configs" / "sweeps" / "kjv_length.py"
KJV = REPO.parent / "shared" / "data" / "kjv-rv1909"
module = grid.load_sweep_module(str(SWEEP))
PAPER_MODELS = ["RNNencdec-30", "RNNencdec-50", "RNNsearch-30", "RNNsearch-50"]


def trial_config(arg, overrides, tmp_path):
  config = module.get_config(arg)
  for key, value in overrides.items():
    *parents, leaf = key.split(".")
    node = config
    for part in parents:
      node = node[part]
    node[leaf] = value
  if not os.path.exists(config.data.path):
    config.data.path = str(tmp_path)  # the corpus stays outside the repository
  validate(config)  # every trial is runnable
  return config


@pytest.mark.parametrize("arg,models,seeds", [
    ("small", PAPER_MODELS, 2),
    ("small,luong=true", PAPER_MODELS + ["general-50", "scaled_dot-50"], 2),
    ("full", PAPER_MODELS + ["general-50", "scaled_dot-50"], 3),
    ("full,luong=false,seeds=4", PAPER_MODELS, 4),
    ("tiny", ["RNNencdec-30", "RNNsearch-30"], 1),
])
def test_the_grid_is_model_by_seed(tmp_path, arg, models, seeds):
  plan = grid.plan(f"{SWEEP}:{arg}", tmp_path)
  assert plan["axes"] == ["model", "seed"]
  assert [t["name"] for t in plan["trials"]] == [
      f"model={m},seed={s}" for m in models for s in range(seeds)]
  for trial in plan["trials"]:
    config = trial_config(arg, trial["overrides"], tmp_path)
    label = trial["labels"]["model"]
    decoder, words = label.rsplit("-", 1)
    # Both sides of a training pair at most N words, validation cut the same way.
    assert config.data.train_max_src_len == config.data.max_tgt_len == int(words)
    assert config.seed == int(trial["labels"]["seed"]) and config.num_seeds == 1
    expected = {"RNNencdec": ("none",), "RNNsearch": ("bahdanau", "additive"),
                "general": ("luong", "general"), "scaled_dot": ("luong", "scaled_dot")}[decoder]
    assert (config.model.decoder, config.model.attention)[:len(expected)] == expected
    # Words, not subword pieces; tested on every pair of every length, greedy and beam 5.
    assert config.data.tokenizer == "moses"
    assert tuple(config.eval.length_boundaries) == (10, 20, 30, 40, 50, 60)
    if arg != "tiny":
      assert config.eval.max_examples == 0 and tuple(config.eval.test_beam_sizes) == (5,)
      assert config.train.best_metric == "loss" and config.train.early_stopping_patience > 0
  assert module.get_report() == {"line": "model", "x": "length"}


def test_full_profile_has_bahdanaus_sizes():
  config = module.get_config("full")
  assert (config.model.emb_dim, config.model.hidden_dim) == (620, 1000)
  assert config.model.bidirectional and config.model.cell == "gru"
  assert config.data.max_vocab_size == 30000 and config.data.min_freq == 1
  assert config.batching.batch_size == 80
  small = module.get_config("small")
  assert small.model.hidden_dim < config.model.hidden_dim
  assert module.get_config("small,steps=50").train.early_stopping_patience == 0
  with pytest.raises(ValueError, match="unknown config argument .huge.; valid: tiny, small, full"):
    module.get_config("huge")
  with pytest.raises(ValueError, match="luong must be true or false"):
    module.get_sweep("small,luong=maybe")


@pytest.mark.slow
@pytest.mark.skipif(not (KJV / "train.en.gz").is_file(),
                    reason=f"the KJV / Reina-Valera 1909 corpus is not at {KJV} (it stays "
                           "outside the repository)")
def test_tiny_profile_runs_through_the_launcher(tmp_path):
  saved = os.environ.get("JAX_DISABLE_MOST_OPTIMIZATIONS")
  os.environ["JAX_DISABLE_MOST_OPTIMIZATIONS"] = "true"  # trials compile fast, as in conftest
  try:
    exit_code = sweep.main(["--sweep", f"{SWEEP}:tiny", "--root", str(tmp_path),
                            "--max_parallel", "2"])
  finally:
    if saved is None:
      del os.environ["JAX_DISABLE_MOST_OPTIMIZATIONS"]
    else:
      os.environ["JAX_DISABLE_MOST_OPTIMIZATIONS"] = saved
  assert exit_code == 0
  for model in ("RNNencdec-30", "RNNsearch-30"):
    workdir = tmp_path / f"model={model},seed=0"
    summary = json.loads((workdir / "summary.json").read_text())
    assert summary["test"]["num_examples"] == 30 and "bleu_by_length" in summary["test"]
    config = json.loads((workdir / "config.json").read_text())
    assert config["data"]["train_max_src_len"] == 30
