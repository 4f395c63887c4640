"""Seq2Seq = Encoder + Decoder, with a teacher-forced call and a single step."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from attnlab import losses
from attnlab.attention import AttentionMemory
from attnlab.attention import hard as hard_lib
from attnlab.models.decoders import Decoder, DecoderState
from attnlab.models.rnn import Encoder, EncoderOutput

Array = jax.Array


class Seq2Seq(nn.Module):
  """An RNN encoder-decoder with a selectable attention variant.

  Build it from plain arguments (never a config)::

    model = Seq2Seq(src_vocab_size=40, tgt_vocab_size=40, decoder="luong",
                    attention="general", bidirectional=True)
    params = model.init(key, src, src_lengths, tgt_in)
    logits, attention = model.apply(params, src, src_lengths, tgt_in)

  Attributes:
    src_vocab_size, tgt_vocab_size: vocabulary sizes (PAD = 0).
    emb_dim, hidden_dim: embedding and recurrent widths (encoder and decoder).
    cell: ``rnn``, ``gru`` or ``lstm``.
    encoder_layers, decoder_layers: stacked recurrent layers.
    bidirectional: bidirectional encoder.
    decoder: ``bahdanau``, ``luong`` or ``none`` (no attention).
    attention: score-function name; mechanism, normalizer: their names.
    attention_dim: hidden width of additive/concat scores (default hidden_dim).
    max_src_len: longest source the ``location`` score covers.
    local_window: D, half-width of ``local_m`` / ``local_p`` windows.
    hard_estimator: ``reinforce`` or ``gumbel`` (hard attention in training);
      hard_temperature: the Gumbel-softmax temperature.
    hard_entropy_weight, hard_baseline_decay: REINFORCE's entropy bonus and
      reward-baseline decay (used by ``hard_attention_loss``, not by the forward pass).
    monotonic_noise, monotonic_bias: monotonic attention's training noise std
      and initial energy bias r.
    input_feeding: Luong input feeding.
    bridge: ``dense`` or ``zeros`` initial decoder state.
    encoder_self_attention_layers: multi-head self-attention layers over the
      encoder outputs; decoder_self_attention: causal self-attention in the
      decoder; num_heads: heads of both.
    coverage: the decoder carries the coverage vector c_t = sum_{t'<t} a_t' and feeds it
      into its attention scores (Tu et al. 2016; See et al. 2017; ``Decoder.coverage``).
    coverage_loss_weight, guided_alignment_weight: weights of the auxiliary attention
      losses (``attention_losses``; used by training, not by the forward pass).
    dropout_rate: dropout throughout (active when ``deterministic=False``).
    copy: pointer-generator copy attention (See et al. 2017, ``attnlab.models.pointer``):
      the decoder returns log-probabilities over the extended vocabulary
      [tgt_vocab + src_len] as its logits; ``__call__`` and ``step`` then need
      ``src_ext`` (the source in extended ids, ``attnlab.data.batching`` with copy=True).
    dtype: computation dtype (parameters are float32).
    remat: rematerialize the scanned encoder and decoder steps in the backward pass
      (``jax.checkpoint``): less memory for long sequences, more compute.
  """

  src_vocab_size: int
  tgt_vocab_size: int
  emb_dim: int = 32
  hidden_dim: int = 64
  cell: str = "gru"
  encoder_layers: int = 1
  decoder_layers: int = 1
  bidirectional: bool = False
  decoder: str = "luong"
  attention: str = "general"
  mechanism: str = "global"
  normalizer: str = "softmax"
  attention_dim: int | None = None
  max_src_len: int = 128
  local_window: int = 10
  hard_estimator: str = "reinforce"
  hard_temperature: float = 1.0
  hard_entropy_weight: float = 0.01
  hard_baseline_decay: float = 0.9
  monotonic_noise: float = 1.0
  monotonic_bias: float = -1.0
  input_feeding: bool = True
  bridge: str = "dense"
  encoder_self_attention_layers: int = 0
  decoder_self_attention: bool = False
  num_heads: int = 1
  coverage: bool = False
  coverage_loss_weight: float = 0.0
  guided_alignment_weight: float = 0.0
  dropout_rate: float = 0.0
  dtype: Any = jnp.float32
  remat: bool = False
  copy: bool = False

  def setup(self):
    self.encoder = Encoder(
        vocab_size=self.src_vocab_size, emb_dim=self.emb_dim, hidden_dim=self.hidden_dim,
        cell=self.cell, num_layers=self.encoder_layers, bidirectional=self.bidirectional,
        dropout_rate=self.dropout_rate, self_attention_layers=self.encoder_self_attention_layers,
        num_heads=self.num_heads, dtype=self.dtype, remat=self.remat)
    self.decoder_module = Decoder(
        vocab_size=self.tgt_vocab_size, emb_dim=self.emb_dim, hidden_dim=self.hidden_dim,
        style=self.decoder, attention=self.attention, mechanism=self.mechanism,
        normalizer=self.normalizer, attention_dim=self.attention_dim,
        max_src_len=self.max_src_len, local_window=self.local_window,
        hard_estimator=self.hard_estimator, hard_temperature=self.hard_temperature,
        monotonic_noise=self.monotonic_noise, monotonic_bias=self.monotonic_bias,
        cell=self.cell, num_layers=self.decoder_layers,
        input_feeding=self.input_feeding, bridge=self.bridge,
        self_attention=self.decoder_self_attention, num_heads=self.num_heads,
        coverage=self.coverage,
        dropout_rate=self.dropout_rate, dtype=self.dtype, remat=self.remat, copy=self.copy)

  def encode(self, src: Array, src_lengths: Array, deterministic: bool = True) -> EncoderOutput:
    """src: [batch, src_len], src_lengths: [batch] -> EncoderOutput."""
    return self.encoder(src, src_lengths, deterministic)

  def start(self, src: Array, src_lengths: Array, history_len: int = 0,
            deterministic: bool = True) -> tuple[AttentionMemory, DecoderState]:
    """Encodes once and returns the decoder's memory and initial state.

    history_len: steps decoder self-attention can look back over (decoding:
      the maximum output length).
    """
    encoded = self.encode(src, src_lengths, deterministic)
    return (self.decoder_module.prepare(encoded),
            self.decoder_module.initial_state(encoded, history_len))

  def step(self, memory: AttentionMemory, state: DecoderState, y_prev: Array,
           deterministic: bool = True,
           src_ext: Array | None = None) -> tuple[DecoderState, Array, Array]:
    """One decoding step: y_prev [batch] -> (state, logits [batch, vocab], attention [batch, src_len]).

    With ``copy``: src_ext [batch, src_len] is required, the logits are log-probabilities
    [batch, tgt_vocab + src_len], and y_prev may be an extended id (embedded as UNK).
    """
    return self.decoder_module.step(state, y_prev, memory, deterministic, src_ext)

  def __call__(self, src: Array, src_lengths: Array, tgt_in: Array,
               deterministic: bool = True, src_ext: Array | None = None) -> tuple[Array, Array]:
    """Teacher-forced pass.

    Args:
      src: [batch, src_len] int ids (PAD after each length).
      src_lengths: [batch] true source lengths (>= 1).
      tgt_in: [batch, tgt_len] BOS + target ids.
      src_ext: [batch, src_len] int source ids in the extended target vocabulary
        (``copy`` only; ignored otherwise).

    Returns:
      logits [batch, tgt_len, tgt_vocab] (``copy``: log-probabilities
      [batch, tgt_len, tgt_vocab + src_len]) and attention [batch, tgt_len, src_len]
      (zeros for ``decoder='none'``).
    """
    memory, state = self.start(src, src_lengths, tgt_in.shape[1], deterministic)
    return self.decoder_module(tgt_in, memory, state, deterministic, src_ext)

  def attention_losses(self, attention: Array, target_mask: Array, src_lengths: Array,
                       alignment: Array | None = None) -> tuple[Array, dict]:
    """The weighted auxiliary attention losses of training (``attnlab.losses``).

    Add the returned total to the loss; it has no parameters of its own. Each loss with a
    non-zero weight is also returned unweighted under its name, for the metrics:
    ``coverage_loss`` (per real target token, like the NLL) and ``guided_alignment_loss``
    (per target step with at least one true link).

    Args:
      attention: [batch, tgt_len, src_len] weights of the teacher-forced pass.
      target_mask: [batch, tgt_len] bool, real target steps of real examples.
      src_lengths: [batch] true source lengths.
      alignment: [batch, tgt_len, src_len] true links (``batch['alignment']``); needed
        when ``guided_alignment_weight > 0``.

    Returns:
      total [] (0 when both weights are 0) and {name: unweighted mean loss []}.
    """
    total, parts = jnp.zeros((), jnp.float32), {}
    src_mask = jnp.arange(attention.shape[-1])[None, :] < src_lengths[:, None]
    if self.coverage_loss_weight > 0:
      loss_sum, count = losses.coverage_loss(attention, target_mask, src_mask)
      parts["coverage_loss"] = loss_sum / jnp.maximum(count, 1)
      total = total + self.coverage_loss_weight * parts["coverage_loss"]
    if self.guided_alignment_weight > 0:
      if alignment is None:
        raise ValueError("guided_alignment_weight > 0 needs the batches' true alignment "
                         "(batch['alignment']); this task has none")
      loss_sum, count = losses.guided_alignment_loss(attention, alignment, target_mask)
      parts["guided_alignment_loss"] = loss_sum / jnp.maximum(count, 1)
      total = total + self.guided_alignment_weight * parts["guided_alignment_loss"]
    return total, parts

  def hard_attention_loss(self, sown: dict, rewards: Array, baseline: Array, target_mask: Array,
                          example_mask: Array, initialized: Array) -> tuple[Array, Array]:
    """The REINFORCE term of hard attention's training loss, and the updated baseline.

    Training with ``mechanism='hard'`` and ``hard_estimator='reinforce'``, the
    teacher-forced pass sows the log-probability of each sampled position
    (``apply(..., deterministic=False, mutable=[attnlab.attention.hard.SAMPLES])``).
    Add the returned surrogate to the loss (``attnlab.attention.hard.reinforce_surrogate``
    with this model's ``hard_entropy_weight``); it has no parameters of its own.

    Args:
      sown: the ``SAMPLES`` collection of that pass.
      rewards: [batch] per-example reward (minus the example's target NLL).
      baseline: [] the moving-average reward baseline.
      target_mask: [batch, tgt_len] bool, real target steps.
      example_mask: [batch] bool, real examples (not batch padding).
      initialized: [] bool, False before the first update (the baseline then
        starts at this batch's mean reward).

    Returns:
      surrogate loss [] (0 when nothing was sown) and the new baseline [].
    """
    samples = hard_lib.collect_samples(sown)
    if samples is None:
      return jnp.zeros((), jnp.float32), baseline
    log_probs, entropies = samples
    new_baseline = hard_lib.update_baseline(baseline, rewards, example_mask,
                                            self.hard_baseline_decay, initialized)
    # Before the first update the current batch's mean is the best baseline there is.
    used = jnp.where(initialized, baseline, new_baseline)
    surrogate = hard_lib.reinforce_surrogate(log_probs, entropies, rewards, used, target_mask,
                                             self.hard_entropy_weight)
    return surrogate, new_baseline
