"""English -> Marathi on the Tatoeba corpus (manythings.org `mar-eng`, CC-BY 2.0 FR).

    python -m attnlab.main --config configs/mar_eng.py --workdir /tmp/mar

The corpus ships with this repository, gzip-compressed: `data/mar-eng/mar.txt.gz` (attribution
and checksum in `data/mar-eng/README.md`). Pass any tab-separated file (plain or .gz) with
`--config.data.path=FILE`; `--config.data.reverse=True --config.data.src_lang=mr
--config.data.tgt_lang=en` translates the second column into the first. Text is lowercased and
Moses-tokenized (sacremoses): `"Don't go!" -> don 't go !`.
"""

import os

from attnlab.defaults import base_config, parse_arg, shrink_for_smoke_test

# The repository's copy of the corpus, found relative to this file (so any working directory).
DEFAULT_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "data",
                            "mar-eng", "mar.txt.gz")


def get_config(arg: str | None = None):
  config = base_config("corpus")
  config.data.path = os.path.normpath(DEFAULT_PATH)
  config.data.src_lang = "en"
  config.data.tgt_lang = "mr"
  config.data.tokenizer = "moses"
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
  if parse_arg(arg, profile="", profiles=("", "quick"))["profile"] == "quick":
    config.data.max_src_len = config.data.max_tgt_len = 6
    shrink_for_smoke_test(config)
  return config
