"""Multi30k (Elliott et al. 2016), German -> English: a bidirectional-GRU encoder and a
Bahdanau decoder with additive attention (RNNsearch), sized for a 2-core CPU.

    python -m attnlab.main --config configs/multi30k.py --workdir /tmp/multi30k
    python -m attnlab.main --config configs/multi30k.py:attention=false --workdir /tmp/m30k_none
    python -m attnlab.main --config configs/multi30k.py:tutorial=true --workdir /tmp/m30k_tut

The data stays outside this repository: the folder of the authors' task-1 raw files
`{train,val,test_2016_flickr}.{de,en,fr}.gz` (29,000 / 1,014 / 1,000 lines), by default
`../shared/data/multi30k` beside this checkout; else `--config.data.path=DIR` (the README's
Data section says how to get it). The official test set `test_2016_flickr` is the test split;
nothing is re-split. Text is lowercased and Moses-tokenized (sacremoses), words seen once are
<unk> (min_freq 2), and checkpoints are ranked by validation BLEU. The README's Multi30k section
(docs/multi30k.md) has the results, the wall time on the idle 2-core machine and the commands
(configs/sweeps/multi30k.py runs this config and its no-attention twin).

Arguments (`attnlab.defaults.parse_arg`, e.g. `configs/multi30k.py:quick,src=en,tgt=de`):
  quick            a seconds-long smoke run (tiny model, 6 steps, 30 evaluation examples);
  src=XX, tgt=YY   the direction, two of de / en / fr (default src=de, tgt=en);
  attention=false  the no-attention twin (RNNencdec: decoder 'none', the source reaches the
                   decoder only through the dense bridge from the encoder's final state);
  tutorial=true    an in-pipeline replica of the best-known tutorial's model
                   (bentrevett/pytorch-seq2seq, notebook 3: bi-GRU encoder and Bahdanau
                   decoder, embeddings 256, hidden 512, dropout 0.5, Adam 1e-3 constant,
                   gradient clipping 1, 10 epochs of batch 128 = 2,270 steps, no label
                   smoothing, the epoch of lowest validation loss kept), trained and scored by
                   attnlab, so a table can separate what the model contributes from what the
                   pipeline does. Its tokenizer stays attnlab's (Moses, lowercased, min_freq 2;
                   the tutorial: spaCy, lowercased, min_freq 2).

How the defaults were chosen is recorded in configs/sweeps/multi30k_search.py (a search on the
validation set only).
"""

import os

from attnlab.defaults import base_config, parse_arg, shrink_for_smoke_test

# ../shared/data/multi30k beside the checkout (this file is <checkout>/configs/multi30k.py).
DEFAULT_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, os.pardir,
                            "shared", "data", "multi30k")
SPLITS = ("train", "val", "test_2016_flickr")
TUTORIAL_EPOCHS, STEPS_PER_EPOCH = 10, 227
LANGUAGES = ("de", "en", "fr")


def get_config(arg: str | None = None):
  args = parse_arg(arg, profile="", profiles=("", "quick"), src="de", tgt="en", attention=True,
                   tutorial=False)
  if {args["src"], args["tgt"]} - set(LANGUAGES) or args["src"] == args["tgt"]:
    raise ValueError(f"src and tgt must be two of {', '.join(LANGUAGES)}, got "
                     f"{args['src']!r}, {args['tgt']!r}")
  config = base_config("corpus")
  config.data.path = os.path.normpath(DEFAULT_PATH)
  config.data.src_lang, config.data.tgt_lang = args["src"], args["tgt"]
  config.data.splits = SPLITS
  config.data.tokenizer = "moses"
  config.data.lowercase = True
  config.data.min_freq = 2
  # Keep every training pair (the longest has 44 German / 40 English tokens).
  config.data.max_src_len = config.data.max_tgt_len = None
  config.batching.batch_size = 128
  config.batching.eval_batch_size = 500
  # Eight source-length buckets, each padded to the 95th percentile of its target lengths (the
  # few longer targets go to a later bucket with room): batches average 15.7 x 19.1 padded
  # source x target tokens, against 18.4 x 27.8 with four buckets padded to their longest
  # target, and train 1.2x to 1.5x as many steps a second (docs/benchmark.md, "Padding").
  config.batching.num_buckets = 8
  config.batching.tgt_quantile = 0.95
  config.model.cell = "gru"
  config.model.bidirectional = True
  config.model.decoder = "bahdanau"
  config.model.attention = "additive"
  config.model.bridge = "dense"
  config.model.emb_dim = 256
  config.model.hidden_dim = 256
  # Dropout, learning rate and label smoothing were chosen on validation BLEU by
  # configs/sweeps/multi30k_search.py (docs/multi30k.md, "How the recipe was chosen").
  config.model.dropout_rate = 0.5
  # 3,200 steps of 128 pairs: 14 epochs of the 29,000 (the reference tutorial trains 10),
  # sized to finish within about 40 minutes on the idle 2-core machine (README, Multi30k).
  config.train.num_steps = 3200
  config.train.learning_rate = 4e-3
  config.train.warmup_steps = 200
  config.train.label_smoothing = 0.1
  # Validation (1,014 sentences decoded greedily, about 20 s) every 800 steps: evaluations do
  # not change training, and fewer of them keep the run short.
  config.train.log_every = 400
  config.train.eval_every = 800
  config.train.checkpoint_every = 800
  config.train.best_metric = "bleu"
  # Source-length buckets (Moses tokens: test sources average 12, 41 of the 1,000 exceed 20).
  config.eval.length_boundaries = (8, 12, 16, 20)
  # The final test evaluation decodes greedily (the tutorials' protocol) and with beam 5.
  config.eval.test_beam_sizes = (5,)
  if args["tutorial"]:
    # 29,000 pairs / 128 = 227 steps an epoch (the tutorial keeps the last partial batch).
    config.model.emb_dim, config.model.hidden_dim = 256, 512
    config.model.dropout_rate = 0.5
    config.train.learning_rate, config.train.warmup_steps = 1e-3, 0
    config.train.schedule = "constant"
    config.train.grad_clip = 1.0
    config.train.label_smoothing = 0.0
    config.train.num_steps = TUTORIAL_EPOCHS * STEPS_PER_EPOCH
    config.train.log_every = config.train.eval_every = STEPS_PER_EPOCH
    config.train.checkpoint_every = STEPS_PER_EPOCH
    config.train.best_metric, config.train.best_mode = "loss", "min"
  if not args["attention"]:
    config.model.decoder = "none"
    config.model.bridge = "dense"
  if args["profile"] == "quick":
    shrink_for_smoke_test(config)
    config.eval.max_examples = 30
    config.eval.test_beam_sizes = ()
  return config
