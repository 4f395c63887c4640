"""How configs/multi30k.py's training recipe is chosen: a search on the validation set only.

    python -m experiments.sweep --sweep configs/sweeps/multi30k_search.py \
        --root /tmp/sweeps/multi30k_search --max_parallel 1 [--config.data.path=DIR]
    python -m experiments.report --root /tmp/sweeps/multi30k_search --out docs/multi30k/search

The test set is never read here: every trial's splits are (train, val, val), so what the report
calls "test" is the validation set (1,014 sentences), and the search picks by validation BLEU.
The chosen recipe then goes into configs/multi30k.py, whose runs (configs/sweeps/multi30k.py)
are the only ones that touch test_2016_flickr. Axes: ``learning_rate`` x ``dropout`` x
``label_smoothing`` around the default (2e-3, 0.3, 0.1), one seed each, at the default budget
(3,200 steps; about half an hour a trial on the idle 2-core machine, 12 trials). Arguments:
those of configs/multi30k.py.
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


def get_sweep(arg=None):
  """{axis: {label: overrides}}: learning rate x dropout x label smoothing."""
  del arg
  return {
      "learning_rate": {str(v): {"train.learning_rate": v} for v in LEARNING_RATES},
      "dropout": {str(v): {"model.dropout_rate": v} for v in DROPOUTS},
      "label_smoothing": {str(v): {"train.label_smoothing": v} for v in LABEL_SMOOTHING},
  }


def get_report(arg=None):
  """experiments.report defaults: validation BLEU per learning rate, a line per dropout."""
  del arg
  return {"line": "dropout", "x": "learning_rate"}
