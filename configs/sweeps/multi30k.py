"""Multi30k German -> English (configs/multi30k.py): the attention model, its no-attention twin
on the same budget, and an in-pipeline replica of the best-known tutorial's model, each with
several seeds; test BLEU per source-length bucket with intervals over seeds (the long-sentence
question on real text).

    python -m experiments.sweep --sweep configs/sweeps/multi30k.py --root /tmp/sweeps/multi30k \
        --max_parallel 1 [--config.data.path=DIR]
    python -m experiments.report --root /tmp/sweeps/multi30k --out docs/multi30k

One trial at a time (``--max_parallel 1``): each uses both cores, and each trial's summary.json
holds its wall time. Axis ``model``: ``attention`` (bi-GRU encoder, Bahdanau decoder, additive
score), ``none`` (the same without attention: RNNencdec) and ``tutorial`` (configs/multi30k.py's
``tutorial=true``: bentrevett/pytorch-seq2seq notebook 3's sizes and recipe, trained and scored
by attnlab); axis ``seed``: ``seeds=N`` separate trainings per model (default 3; the report pools
them: intervals over seeds and test sentences). About 40 minutes a trial on the idle 2-core
machine (the tutorial replica's 512-wide decoder longer), so the default grid of 9 trials takes
about 7 hours: run it in the background, or on an accelerator.
Arguments: those of configs/multi30k.py (``quick``, ``src=XX,tgt=YY``) and ``seeds=N``.
"""

import os

from attnlab.defaults import load_config_file, parse_arg

CONFIGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)
multi30k = load_config_file(os.path.join(CONFIGS, "multi30k.py"))
DEFAULT_SEEDS = 3


def _split(arg):
  """(configs/multi30k.py's argument, the number of seeds) of this sweep's argument."""
  parts = [p for p in (arg or "").split(",") if p and not p.startswith("seeds=")]
  seeds = parse_arg(",".join(p for p in (arg or "").split(",") if p.startswith("seeds=")),
                    profile="", seeds=DEFAULT_SEEDS)["seeds"]
  if seeds < 1:
    raise ValueError(f"seeds must be >= 1, got {seeds}")
  return ",".join(parts) or None, seeds


def get_config(arg=None):
  return multi30k.get_config(_split(arg)[0])


def get_sweep(arg=None):
  """{axis: {label: overrides}}: model x seed. The tutorial replica's overrides are the
  difference between its config and the default one, so one config file serves every trial."""
  base_arg, seeds = _split(arg)
  base = multi30k.get_config(base_arg).to_dict()
  tutorial = multi30k.get_config(",".join(filter(None, [base_arg, "tutorial=true"]))).to_dict()
  changed = {f"{section}.{key}": value
             for section in ("model", "train")
             for key, value in tutorial[section].items() if base[section][key] != value}
  return {
      "model": {"attention": {}, "none": {"model.decoder": "none"}, "tutorial": changed},
      "seed": {str(s): {"seed": s} for s in range(seeds)},
  }


def get_report(arg=None):
  """experiments.report defaults: BLEU / exact match against source length, per model; the
  intervals about a new seed on a new test set (seeds and sentences), as the README quotes."""
  del arg
  return {"line": "model", "x": "length", "intervals": "seeds_and_sentences"}
