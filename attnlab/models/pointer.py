"""Copy attention: the pointer-generator mixture (See et al. 2017, eq. 8-9).

At each step the decoder's generation probability p_gen mixes its vocabulary distribution
with the attention distribution over the source tokens::

    P(w) = p_gen P_vocab(w) + (1 - p_gen) sum_{i: x_i = w} a_i

over an *extended* vocabulary: the target vocabulary, then one slot per source word of this
example that the target vocabulary lacks (``Vocab.source_oovs``; at most ``src_len`` slots, so
``src_len`` is the static bound used here). The result is returned as log-probabilities, which
are their own ``log_softmax`` (P sums to one), so a cross-entropy on logits, greedy decoding
and beam search use them unchanged.

Pure functions, no parameters: the decoder owns p_gen's weights.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

Array = jax.Array

# Log-probability of an impossible extended id (an unused OOV slot): finite, so sums, the
# loss and beam scores stay finite, and exp() of it is exactly 0 in float32.
NEG_INF = -1.0e9


def extended_size(vocab_size: int, src_len: int) -> int:
  """Size of the extended vocabulary: the target vocabulary + ``src_len`` OOV slots."""
  return vocab_size + src_len


def feed_ids(ids: Array, vocab_size: int, unk: int) -> Array:
  """Extended ids [...] -> ids the decoder can embed: an OOV slot (id >= vocab_size) is UNK."""
  return jnp.where(ids >= vocab_size, unk, ids)


def copy_distribution(weights: Array, src_ext: Array, mask: Array,
                      size: int) -> tuple[Array, Array]:
  """The attention mass on each extended id: sum_{i: x_i = w} a_i, renormalised.

  Args:
    weights: [batch, src_len] attention weights.
    src_ext: [batch, src_len] int source ids in the extended vocabulary.
    mask: [batch, src_len] bool, True at real source positions (padding gets no mass).
    size: extended vocabulary size.

  Returns:
    copy [batch, size], summing to one in every row that has attention mass (weights that sum
    to less than one, as local_p's Gaussian or monotonic attention, are renormalised over the
    source), and has_mass [batch] bool (False: all-zero weights, the row is all zero).
  """
  weights = jnp.where(mask, weights.astype(jnp.float32), 0.0)
  total = jnp.sum(weights, axis=-1)  # [batch]
  has_mass = total > 0
  weights = weights / jnp.where(has_mass, total, 1.0)[:, None]
  rows = jnp.arange(weights.shape[0])[:, None]
  copy = jnp.zeros((weights.shape[0], size), jnp.float32).at[rows, src_ext].add(weights)
  return copy, has_mass


def mixture_log_probs(logits: Array, p_gen_logit: Array, weights: Array, src_ext: Array,
                      mask: Array) -> Array:
  """log P(w) of the pointer-generator over the extended vocabulary.

  Args:
    logits: [batch, vocab] the generator's unnormalised scores.
    p_gen_logit: [batch] pre-sigmoid generation probability (w_c.c + w_s.s + w_x.x + b).
    weights: [batch, src_len] attention weights (the copy distribution a).
    src_ext: [batch, src_len] int source ids in the extended vocabulary (< vocab + src_len).
    mask: [batch, src_len] bool, True at real source positions.

  Returns:
    [batch, vocab + src_len] float32 log-probabilities, logsumexp 0 per row. A row without
    attention mass (no source, or all-zero weights) generates only (p_gen taken as 1).
    Computed in log space (logaddexp of the two weighted parts), so neither a vocabulary
    probability that underflows nor a word the source lacks gives log 0: an impossible id
    gets ``NEG_INF``.
  """
  batch, vocab = logits.shape
  size = extended_size(vocab, src_ext.shape[-1])
  copy, has_mass = copy_distribution(weights, src_ext, mask, size)
  p_gen_logit = p_gen_logit.astype(jnp.float32)
  log_p_gen = jnp.where(has_mass, jax.nn.log_sigmoid(p_gen_logit), 0.0)[:, None]
  log_p_copy = jax.nn.log_sigmoid(-p_gen_logit)[:, None]  # log(1 - p_gen)
  log_vocab = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  log_vocab = jnp.concatenate(
      [log_vocab, jnp.full((batch, size - vocab), NEG_INF, jnp.float32)], axis=-1)
  positive = copy > 0
  # The inner where keeps log's gradient finite where copy == 0 (that branch is unused).
  log_copy = jnp.where(positive, jnp.log(jnp.where(positive, copy, 1.0)), NEG_INF)
  log_copy = jnp.where(has_mass[:, None], log_copy + log_p_copy, NEG_INF)
  return jnp.logaddexp(log_vocab + log_p_gen, log_copy)
