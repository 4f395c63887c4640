"""Seq2Seq = Encoder + Decoder, with a teacher-forced call and a single step."""

from __future__ import annotations

import flax.linen as nn
import jax

from attnlab.attention import AttentionMemory
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
      ``remat``). The training loss's own terms (auxiliary attention losses, hard
      attention's REINFORCE estimator) are the training side's
      (``attnlab.training.steps``). With ``copy``
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
        num_heads=o.num_heads, dtype=o.compute_dtype, remat=o.remat)
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
    """One decoding step: y_prev [batch] -> (state, logits [batch, vocab],
    attention [batch, src_len]).

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
