"""A trained run's own config, as a config file: ``--config=attnlab/run_config.py:WORKDIR``.

``get_config(workdir)`` reads ``WORKDIR/config.json`` (the resolved config a run wrote) back
into a ConfigDict. ``attnlab.main`` passes it as ``--config`` when ``--mode=eval`` or
``--mode=decode`` is given ``--config.*`` overrides without ``--config`` (for example
``--workdir W --mode=decode --config.eval.on_long_input=truncate``), so ml_collections applies
and type-checks the overrides as for any config file. Like every config file it imports
``ml_collections`` and the light defaults only, never JAX.

Every config.json is read back through ``upgrade_config``, the one step that brings a record
an older attnlab wrote to today's keys: a key the record lacks (an option added after the run)
gets the value that reproduces what the run did, a key today's code encodes otherwise gets
today's encoding, and everything else (a plug-in's extra option) is kept. So the readers
(``from_json``, ``attnlab.training.workdir.check_same_model``, ``attnlab.results``) and all
the code after them see one shape of config and read ``config.train.grad_accum_steps``, never
``config.train.get("grad_accum_steps", 1)``. The file itself is never rewritten: a run's record
stays what it wrote.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Mapping
from typing import Any

import ml_collections

from attnlab import run_record
from attnlab.data.base import TASKS, shared_data_config
from attnlab.defaults import base_config

# The value a key takes in a record written before the key existed, where that is not today's
# default (every other option's default was chosen to be what runs did before it).
BEFORE_THE_KEY = {
    # Corpus runs before data.tokenizer split words at whitespace and punctuation; the
    # default became moses with the option (d555e4d).
    "data.tokenizer": "punctuation",
    # ... and, before data.length_limit (18a050d), kept held-out pairs of every length.
    "data.length_limit": None,
}
# A key an older record may hold as null, and what today's code writes for the same meaning:
# attention_dim's "no width of its own" and max_src_len's "the data's longest source" are 0
# (a67455d); no length boundaries are ().
NULL_MEANS = {"model.attention_dim": 0, "model.max_src_len": 0, "eval.length_boundaries": []}


def today_defaults(task: Any) -> dict:
  """Today's config of ``task`` (``attnlab.defaults.base_config``) as a dict; a task that is
  not registered here (a plug-in's, registered by a module ``config.imports`` names, which
  this JAX-free step does not import) gets the data fields every task shares."""
  if isinstance(task, str) and task in TASKS:
    return base_config(task).to_dict()
  values = base_config().to_dict()
  values["data"] = shared_data_config(task).to_dict()
  return values


def upgrade_config(record: Mapping) -> dict:
  """A config.json object (``record``) with today's keys (module doc), as JSON holds it
  (lists, not tuples): every key ``base_config(task)`` has and ``record`` lacks, in its
  section, with its ``BEFORE_THE_KEY`` value or else its default; ``NULL_MEANS`` nulls as
  today's values; every other key and value as ``record`` has it. ``record`` is not changed,
  and an upgraded config upgrades to itself."""
  if not isinstance(record, Mapping):
    raise run_record.RecordError(f"a config.json holds one object, got {type(record).__name__}")
  today = json.loads(run_record.dumps(today_defaults(task_of(record))))
  return _merged(record, today, "")


def task_of(record: Mapping) -> Any:
  """The task a config (or config.json object) names; ``date`` when it names none."""
  data = record.get("data")
  return data.get("task", "date") if isinstance(data, Mapping) else "date"


def _merged(record: Mapping, today: Mapping, prefix: str) -> dict:
  """``record``'s section ``prefix`` (``"model."``) with ``today``'s missing keys."""
  merged = {}
  for key, default in today.items():
    dotted = prefix + key
    if key not in record:
      merged[key] = copy.deepcopy(BEFORE_THE_KEY[dotted] if dotted in BEFORE_THE_KEY
                                  else default)
    elif isinstance(default, dict) and isinstance(record[key], Mapping):
      merged[key] = _merged(record[key], default, dotted + ".")
    elif record[key] is None and dotted in NULL_MEANS:
      merged[key] = copy.deepcopy(NULL_MEANS[dotted])
    else:
      merged[key] = copy.deepcopy(record[key])
  for key, value in record.items():  # a plug-in's option, or a section only the record has
    if key not in today:
      merged[key] = copy.deepcopy(value)
  return merged


def _with_tuples(values: dict, typed: Mapping) -> dict:
  """``values`` with each list that ``typed`` (today's config) holds as a tuple made one
  (JSON has no tuples; ml_collections type-checks overrides against the field's type)."""
  for key, default in typed.items():
    value = values.get(key)
    if isinstance(default, Mapping) and isinstance(value, dict):
      _with_tuples(value, default)
    elif isinstance(default, tuple) and isinstance(value, list):
      values[key] = tuple(value)
  return values


def from_json(config: Mapping) -> ml_collections.ConfigDict:
  """A config.json object as a ConfigDict with today's keys (``upgrade_config``); the fields
  that are tuples in configs, which JSON writes as lists, come back as tuples."""
  values = upgrade_config(config)
  return ml_collections.ConfigDict(_with_tuples(values, today_defaults(task_of(values))))


def get_config(workdir: str) -> ml_collections.ConfigDict:
  """The config the run in ``workdir`` was trained with (its ``config.json``)."""
  return from_json(run_record.read_json(os.path.join(workdir, run_record.CONFIG)))
