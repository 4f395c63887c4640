"""Time and memory per decoder step of each attention mechanism as the source grows.

    python -m experiments.benchmark_mechanisms [--src_lens 10,50,100,200] [--tgt_len 20]
        [--batch 32] [--mechanisms global,local_m,local_p,hard,monotonic] [--repeats 5]

For every mechanism and source length it builds the default model (bidirectional GRU,
Luong decoder, ``general`` scores; ``--decoder`` / ``--attention`` change it) with random
parameters and measures the decoder alone, the encoder's memory being computed beforehand:

* train: the teacher-forced decoder scan forward + backward (gradients for every decoder
  parameter and the encoder memory), training mode (hard attention samples, monotonic
  attention takes the soft expected alignment), divided by the target length;
* greedy: ``tgt_len`` greedy decoding steps (``Seq2Seq.step`` in a scan, argmax fed back;
  evaluation mode: hard attention takes the argmax, monotonic decodes hard), divided by
  ``tgt_len``.

Times are medians over ``--repeats`` runs after a warm-up; memory is XLA's temporary
buffer size of the compiled program (``compiled.memory_analysis().temp_size_in_bytes``:
activations kept for the backward pass, scan buffers), the peak beyond its inputs and
outputs. The last columns divide by global attention at the same source length.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from attnlab.attention import hard as hard_lib
from attnlab.attention import mechanism_names
from attnlab.data.vocab import BOS, PAD
from attnlab.models import Seq2Seq

VOCAB = 32


def _median_seconds(fn, *args, repeats: int) -> float:
  jax.block_until_ready(fn(*args))  # warm-up (compiled already)
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def _temp_mib(compiled) -> float:
  analysis = compiled.memory_analysis()
  return float("nan") if analysis is None else analysis.temp_size_in_bytes / 2**20


def measure(mechanism: str, src_len: int, args) -> dict:
  """Train and greedy ms per decoder step and temp MiB for one mechanism and source length."""
  model = Seq2Seq(src_vocab_size=VOCAB, tgt_vocab_size=VOCAB, emb_dim=args.emb_dim,
                  hidden_dim=args.hidden_dim, cell="gru", bidirectional=True,
                  decoder=args.decoder, attention=args.attention, mechanism=mechanism,
                  local_window=args.local_window, max_src_len=max(src_len, 1))
  rng = np.random.default_rng(0)
  src = rng.integers(4, VOCAB, (args.batch, src_len)).astype(np.int32)
  lengths = np.full((args.batch,), src_len, np.int32)
  tgt_in = rng.integers(4, VOCAB, (args.batch, args.tgt_len)).astype(np.int32)
  tgt_in[:, 0] = BOS
  tgt_out = np.concatenate([tgt_in[:, 1:], np.full((args.batch, 1), PAD, np.int32)], 1)
  variables = jax.jit(model.init)(jax.random.key(0), src, lengths, tgt_in)
  memory, state = jax.jit(functools.partial(model.apply, method=model.start))(
      variables, src, lengths, args.tgt_len)
  keys = {"dropout": jax.random.key(1), "sample": jax.random.key(2)}

  def decoder_loss(variables, keys_and_values):
    keys_, values = keys_and_values  # [batch, src_len, d]: differentiated like the encoder's
    (logits, _), _ = model.apply(
        variables, tgt_in, memory.replace(keys=keys_, values=values), state, False,
        rngs=keys, mutable=[hard_lib.SAMPLES], method=lambda m, *a: m.decoder_module(*a))
    log_probs = jax.nn.log_softmax(logits)
    return -jnp.mean(jnp.take_along_axis(log_probs, tgt_out[..., None], -1))

  keys_and_values = (memory.keys, memory.values)
  train = jax.jit(jax.grad(decoder_loss, argnums=(0, 1))).lower(
      variables, keys_and_values).compile()

  def greedy(variables, memory):
    def body(carry, _):
      state, y = carry
      state, logits, weights = model.apply(variables, memory, state, y, method=model.step)
      return (state, jnp.argmax(logits, -1).astype(jnp.int32)), weights

    start = (state, jnp.full((args.batch,), BOS, jnp.int32))
    return jax.lax.scan(body, start, None, length=args.tgt_len)[1]

  decode = jax.jit(greedy).lower(variables, memory).compile()
  return {
      "train_ms": 1e3 * _median_seconds(train, variables, keys_and_values,
                                        repeats=args.repeats) / args.tgt_len,
      "greedy_ms": 1e3 * _median_seconds(decode, variables, memory, repeats=args.repeats)
                   / args.tgt_len,
      "train_mib": _temp_mib(train),
      "greedy_mib": _temp_mib(decode),
  }


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--src_lens", default="10,50,100,200")
  parser.add_argument("--tgt_len", type=int, default=20)
  parser.add_argument("--batch", type=int, default=32)
  parser.add_argument("--emb_dim", type=int, default=32)
  parser.add_argument("--hidden_dim", type=int, default=64)
  parser.add_argument("--decoder", default="luong", choices=("luong", "bahdanau"))
  parser.add_argument("--attention", default="general")
  parser.add_argument("--local_window", type=int, default=10, help="D of local_m / local_p")
  parser.add_argument("--mechanisms", default=",".join(
      ["global"] + [m for m in mechanism_names() if m != "global"]))
  parser.add_argument("--repeats", type=int, default=5)
  args = parser.parse_args()
  src_lens = [int(s) for s in args.src_lens.split(",")]
  mechanisms = args.mechanisms.split(",")
  for name in mechanisms:
    if name not in mechanism_names():
      parser.error(f"unknown mechanism {name!r}; valid: {', '.join(mechanism_names())}")

  print(f"device: {jax.devices()[0].device_kind}; batch {args.batch}, tgt_len {args.tgt_len}, "
        f"hidden {args.hidden_dim}, {args.decoder} decoder, {args.attention} scores, "
        f"D = {args.local_window}; ms per decoder step, MiB: XLA temp memory of the program")
  header = (f"{'mechanism':<10} {'src_len':>7} {'train ms':>9} {'greedy ms':>10} "
            f"{'train MiB':>10} {'greedy MiB':>11} {'train x':>8} {'greedy x':>9} "
            f"{'train MiB x':>12}")
  print(header)
  print("-" * len(header))
  reference = {}
  for name in mechanisms:
    for src_len in src_lens:
      r = measure(name, src_len, args)
      if name == "global":
        reference[src_len] = r
      ref = reference.get(src_len)
      ratio = lambda key: (f"{r[key] / ref[key]:.2f}" if ref else "-")  # noqa: E731
      print(f"{name:<10} {src_len:>7} {r['train_ms']:>9.3f} {r['greedy_ms']:>10.3f} "
            f"{r['train_mib']:>10.2f} {r['greedy_mib']:>11.2f} {ratio('train_ms'):>8} "
            f"{ratio('greedy_ms'):>9} {ratio('train_mib'):>12}", flush=True)


if __name__ == "__main__":
  main()
