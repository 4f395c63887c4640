"""Reverse a random symbol sequence: `a b c` -> `c b a` (alignment: the anti-diagonal).

    python -m attnlab.main --config configs/reverse.py --workdir /tmp/reverse

Set `--config.data.task=copy` for the copy task (alignment: the diagonal).
"""

from attnlab.defaults import base_config, parse_arg, shrink_for_smoke_test


def get_config(arg: str | None = None):
  config = base_config("reverse")
  config.data.vocab_size = 10
  config.data.min_len = 1
  config.data.max_len = 12
  config.data.num_train = 20000
  config.batching.eval_batch_size = 500
  config.train.num_steps = 3000
  config.train.learning_rate = 5e-3
  config.train.eval_every = 1000
  config.train.log_every = 500
  if parse_arg(arg, profile="", profiles=("", "quick"))["profile"] == "quick":
    config.data.max_len = 6
    shrink_for_smoke_test(config)
  return config
