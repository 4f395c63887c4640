"""Toy translation: a synthetic language pair with word-level mapping, local
reordering (noun-adjective swaps, verb-final clauses, circumpositions) and a
known true alignment, so alignment error rate measures attention quality.

    python -m attnlab.main --config configs/toy_translation.py --workdir /tmp/toy
"""

from attnlab.defaults import base_config, parse_arg, shrink_for_smoke_test


def get_config(arg: str | None = None):
  config = base_config("toy_translation")
  config.data.vocab_size = 100
  config.data.min_len = 3
  config.data.max_len = 20
  config.data.num_train = 20000
  config.batching.eval_batch_size = 500
  config.model.emb_dim = 64
  config.model.hidden_dim = 128
  config.train.num_steps = 4000
  config.train.learning_rate = 3e-3
  if parse_arg(arg, profile="", profiles=("", "quick"))["profile"] == "quick":
    config.data.vocab_size = 20
    config.data.max_len = 8
    shrink_for_smoke_test(config)
  return config
