"""A trained run's own config, as a config file: ``--config=attnlab/run_config.py:WORKDIR``.

``get_config(workdir)`` reads ``WORKDIR/config.json`` (the resolved config a run wrote) back
into a ConfigDict. ``attnlab.main`` passes it as ``--config`` when ``--mode=eval`` or
``--mode=decode`` is given ``--config.*`` overrides without ``--config`` (for example
``--workdir W --mode=decode --config.eval.on_long_input=truncate``), so ml_collections applies
and type-checks the overrides as for any config file. Like every config file it imports
``ml_collections`` and nothing heavier.
"""

from __future__ import annotations

import os

import ml_collections

from attnlab import run_record


def from_json(config: dict) -> ml_collections.ConfigDict:
  """A config.json object as a ConfigDict (JSON has no tuples: the fields that are tuples in
  configs come back as lists and are turned back)."""
  evaluation = config.get("eval", {})
  evaluation["length_boundaries"] = tuple(evaluation.get("length_boundaries") or ())
  if "test_beam_sizes" in evaluation:  # absent from workdirs written before it existed
    evaluation["test_beam_sizes"] = tuple(evaluation["test_beam_sizes"])
  return ml_collections.ConfigDict(config)


def get_config(workdir: str) -> ml_collections.ConfigDict:
  """The config the run in ``workdir`` was trained with (its ``config.json``)."""
  return from_json(run_record.read_json(os.path.join(workdir, run_record.CONFIG)))
