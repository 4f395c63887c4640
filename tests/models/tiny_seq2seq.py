"""What the model tests share: tiny sizes, padded random batches, random parameters.

Imported by name (``import tiny_seq2seq``): pytest puts this folder on ``sys.path``.
"""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from attnlab.data.vocab import BOS, PAD
from attnlab.models import Seq2Seq

SRC_VOCAB, TGT_VOCAB, EMB, HIDDEN = 11, 9, 8, 16


def make_batch(lengths, src_len, tgt_len, seed=0, src_vocab=SRC_VOCAB, tgt_vocab=TGT_VOCAB):
  """src [batch, src_len] (ids >= 4, PAD after each length), lengths [batch], tgt_in
  [batch, tgt_len] (BOS + ids >= 3)."""
  rng = np.random.default_rng(seed)
  lengths = np.asarray(lengths, np.int32)
  src = rng.integers(4, src_vocab, (len(lengths), src_len)).astype(np.int32)
  src[np.arange(src_len)[None, :] >= lengths[:, None]] = PAD
  tgt_in = rng.integers(3, tgt_vocab, (len(lengths), tgt_len)).astype(np.int32)
  tgt_in[:, 0] = BOS
  return src, lengths, tgt_in


def random_params(module_or_init, *args, seed=0, scale=0.3, **kwargs):
  """Variables of ``module.init(key, *args, **kwargs)``'s shapes (or of an ``init`` function's),
  every entry drawn from N(0, scale^2).

  Cheaper than ``init`` (traced once by eval_shape, never compiled or run), and free of the
  special structure of an initialiser (zero biases, w_c = 0) that could hide a bug.
  """
  init = (module_or_init.init if isinstance(module_or_init, nn.Module) else module_or_init)
  shapes = jax.eval_shape(functools.partial(init, **kwargs), jax.random.key(0), *args)
  rng = np.random.default_rng(seed)
  return jax.tree.map(lambda s: jnp.asarray(scale * rng.standard_normal(s.shape), s.dtype), shapes)


def make_model(**kwargs):
  """A tiny Seq2Seq of these sizes with a bidirectional encoder (d_enc = 2 * hidden != hidden),
  any option (``attnlab.options.ModelOptions`` field) overridden by ``kwargs``."""
  defaults = dict(src_vocab_size=SRC_VOCAB, tgt_vocab_size=TGT_VOCAB, emb_dim=EMB,
                  hidden_dim=HIDDEN, bidirectional=True, max_src_len=8)
  return Seq2Seq.create(**{**defaults, **kwargs})
