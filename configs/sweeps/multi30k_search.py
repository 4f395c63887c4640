"""How configs/multi30k.py's training recipe is chosen: a search on the validation set only.

    python -m experiments.sweep --sweep configs/sweeps/multi30k_search.py \
        --root /tmp/sweeps/multi30k_search --max_parallel 1 [--config.data.path=DIR]
    python -m experiments.report --root /tmp/sweeps/multi30k_search --out docs/multi30k/search

The test set is never read here: every trial's splits are (train, val, val), so what the report
calls "test" is the validation set (1,014 sentences), and the search picks by validation BLEU.
The chosen recipe then goes into configs/multi30k.py, whose runs (configs/sweeps/multi30k.py)
are the only ones that touch test_2016_flickr.

The design is one factor at a time around a centre, in passes (``CENTRES``): the first pass's
centre is the recipe as first written (learning rate 2e-3, dropout 0.3, label smoothing 0.1);
each pass runs its centre, then each factor moved alone to each of its other values
(``LEARNING_RATES``, ``DROPOUTS``, ``LABEL_SMOOTHING``), one seed each, at the default budget
(3,200 steps). That is 5 trials a pass, fewer new ones after the first (5, 3 and 1 so far), about 30 minutes each on the idle 2-core machine; the
full 3 x 2 x 2 grid would be 12 (6 hours). If a moved factor wins a pass, its setting becomes
the next pass's centre (appended to ``CENTRES``); the search ends when a pass's centre wins.
Every trial sets all three factors explicitly, so earlier passes stay what they were whatever
configs/multi30k.py says now. Axis ``setting``, labelled by what differs from the first centre:
``default``, ``learning_rate=X``, ``dropout=X``, ``label_smoothing=X``, and for later passes
the moved factors joined by ``+`` (``learning_rate=0.001+dropout=0.5``); a setting reached by
two passes runs once. Arguments: those of configs/multi30k.py.
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


FACTORS = {"learning_rate": ("train.learning_rate", LEARNING_RATES),
           "dropout": ("model.dropout_rate", DROPOUTS),
           "label_smoothing": ("train.label_smoothing", LABEL_SMOOTHING)}
# Each pass's centre, {factor: value}; the first is the recipe as first written (module doc).
# Pass 1 (results/multi30k_search): dropout=0.5 won, 39.40 validation BLEU against 39.32.
# Pass 2: learning_rate=0.004+dropout=0.5 won, 40.18 against the centre's 39.40.
CENTRES = ({"learning_rate": 2e-3, "dropout": 0.3, "label_smoothing": 0.1},
           {"learning_rate": 2e-3, "dropout": 0.5, "label_smoothing": 0.1},
           {"learning_rate": 4e-3, "dropout": 0.5, "label_smoothing": 0.1})


def label(point: dict) -> str:
  """A setting's label: its factors that differ from the first centre, ``+``-joined."""
  moved = [f"{name}={point[name]}" for name in FACTORS if point[name] != CENTRES[0][name]]
  return "+".join(moved) or "default"


def settings() -> dict[str, dict]:
  """{label: overrides}: for each pass, its centre, then each factor alone at each of its
  other values; every factor set explicitly."""
  out = {}
  for centre in CENTRES:
    assert all(centre[name] in FACTORS[name][1] for name in FACTORS), centre  # on the grid
    points = [centre] + [{**centre, name: v} for name, (_, values) in FACTORS.items()
                         for v in values if v != centre[name]]
    for point in points:
      out.setdefault(label(point), {FACTORS[name][0]: point[name] for name in FACTORS})
  return out


def get_sweep(arg=None):
  """{axis: {label: overrides}}: one axis, ``setting`` (module doc)."""
  del arg
  return {"setting": settings()}


def get_report(arg=None):
  """experiments.report defaults: validation BLEU against source length, a line per setting."""
  del arg
  return {"line": "setting", "x": "length"}
