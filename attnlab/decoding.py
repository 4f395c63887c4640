"""Greedy decoding and beam search under jit, returning alignments.

Both encode the source once (``Seq2Seq.start``: the attention keys are projected
once per source), then call ``Seq2Seq.step`` inside a ``lax.while_loop`` that
stops when every hypothesis has produced EOS or ``max_len`` tokens. PAD and BOS
are never generated; after EOS a hypothesis emits PAD with zero attention.

A copy model (``ModelOptions.copy``) takes ``src_ext``, the source in extended
ids; its tokens can then be extended ids (>= the target vocabulary size: that
example's k-th source OOV, ``Vocab.decode(tokens, oovs=...)``), fed back to the
decoder as UNK.

``Ensemble`` decodes several models that share their vocabularies as one (the mean of their
per-step output distributions), through the same two functions.

Usage::

    result = greedy_decode(model, params, src, src_lengths, max_len=20)
    result.tokens      # [batch, max_len]
    result.attention   # [batch, max_len, src_len]
"""

from __future__ import annotations

import functools
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp

from attnlab.data.vocab import BOS, EOS, PAD

Array = jax.Array
NEG_INF = -1.0e9  # finite "impossible" log-probability: sums stay finite, never NaN


@flax.struct.dataclass
class DecodeResult:
  """Decoded hypotheses.

  Attributes:
    tokens: [batch, max_len] (greedy) or [batch, beams, max_len] (beam search,
      best first) int32, EOS included, PAD after it.
    scores: [batch] or [batch, beams]: the ranking score (sum of log-probabilities;
      for beam search divided by the length penalty, plus the coverage penalty,
      ``hypothesis_scores``).
    log_probs: like ``scores``, the plain sum of token log-probabilities.
    lengths: like ``scores``: tokens generated, EOS included.
    attention: [batch, max_len, src_len] or [batch, beams, max_len, src_len]:
      the alignment of each output token (zero rows after EOS).
  """

  tokens: Array
  scores: Array
  log_probs: Array
  lengths: Array
  attention: Array


def _step_log_probs(logits: Array) -> Array:
  """logits [..., vocab] -> log-probabilities with PAD and BOS forbidden."""
  logits = logits.at[..., PAD].set(NEG_INF).at[..., BOS].set(NEG_INF)
  return jax.nn.log_softmax(logits, axis=-1)


@functools.partial(jax.jit, static_argnames=("model", "max_len"))
def greedy_decode(model: nn.Module, params: Any, src: Array, src_lengths: Array,
                  max_len: int, src_ext: Array | None = None) -> DecodeResult:
  """Batched greedy decoding.

  Args:
    model: a ``Seq2Seq`` (static: one compilation per model and shape).
    params: its variables (``{'params': ...}``).
    src: [batch, src_len] int ids; src_lengths: [batch].
    max_len: the most tokens to generate, EOS included.
    src_ext: [batch, src_len] source in extended ids (copy models only).

  Returns:
    DecodeResult with tokens [batch, max_len] and attention [batch, max_len, src_len].
  """
  batch, src_len = src.shape
  memory, state = model.apply(params, src, src_lengths, max_len, method=model.start)

  def cond(carry):
    t, _, _, finished, *_ = carry
    return (t < max_len) & ~jnp.all(finished)

  def body(carry):
    t, state, y_prev, finished, tokens, attention, log_prob, lengths = carry
    state, logits, weights = model.apply(params, memory, state, y_prev, src_ext=src_ext,
                                         method=model.step)
    log_probs = _step_log_probs(logits)
    y = jnp.argmax(log_probs, axis=-1).astype(jnp.int32)
    y = jnp.where(finished, PAD, y)
    log_prob = log_prob + jnp.where(finished, 0.0, jnp.take_along_axis(
        log_probs, y[:, None], axis=-1)[:, 0])
    weights = jnp.where(finished[:, None], 0.0, weights)
    tokens = tokens.at[:, t].set(y)
    attention = attention.at[:, t].set(weights)
    lengths = lengths + (~finished).astype(jnp.int32)
    finished = finished | (y == EOS)
    return t + 1, state, y, finished, tokens, attention, log_prob, lengths

  init = (jnp.asarray(0), state, jnp.full((batch,), BOS, jnp.int32), jnp.zeros((batch,), bool),
          jnp.full((batch, max_len), PAD, jnp.int32), jnp.zeros((batch, max_len, src_len)),
          jnp.zeros((batch,)), jnp.zeros((batch,), jnp.int32))
  _, _, _, _, tokens, attention, log_prob, lengths = jax.lax.while_loop(cond, body, init)
  return DecodeResult(tokens=tokens, scores=log_prob, log_probs=log_prob, lengths=lengths,
                      attention=attention)


def length_penalty(lengths: Array, alpha: float) -> Array:
  """GNMT length penalty ((5 + |Y|) / 6) ** alpha (Wu et al. 2016, eq. 14); 1 when alpha = 0."""
  return ((5.0 + lengths.astype(jnp.float32)) / 6.0) ** alpha


# A source position no output token attended would make the coverage penalty log 0 = -inf
# (for every such hypothesis alike, so they could no longer be ranked); its total
# attention is clamped to this first: it costs beta * log(1e-6) ~ -13.8 beta instead.
COVERAGE_EPS = 1e-6


def coverage_penalty(attention: Array, src_lengths: Array, beta: float,
                     eps: float = COVERAGE_EPS) -> Array:
  """GNMT coverage penalty beta * sum_i log(min(sum_j a_ji, 1)) (Wu et al. 2016, eq. 14).

  Args:
    attention: [batch, beams, out_len, src_len] each hypothesis's alignment (rows after
      its EOS are zero), or [batch, out_len, src_len].
    src_lengths: [batch] true source lengths: only real source positions i count.
    beta: the penalty weight (0 = no penalty).
    eps: a total below it counts as eps (``COVERAGE_EPS``), so log stays finite.

  Returns:
    [batch, beams] (or [batch]) penalties <= 0: 0 when every real source position received
    a total attention of at least 1, more negative the more of the source is left uncovered.
  """
  total = jnp.sum(attention.astype(jnp.float32), axis=-2)  # [..., src_len]
  src_mask = jnp.arange(total.shape[-1]) < src_lengths.reshape(
      src_lengths.shape + (1,) * (total.ndim - 1))
  per_source = jnp.log(jnp.clip(total, eps, 1.0))
  return beta * jnp.sum(jnp.where(src_mask, per_source, 0.0), axis=-1)


def hypothesis_scores(log_prob: Array, lengths: Array, attention: Array, src_lengths: Array,
                      alpha: float, beta: float = 0.0) -> Array:
  """GNMT's ranking score s(Y, X) = log P(Y|X) / lp(Y) + cp(X; Y) (Wu et al. 2016, eq. 14).

  Args:
    log_prob: [batch, beams] sum of token log-probabilities; lengths: [batch, beams] (EOS
      included); attention: [batch, beams, out_len, src_len]; src_lengths: [batch].
    alpha: ``length_penalty`` exponent; beta: ``coverage_penalty`` weight (0: no term).

  Returns:
    [batch, beams] scores, higher is better.
  """
  scores = log_prob / length_penalty(lengths, alpha)
  if beta:
    scores = scores + coverage_penalty(attention, src_lengths, beta)
  return scores


def _gather_beams(tree: Any, beam_idx: Array, batch: int, beams: int) -> Any:
  """Reorders [batch * beams, ...] (or [batch, beams, ...]) leaves by beam_idx [batch, beams]."""

  def gather(x):
    flat = x.ndim and x.shape[0] == batch * beams
    y = x.reshape((batch, beams) + x.shape[1:]) if flat else x
    y = jnp.take_along_axis(y, beam_idx.reshape(beam_idx.shape + (1,) * (y.ndim - 2)), axis=1)
    return y.reshape(x.shape)

  return jax.tree.map(gather, tree)


@functools.partial(jax.jit, static_argnames=("model", "max_len", "beam_size", "alpha", "beta"))
def beam_search(model: nn.Module, params: Any, src: Array, src_lengths: Array, max_len: int,
                beam_size: int = 4, alpha: float = 0.6,
                src_ext: Array | None = None, beta: float = 0.0) -> DecodeResult:
  """Batched beam search with GNMT length normalisation.

  Every beam slot holds one hypothesis; a finished one (it produced EOS) can
  only be extended by PAD at no cost, so it keeps its score and competes with
  the live ones. Hypotheses are ranked by log P(Y|X) / length_penalty(|Y|, alpha)
  at the end; with ``alpha=0`` the ranking is the plain log-probability, and
  with a beam as large as the number of possible outputs the search is
  exhaustive. (A beam larger than the number of distinct outputs fills its
  extra slots with impossible hypotheses scored about -1e9; they sort last.)

  With ``beta > 0`` the final ranking adds GNMT's coverage penalty,
  log P / lp + beta * sum_i log(min(sum_j a_ji, 1)) (``hypothesis_scores``). Like the
  length penalty it re-ranks the final beam only: pruning while searching keeps the
  plain log-probability, so ``beta`` never changes which hypotheses are found (nor
  their log P), only which comes first. (GNMT scores partial hypotheses too; here a
  partial hypothesis has not yet had the chance to cover the source, and penalising
  it would prune by how far it got rather than by how well.)

  Args:
    model, params, src [batch, src_len], src_lengths [batch], max_len: as ``greedy_decode``.
    beam_size: hypotheses kept per example (1 = greedy).
    alpha: length-penalty exponent.
    beta: coverage-penalty weight (0 = none).
    src_ext: [batch, src_len] source in extended ids (copy models only).

  Returns:
    DecodeResult with tokens [batch, beam_size, max_len] sorted best first.
  """
  if beam_size < 1:
    raise ValueError(f"beam_size must be >= 1, got {beam_size}")
  batch, src_len = src.shape
  k = beam_size
  tile = lambda x: jnp.repeat(x, k, axis=0)  # [batch, ...] -> [batch * k, ...]  # noqa: E731
  memory, state = model.apply(params, tile(src), tile(src_lengths), max_len, method=model.start)
  src_ext = None if src_ext is None else tile(src_ext)  # [batch * k, src_len]

  def cond(carry):
    t, _, _, finished, *_ = carry
    return (t < max_len) & ~jnp.all(finished)

  def body(carry):
    t, state, y_prev, finished, tokens, attention, log_prob, lengths = carry
    state, logits, weights = model.apply(params, memory, state, y_prev.reshape(-1),
                                         src_ext=src_ext, method=model.step)
    vocab = logits.shape[-1]
    log_probs = _step_log_probs(logits).reshape(batch, k, vocab)
    # A finished hypothesis continues only with PAD, at zero cost.
    pad_only = jnp.full((vocab,), NEG_INF).at[PAD].set(0.0)
    log_probs = jnp.where(finished[..., None], pad_only, log_probs)
    candidates = (log_prob[..., None] + log_probs).reshape(batch, k * vocab)
    log_prob, flat_idx = jax.lax.top_k(candidates, k)  # [batch, k]
    beam_idx, y = flat_idx // vocab, (flat_idx % vocab).astype(jnp.int32)
    weights = weights.reshape(batch, k, src_len)
    state, weights, finished, tokens, attention, lengths = _gather_beams(
        (state, weights, finished, tokens, attention, lengths), beam_idx, batch, k)
    tokens = tokens.at[:, :, t].set(y)
    attention = attention.at[:, :, t].set(jnp.where(finished[..., None], 0.0, weights))
    lengths = lengths + (~finished).astype(jnp.int32)
    finished = finished | (y == EOS)
    return t + 1, state, y, finished, tokens, attention, log_prob, lengths

  # Only beam 0 is live at the start, so the k first expansions are distinct.
  log_prob0 = jnp.tile(jnp.array([0.0] + [NEG_INF] * (k - 1)), (batch, 1))
  init = (jnp.asarray(0), state, jnp.full((batch, k), BOS, jnp.int32),
          jnp.zeros((batch, k), bool), jnp.full((batch, k, max_len), PAD, jnp.int32),
          jnp.zeros((batch, k, max_len, src_len)), log_prob0, jnp.zeros((batch, k), jnp.int32))
  _, _, _, _, tokens, attention, log_prob, lengths = jax.lax.while_loop(cond, body, init)
  scores = hypothesis_scores(log_prob, lengths, attention, src_lengths, alpha, beta)
  order = jnp.argsort(-scores, axis=-1)
  take = lambda x: jnp.take_along_axis(  # noqa: E731
      x, order.reshape(order.shape + (1,) * (x.ndim - 2)), axis=1)
  return DecodeResult(tokens=take(tokens), scores=take(scores), log_probs=take(log_prob),
                      lengths=take(lengths), attention=take(attention))


class Ensemble(nn.Module):
  """Models that share their vocabularies, decoded as one model (``greedy_decode`` and
  ``beam_search`` take it as they take a ``Seq2Seq``).

  Each step's output distribution is the mean of the members' distributions, each as the
  member's own decoding ranks it (PAD and BOS forbidden): log (1/M) sum_m p_m(y | ...),
  ``ensemble_logits``. Its attention is the mean of the members' attention weights (zeros
  count for a member without attention). Parameters: ``{"members_0": ..., "members_1": ...}``.

  Attributes:
    members: the models (``Seq2Seq``), all copy models or none (``copy``: their
      extended ids must mean the same).
  """

  members: tuple[nn.Module, ...]

  def __post_init__(self):
    # linen shares a module passed twice (one set of parameters, "members_0"): each member
    # gets its own copy, so (model, model) has two parameter slots as (model, equal model) has
    # (jit caches a trace by equality: a shared trace would give every member one slot).
    self.members = tuple(m.clone() for m in self.members)
    super().__post_init__()

  @property
  def copy(self) -> bool:
    """Whether the members are copy models (they predict extended ids)."""
    return bool(getattr(self.members[0], "copy", False))

  @property
  def decoder(self) -> str:
    """The first attentive member's decoder style (``none`` when no member attends)."""
    return next((m.decoder for m in self.members if m.decoder != "none"), "none")

  def start(self, src: Array, src_lengths: Array, history_len: int = 0,
            deterministic: bool = True) -> tuple[tuple, tuple]:
    """Each member's ``start``: (memories, states), one per member."""
    started = [m.start(src, src_lengths, history_len, deterministic) for m in self.members]
    return tuple(s[0] for s in started), tuple(s[1] for s in started)

  def step(self, memory: tuple, state: tuple, y_prev: Array, deterministic: bool = True,
           src_ext: Array | None = None) -> tuple[tuple, Array, Array]:
    """y_prev [batch] -> (states, logits [batch, vocab] of the mean distribution, attention
    [batch, src_len], the members' mean)."""
    steps = [m.step(mem, st, y_prev, deterministic, src_ext)
             for m, mem, st in zip(self.members, memory, state)]
    states, logits, weights = zip(*steps)
    return tuple(states), ensemble_logits(jnp.stack(logits)), jnp.mean(jnp.stack(weights), 0)


def ensemble_logits(logits: Array) -> Array:
  """logits [members, batch, vocab] -> [batch, vocab] logits whose softmax (PAD and BOS
  forbidden) is the mean of the members' softmaxes (each with PAD and BOS forbidden).

  Written as the first member's logits plus log (mean_m p_m / p_0) (a log-mean-exp of the
  members' log-probability differences), so that one member, or members that agree, give
  back the first member's logits bit for bit: an ensemble of one run (or of a run and itself)
  decodes exactly as the run, scores included.
  """
  if logits.shape[0] == 1:
    return logits[0]
  log_probs = _step_log_probs(logits)  # [members, batch, vocab]
  diff = log_probs - log_probs[0]  # log (p_m / p_0); 0 where members agree
  top = jnp.max(diff, axis=0)
  return logits[0] + top + jnp.log(jnp.mean(jnp.exp(diff - top), axis=0))
