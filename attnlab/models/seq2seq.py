"""Seq2Seq = Encoder + Decoder, with a teacher-forced call and a single step."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from attnlab import losses
from attnlab.attention import AttentionMemory
from attnlab.attention import hard as hard_lib
from attnlab.models.decoders import Decoder, DecoderState
from attnlab.models.rnn import Encoder, EncoderOutput
from attnlab.options import ModelOptions

Array = jax.Array


class Seq2Seq(nn.Module):
  """An RNN encoder-decoder with a selectable attention variant.

  Built from plain values (never a config): the vocabulary sizes and one
  ``ModelOptions`` (``attnlab.options``), or the same options as keywords::

    model = Seq2Seq.create(src_vocab_size=40, tgt_vocab_size=40, decoder="luong",
                           attention="general", bidirectional=True)
    # the same: Seq2Seq(src_vocab_size=40, tgt_vocab_size=40,
    #                   options=ModelOptions(decoder="luong", attention="general", ...))
    params = model.init(key, src, src_lengths, tgt_in)
    logits, attention = model.apply(params, src, src_lengths, tgt_in)

  The options go whole to the decoder, which hands them whole to its attention;
  the score function and the mechanism read their own (``ModelOptions`` documents
  every field).

  Attributes:
    src_vocab_size, tgt_vocab_size: vocabulary sizes (PAD = 0).
    options: the model's ``ModelOptions``. Read here: the encoder's (``emb_dim``,
      ``hidden_dim``, ``cell``, ``encoder_layers``, ``bidirectional``,
      ``encoder_self_attention_layers``, ``num_heads``, ``dropout_rate``, ``dtype``,
      ``remat``), and the weights of training's auxiliary losses:
      ``coverage_loss_weight`` and ``guided_alignment_weight`` (``attention_losses``),
      ``hard_entropy_weight`` and ``hard_baseline_decay`` (REINFORCE's entropy bonus
      and reward-baseline decay, ``hard_attention_loss``). With ``copy``
      (pointer-generator, See et al. 2017, ``attnlab.models.pointer``) the decoder
      returns log-probabilities over the extended vocabulary [tgt_vocab + src_len] as
      its logits; ``__call__`` and ``step`` then need ``src_ext`` (the source in
      extended ids, ``attnlab.data.batching`` with copy=True).
  """

  src_vocab_size: int
  tgt_vocab_size: int
  options: ModelOptions = ModelOptions()

  @classmethod
  def create(cls, src_vocab_size: int, tgt_vocab_size: int, **options) -> "Seq2Seq":
    """``Seq2Seq(src_vocab_size, tgt_vocab_size, options=ModelOptions(**options))``."""
    return cls(src_vocab_size=src_vocab_size, tgt_vocab_size=tgt_vocab_size,
               options=ModelOptions(**options))

  # The two options training reads off a model (attnlab.training). ``copy`` shadows
  # linen's Module.copy(), as the field of that name did before.
  @property
  def decoder(self) -> str:
    """The decoder style, ``options.decoder`` (``none``: no attention weights)."""
    return self.options.decoder

  @property
  def copy(self) -> bool:
    """Whether this is a copy model (``options.copy``): it predicts extended ids."""
    return self.options.copy

  def setup(self):
    o = self.options
    self.encoder = Encoder(
        vocab_size=self.src_vocab_size, emb_dim=o.emb_dim, hidden_dim=o.hidden_dim,
        cell=o.cell, num_layers=o.encoder_layers, bidirectional=o.bidirectional,
        dropout_rate=o.dropout_rate, self_attention_layers=o.encoder_self_attention_layers,
        num_heads=o.num_heads, dtype=o.dtype, remat=o.remat)
    self.decoder_module = Decoder(vocab_size=self.tgt_vocab_size, options=o)

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
    o = self.options
    if o.coverage_loss_weight > 0:
      loss_sum, count = losses.coverage_loss(attention, target_mask, src_mask)
      parts["coverage_loss"] = loss_sum / jnp.maximum(count, 1)
      total = total + o.coverage_loss_weight * parts["coverage_loss"]
    if o.guided_alignment_weight > 0:
      if alignment is None:
        raise ValueError("guided_alignment_weight > 0 needs the batches' true alignment "
                         "(batch['alignment']); this task has none")
      loss_sum, count = losses.guided_alignment_loss(attention, alignment, target_mask)
      parts["guided_alignment_loss"] = loss_sum / jnp.maximum(count, 1)
      total = total + o.guided_alignment_weight * parts["guided_alignment_loss"]
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
                                            self.options.hard_baseline_decay, initialized)
    # Before the first update the current batch's mean is the best baseline there is.
    used = jnp.where(initialized, baseline, new_baseline)
    surrogate = hard_lib.reinforce_surrogate(log_probs, entropies, rewards, used, target_mask,
                                             self.options.hard_entropy_weight)
    return surrogate, new_baseline
