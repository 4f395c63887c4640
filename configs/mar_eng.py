"""English -> Marathi on the Tatoeba corpus (manythings.org `mar-eng`, CC-BY 2.0 FR).

    python -m attnlab.main --config configs/mar_eng.py --workdir /tmp/mar

The corpus path defaults to `../shared/data/mar-eng/mar.txt` beside this
checkout; pass any tab-separated file with `--config.data.path=FILE`
(`--config.data.reverse=True` translates the second column into the first).
"""

import os

from attnlab.config import base_config, shrink_for_smoke_test

DEFAULT_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, os.pardir,
                            "shared", "data", "mar-eng", "mar.txt")


def get_config(arg: str | None = None):
  config = base_config("corpus")
  config.data.path = os.path.normpath(DEFAULT_PATH)
  config.data.min_freq = 2
  config.data.max_src_len = 20
  config.data.max_tgt_len = 20
  config.batching.batch_size = 64
  config.batching.eval_batch_size = 500
  config.model.emb_dim = 128
  config.model.hidden_dim = 256
  config.model.dropout_rate = 0.2
  config.train.num_steps = 10000
  config.train.learning_rate = 2e-3
  config.train.eval_every = 2000
  config.train.checkpoint_every = 2000
  config.train.best_metric = "bleu"
  if arg == "quick":
    config.data.max_src_len = config.data.max_tgt_len = 6
    shrink_for_smoke_test(config)
  elif arg:
    raise ValueError(f"unknown config argument {arg!r}; valid: quick")
  return config
