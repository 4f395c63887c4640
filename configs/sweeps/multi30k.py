"""Multi30k German -> English (configs/multi30k.py): the attention model and its no-attention
twin on the same budget, their test BLEU per source-length bucket with bootstrap intervals
(the long-sentence question on real text).

    python -m experiments.sweep --sweep configs/sweeps/multi30k.py --root /tmp/sweeps/multi30k \
        --max_parallel 1 [--config.data.path=DIR]
    python -m experiments.report --root /tmp/sweeps/multi30k --out docs/multi30k

One trial at a time (``--max_parallel 1``): each uses both cores, and each trial's summary.json
holds its wall time. Axis ``model``: ``attention`` (bi-GRU encoder, Bahdanau decoder, additive
score) and ``none`` (the same without attention: RNNencdec). One seed each (a trial is half an
hour on two CPU cores); the intervals are bootstraps over the 1,000 test sentences. Arguments:
those of configs/multi30k.py (``quick``, ``src=XX,tgt=YY``).
"""

import os

from attnlab.defaults import load_config_file

CONFIGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)
multi30k = load_config_file(os.path.join(CONFIGS, "multi30k.py"))


def get_config(arg=None):
  return multi30k.get_config(arg)


def get_sweep(arg=None):
  """{axis: {label: overrides}}: with and without attention."""
  del arg
  return {"model": {"attention": {}, "none": {"model.decoder": "none"}}}


def get_report(arg=None):
  """experiments.report defaults: BLEU / exact match against source length, per model."""
  del arg
  return {"line": "model", "x": "length"}
