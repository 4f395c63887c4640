"""Seq2Seq = Encoder + Decoder, with a teacher-forced call and a single step."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

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
    dropout_rate: dropout throughout (active when ``deterministic=False``).
    dtype: computation dtype (parameters are float32).
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
  dropout_rate: float = 0.0
  dtype: Any = jnp.float32

  def setup(self):
    self.encoder = Encoder(
        vocab_size=self.src_vocab_size, emb_dim=self.emb_dim, hidden_dim=self.hidden_dim,
        cell=self.cell, num_layers=self.encoder_layers, bidirectional=self.bidirectional,
        dropout_rate=self.dropout_rate, self_attention_layers=self.encoder_self_attention_layers,
        num_heads=self.num_heads, dtype=self.dtype)
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
        dropout_rate=self.dropout_rate, dtype=self.dtype)

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
           deterministic: bool = True) -> tuple[DecoderState, Array, Array]:
    """One decoding step: y_prev [batch] -> (state, logits [batch, vocab], attention [batch, src_len])."""
    return self.decoder_module.step(state, y_prev, memory, deterministic)

  def __call__(self, src: Array, src_lengths: Array, tgt_in: Array,
               deterministic: bool = True) -> tuple[Array, Array]:
    """Teacher-forced pass.

    Args:
      src: [batch, src_len] int ids (PAD after each length).
      src_lengths: [batch] true source lengths (>= 1).
      tgt_in: [batch, tgt_len] BOS + target ids.

    Returns:
      logits [batch, tgt_len, tgt_vocab] and attention [batch, tgt_len, src_len]
      (zeros for ``decoder='none'``).
    """
    memory, state = self.start(src, src_lengths, tgt_in.shape[1], deterministic)
    return self.decoder_module(tgt_in, memory, state, deterministic)

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
