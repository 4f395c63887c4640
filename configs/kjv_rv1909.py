"""The Bible, King James Version (English) -> Reina-Valera 1909 (Spanish), verse-aligned: a
bidirectional-GRU encoder and a Bahdanau decoder with additive attention (RNNsearch), sized for
a 2-core CPU. Real text with long sentences (Bahdanau et al. 2015's Fig. 2 on real text:
configs/sweeps/kjv_length.py).

    python -m attnlab.main --config configs/kjv_rv1909.py --workdir /tmp/kjv
    python -m attnlab.main --config configs/kjv_rv1909.py:src=es,tgt=en --workdir /tmp/kjv_es_en

The data stays outside this repository: the folder of line-aligned gzip files
`{train,val,test}.{en,es}.gz` (26,436 / 1,487 / 3,011 verse pairs, split by chapter), by default
`../shared/data/kjv-rv1909` beside this checkout; else `--config.data.path=DIR`. Without it a
run stops with one line, `error: config.data.path: no such file or folder: ...` (exit 2). Its
README says how it was made; both texts are public domain (the KJV outside the United Kingdom).

Arguments (`attnlab.defaults.parse_arg`, e.g. `configs/kjv_rv1909.py:quick,src=es,tgt=en`):
  quick            a seconds-long smoke run (tiny model, 6 steps, 30 evaluation examples);
  src=XX, tgt=YY   the direction, en / es (default src=en, tgt=es: the side with more long
                   sources is the source);
  attention=false  the no-attention twin (RNNencdec: decoder 'none').

Tokenization and vocabulary: Moses words (sacremoses, lowercased; punctuation marks are tokens
of their own), the 8,000 most frequent of the words seen at least twice in train, per side.
Measured on the validation split (1,487 verses) against SentencePiece (unigram, learned from
train, `data.tokenizer=sentencepiece`):

  validation, per side (English / Spanish)     tokens a verse   vocabulary       <unk> tokens
  whitespace words                              25.7 / 22.8
  Moses words, min_freq 1 (every train word)    29.9 / 26.8      11,872 / 26,343  0.8% / 2.1%
  Moses words, min_freq 2                       29.9 / 26.8       8,104 / 14,017  1.2% / 3.3%
  Moses words, min_freq 2, at most 8,000        29.9 / 26.8       8,000 / 8,000   1.2% / 5.0%
  SentencePiece, 8,000 pieces                   31.3 / 30.0       8,000 / 8,000   0 / 0
  SentencePiece, 16,000 pieces                  31.1 / 28.9       9,394 / 15,989  0 / 0

(<unk> in verses: 24% / 52% of validation verses hold one with min_freq 2, 25% / 67% with the
cap.) Words, because (1) the length study counts a source's length in words: attnlab takes a
source's length as its number of tokens (the test buckets, `data.train_max_src_len`), so only
a word-level source keeps one token a word (or punctuation mark) whatever the vocabulary.
SentencePiece's pieces are about as many on average (31.3 against 29.9), but a verse's count
would depend on how rare its words are (a name is several pieces) and on the learned model.
(2) attnlab's BLEU is over the target's tokens: over pieces it is not the word BLEU of the
paper nor of the other configs. (3) The price is small on the source (1.2% <unk>), larger on
the target (5.0%), and pieces make sequences 5% (English) and 12% (Spanish) longer. The 8,000
cap: the output softmax is most of a training step on the CPU, and 8,000 words instead of
14,017 make it 1.75 times cheaper. No short training run compares them: on the shared 2-core
machine a few hundred steps (3-6 s a step under load) leave both near BLEU 0, and piece BLEU
is not word BLEU.

Lengths are Moses words (punctuation included, as Bahdanau et al. counted tokenized words):
English verses average 29.9 of them (25.7 whitespace words). Test sources over 30 words: 1,281
(906 whitespace words), over 50: 217 (81), over 60: 56 (12); per test bucket 1-10, ..., 51-60,
>60: 61, 696, 973, 713, 351, 161, 56 sources.

Cost, measured on the 2-core machine with no other work: this config trains at 0.86 steps/s
(summary.json's cost; 0.6 steps/s of wall time with a log line every 40 steps), so 2,000
steps, four validations and the test decoded greedily (40 s) and with beam 5 (150 s) should
take 50 minutes to an hour (estimated from a 200-step run, not run to the end); the same model
on sources of at most 50 words trains at 1.3 steps/s (configs/sweeps/kjv_length.py). A wider
model (hidden 256) with every Spanish word seen twice (14,017) costs about 2.4 times the CPU
time a step (6.6 CPU-seconds, measured under load, against 2.75).
"""

import os

from attnlab.defaults import base_config, parse_arg, shrink_for_smoke_test

# ../shared/data/kjv-rv1909 beside the checkout (this file is <checkout>/configs/kjv_rv1909.py).
DEFAULT_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, os.pardir,
                            "shared", "data", "kjv-rv1909")
SPLITS = ("train", "val", "test")
LANGUAGES = ("en", "es")
# Source-length buckets of the test evaluation, in words (Moses tokens; module docstring):
# 1-10, 11-20, ..., 51-60, >60, as Bahdanau et al.'s Fig. 2.
LENGTH_BOUNDARIES = (10, 20, 30, 40, 50, 60)
# Longest training source and target, in words.
MAX_TRAIN_LEN = 80
# Words per vocabulary (specials included), the most frequent of those seen twice in train.
MAX_VOCAB_SIZE = 8000
# Padded source lengths of the batches (batching.bucket_boundaries): every 5 words up to 50, then
# 60, 70, 80 and 128 for the longest held-out verses (98 words). Quantile buckets (taken over
# every split) put a quarter of the training batches in the widest held-out shape, 98 source and
# 94 target positions.
BUCKET_BOUNDARIES = (10, 15, 20, 25, 30, 35, 40, 45, 50, 60, 70, 80, 128)
# Each bucket's padded target length holds 95% of its pairs' targets (batching.tgt_quantile); the
# longer 5% go to a later bucket. A verse's translation is sometimes much longer than its source
# (or the versifications misalign): with every target held, training pairs of at most 50 words
# padded to 1.19 million target positions an epoch, 1.9 times their 0.63 million; with 95%, 0.77
# million (measured on the kjv_length sweep's training pairs).
TGT_QUANTILE = 0.95


def get_config(arg: str | None = None):
  args = parse_arg(arg, profile="", profiles=("", "quick"), src="en", tgt="es", attention=True)
  if {args["src"], args["tgt"]} != set(LANGUAGES):
    raise ValueError(f"src and tgt must be en and es (either way round), got "
                     f"{args['src']!r}, {args['tgt']!r}")
  config = base_config("corpus")
  config.data.path = os.path.normpath(DEFAULT_PATH)
  config.data.src_lang, config.data.tgt_lang = args["src"], args["tgt"]
  config.data.splits = SPLITS
  config.data.tokenizer = "moses"
  config.data.lowercase = True
  config.data.min_freq = 2
  # Training pairs of at most 80 words a side (drops 30 of 26,436 pairs, a few of them verse
  # pairs the two versifications misalign); validation and test keep every pair.
  config.data.max_src_len = config.data.max_tgt_len = MAX_TRAIN_LEN
  # At most 8,000 words a side: the output softmax is most of a step on a CPU, and 8,000
  # instead of the 14,017 Spanish words seen twice makes it 1.75 times cheaper, for 5.0% instead
  # of 3.3% <unk> in the validation references (module docstring).
  config.data.max_vocab_size = MAX_VOCAB_SIZE
  config.batching.batch_size = 64
  config.batching.eval_batch_size = 256
  config.batching.bucket_boundaries = BUCKET_BOUNDARIES
  config.batching.tgt_quantile = TGT_QUANTILE
  config.model.cell = "gru"
  config.model.bidirectional = True
  config.model.decoder = "bahdanau"
  config.model.attention = "additive"
  config.model.bridge = "dense"
  # Sized for the 2-core CPU (module docstring).
  config.model.emb_dim = 128
  config.model.hidden_dim = 128
  config.model.dropout_rate = 0.1
  # 2,000 steps of 64 pairs: 4.8 epochs of the 26,406 training pairs, about an hour on the idle
  # 2-core machine (module docstring).
  config.train.num_steps = 2000
  config.train.learning_rate = 2e-3
  config.train.warmup_steps = 200
  config.train.label_smoothing = 0.1
  config.train.log_every = 500
  # Validation (1,487 verses decoded greedily, about 30 s) every 500 steps; the checkpoint of
  # best validation BLEU is tested.
  config.train.eval_every = 500
  config.train.checkpoint_every = 500
  config.train.best_metric = "bleu"
  config.eval.length_boundaries = LENGTH_BOUNDARIES
  # The final test evaluation decodes greedily and with beam 5.
  config.eval.test_beam_sizes = (5,)
  if not args["attention"]:
    config.model.decoder = "none"
  if args["profile"] == "quick":
    shrink_for_smoke_test(config)
    config.batching.bucket_boundaries = ()  # one padded shape: one compilation
    config.eval.max_examples = 30
    config.eval.test_beam_sizes = ()
  return config
