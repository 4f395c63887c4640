"""attnlab.sweeps: what every sweep file shares."""

import ml_collections

from attnlab import sweeps
from attnlab.defaults import parse_arg


def _config():
  return ml_collections.ConfigDict({"num_seeds": 1, "train": {
      "num_steps": 100, "log_every": 10, "eval_every": 50, "checkpoint_every": 50}})


def test_seeds_default_by_profile_and_steps_override():
  args = parse_arg("tiny", profiles=sweeps.PROFILES, profile="small", seeds=0, steps=0)
  config = sweeps.apply_seeds_and_steps(_config(), args)
  assert config.num_seeds == sweeps.SEEDS["tiny"] and config.train.num_steps == 100
  args = parse_arg("full,seeds=3,steps=7", profiles=sweeps.PROFILES, profile="small", seeds=0,
                   steps=0)
  config = sweeps.apply_seeds_and_steps(_config(), args)
  assert config.num_seeds == 3
  assert (config.train.num_steps, config.train.log_every, config.train.eval_every,
          config.train.checkpoint_every) == (7, 7, 7, 7)
