"""Date normalisation (the default task): `98-03-23` -> `23/Mar/1998`.

    python -m attnlab.main --config configs/date.py --workdir /tmp/date

Luong-style decoder with `general` attention over a bidirectional GRU. Pass
`--config=configs/date.py:quick` for a seconds-long smoke run.
"""

from attnlab.defaults import base_config, parse_arg


def get_config(arg: str | None = None):
  config = base_config("date")
  config.data.num_train = 10000
  config.data.num_valid = 1000
  config.data.num_test = 1000
  config.batching.batch_size = 64
  config.batching.eval_batch_size = 1000
  config.model.emb_dim = 16
  config.model.hidden_dim = 32
  config.train.num_steps = 1200
  config.train.learning_rate = 1e-2
  config.train.warmup_steps = 50
  config.train.log_every = 300
  config.train.eval_every = 600
  config.train.checkpoint_every = 600
  if parse_arg(arg, profile="", profiles=("", "quick"))["profile"] == "quick":
    config.data.num_train = 500
    config.data.num_valid = 50
    config.data.num_test = 50
    config.batching.eval_batch_size = 64
    config.train.num_steps = 20
    config.train.log_every = 10
    config.train.eval_every = 10
    config.train.checkpoint_every = 10
  return config
