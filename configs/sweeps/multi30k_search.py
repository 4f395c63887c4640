"""How configs/multi30k.py's training recipe is chosen: a search on the validation set only.

    python -m experiments.sweep --sweep configs/sweeps/multi30k_search.py \
        --root /tmp/sweeps/multi30k_search --max_parallel 1 [--config.data.path=DIR]
    python -m experiments.report --root /tmp/sweeps/multi30k_search --out docs/multi30k/search

The test set is never read here: every trial's splits are (train, val, val), so what the report
calls "test" is the validation set (1,014 sentences), and the search picks by validation BLEU.
The chosen recipe then goes into configs/multi30k.py, whose runs (configs/sweeps/multi30k.py)
are the only ones that touch test_2016_flickr.

The design is one factor at a time around the default (learning rate 2e-3, dropout 0.3, label
smoothing 0.1): the default, then each factor moved alone to each of its other values
(``LEARNING_RATES``, ``DROPOUTS``, ``LABEL_SMOOTHING``), one seed each, at the default budget
(3,200 steps). That is 5 trials, about 40 minutes each on the idle 2-core machine; the full
3 x 2 x 2 grid would be 12 (6 hours), and a second pass would be needed only if a moved factor
won (it then becomes the centre). Axis ``setting``: ``default``, ``learning_rate=X``,
``dropout=X``, ``label_smoothing=X``. Arguments: those of configs/multi30k.py.
"""

import os

from attnlab.defaults import load_config_file

CONFIGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)
multi30k = load_config_file(os.path.join(CONFIGS, "multi30k.py"))
LEARNING_RATES = (1e-3, 2e-3, 4e-3)
DROPOUTS = (0.3, 0.5)
LABEL_SMOOTHING = (0.0, 0.1)


def get_config(arg=None):
  config = multi30k.get_config(arg)
  config.data.splits = (config.data.splits[0], config.data.splits[1], config.data.splits[1])
  config.eval.test_beam_sizes = ()  # greedy only: the choice is made on greedy validation BLEU
  return config


def settings() -> dict[str, dict]:
  """{label: overrides}: the default, then each factor alone at each of its other values."""
  base = multi30k.get_config()
  factors = {"learning_rate": ("train.learning_rate", LEARNING_RATES),
             "dropout": ("model.dropout_rate", DROPOUTS),
             "label_smoothing": ("train.label_smoothing", LABEL_SMOOTHING)}
  out = {"default": {}}
  for name, (key, values) in factors.items():
    section, field = key.split(".")
    current = base[section][field]
    assert current in values, (key, current, values)  # the default is on the grid
    out.update({f"{name}={v}": {key: v} for v in values if v != current})
  return out


def get_sweep(arg=None):
  """{axis: {label: overrides}}: one axis, ``setting`` (module doc)."""
  del arg
  return {"setting": settings()}


def get_report(arg=None):
  """experiments.report defaults: validation BLEU against source length, a line per setting."""
  del arg
  return {"line": "setting", "x": "length"}
