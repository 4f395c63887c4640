"""What every sweep file shares (``configs/sweeps/*.py``): its profiles and the ``seeds=N`` /
``steps=N`` arguments. Like ``attnlab.defaults`` it imports ``ml_collections`` and nothing
heavier, so a sweep file stays data.

A sweep file takes its argument with ``attnlab.defaults.parse_arg``::

    args = parse_arg(arg, profiles=PROFILES, profile="small", seeds=0, steps=0)
    config = apply_seeds_and_steps(config, args)
"""

from __future__ import annotations

import ml_collections

# ``tiny``: a smoke test (seconds); ``small``: a 2-core CPU; ``full``: a GPU or TPU.
PROFILES = ("tiny", "small", "full")
# Vmapped seeds per trial by profile: the seed is the unit of replication, and
# ``attnlab.intervals``' seed-level intervals need about ten to have power.
SEEDS = {"tiny": 2, "small": 10, "full": 10}


def apply_seeds_and_steps(config: ml_collections.ConfigDict, args: dict):
  """The sweep-config arguments every sweep shares: ``seeds=N`` (vmapped seeds per trial;
  0: the profile's ``SEEDS``) and ``steps=N`` (train N steps, evaluating and checkpointing
  once, at the end; 0: the config's own)."""
  config.num_seeds = args["seeds"] or SEEDS[args["profile"]]
  if args["steps"]:
    config.train.num_steps = args["steps"]
    config.train.log_every = config.train.eval_every = args["steps"]
    config.train.checkpoint_every = args["steps"]
  return config
