"""Multi30k (Elliott et al. 2016), German -> English: a bidirectional-GRU encoder and a
Bahdanau decoder with additive attention (RNNsearch), sized for a 2-core CPU.

    python -m attnlab.main --config configs/multi30k.py --workdir /tmp/multi30k
    python -m attnlab.main --config configs/multi30k.py:none --workdir /tmp/multi30k_none

The data stays outside this repository: the folder of the authors' task-1 raw files
`{train,val,test_2016_flickr}.{de,en,fr}.gz` (29,000 / 1,014 / 1,000 lines), by default
`../shared/data/multi30k` beside this checkout; else `--config.data.path=DIR` (the README's
Data section says how to get it). The official test set `test_2016_flickr` is the test split;
nothing is re-split. Text is lowercased and Moses-tokenized (sacremoses), words seen once are
<unk> (min_freq 2), and checkpoints are ranked by validation BLEU.

Arguments, comma-separated (`configs/multi30k.py:en-de,none`):
  SRC-TGT  the direction, two of de / en / fr (default de-en);
  none     the no-attention twin (RNNencdec: decoder 'none', the source reaches the decoder
           only through the dense bridge from the encoder's final state);
  quick    a seconds-long smoke run (tiny model, 6 steps, 30 evaluation examples).
"""

import os
import re

from attnlab.config import base_config, shrink_for_smoke_test

# ../shared/data/multi30k beside the checkout (this file is <checkout>/configs/multi30k.py).
DEFAULT_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, os.pardir,
                            "shared", "data", "multi30k")
SPLITS = ("train", "val", "test_2016_flickr")
_DIRECTION = re.compile(r"([a-z]{2})-([a-z]{2})")


def get_config(arg: str | None = None):
  args = [a.strip() for a in (arg or "").split(",") if a.strip()]
  config = base_config("corpus")
  config.data.path = os.path.normpath(DEFAULT_PATH)
  config.data.src_lang, config.data.tgt_lang = "de", "en"
  config.data.splits = SPLITS
  config.data.tokenizer = "moses"
  config.data.lowercase = True
  config.data.min_freq = 2
  # Keep every training pair (the longest has 44 German / 40 English tokens).
  config.data.max_src_len = config.data.max_tgt_len = None
  config.batching.batch_size = 128
  config.batching.eval_batch_size = 500
  config.batching.num_buckets = 4
  config.model.cell = "gru"
  config.model.bidirectional = True
  config.model.decoder = "bahdanau"
  config.model.attention = "additive"
  config.model.bridge = "dense"
  config.model.emb_dim = 256
  config.model.hidden_dim = 256
  config.model.dropout_rate = 0.3
  config.train.num_steps = 4000  # about 18 epochs of 29,000 pairs
  config.train.learning_rate = 1e-3
  config.train.warmup_steps = 200
  config.train.log_every = 200
  config.train.eval_every = 500
  config.train.checkpoint_every = 500
  config.train.best_metric = "bleu"
  for a in args:
    direction = _DIRECTION.fullmatch(a)
    if direction:
      config.data.src_lang, config.data.tgt_lang = direction.groups()
    elif a == "none":
      config.model.decoder = "none"
      config.model.bridge = "dense"
    elif a == "quick":
      shrink_for_smoke_test(config)
      config.eval.max_examples = 30
    else:
      raise ValueError(f"unknown config argument {a!r}; valid: SRC-TGT (e.g. en-de), none, "
                       "quick, comma-separated")
  return config
