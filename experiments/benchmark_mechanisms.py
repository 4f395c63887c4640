"""Time and memory per decoder step of each attention mechanism as the source grows.

    python -m experiments.benchmark_mechanisms [--src_lens 10,50,100,200] [--tgt_len 20]
        [--batch_size 32] [--mechanisms global,local_m,local_p,hard,monotonic] [--repeats 5]

For every mechanism and source length it builds the default model (bidirectional GRU,
Luong decoder, ``general`` scores; ``--decoder`` / ``--attention`` change it, and
``--emb_dim`` / ``--hidden_dim`` its width: the config's names, as in ``experiments.benchmark``)
with random
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

import functools
import statistics
import time
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags

from attnlab.attention import hard as hard_lib
from attnlab.attention import mechanism_names, score_names
from attnlab.data.vocab import BOS, PAD
from attnlab.models import Seq2Seq
from experiments import cli

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
  model = Seq2Seq.create(src_vocab_size=VOCAB, tgt_vocab_size=VOCAB, emb_dim=args.emb_dim,
                         hidden_dim=args.hidden_dim, cell="gru", bidirectional=True,
                         decoder=args.decoder, attention=args.attention, mechanism=mechanism,
                         local_window=args.local_window, max_src_len=max(src_len, 1))
  rng = np.random.default_rng(0)
  src = rng.integers(4, VOCAB, (args.batch_size, src_len)).astype(np.int32)
  lengths = np.full((args.batch_size,), src_len, np.int32)
  tgt_in = rng.integers(4, VOCAB, (args.batch_size, args.tgt_len)).astype(np.int32)
  tgt_in[:, 0] = BOS
  tgt_out = np.concatenate([tgt_in[:, 1:], np.full((args.batch_size, 1), PAD, np.int32)], 1)
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

    start = (state, jnp.full((args.batch_size,), BOS, jnp.int32))
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


def define_flags(fv: flags.FlagValues) -> None:
  flags.DEFINE_list("src_lens", ["10", "50", "100", "200"], "Source lengths.", flag_values=fv)
  flags.DEFINE_integer("tgt_len", 20, "Target length (decoder steps).", lower_bound=1,
                       flag_values=fv)
  flags.DEFINE_integer("batch_size", 32, "Batch size (batching.batch_size).", lower_bound=1,
                       flag_values=fv)
  flags.DEFINE_integer("emb_dim", 32, "model.emb_dim.", lower_bound=1, flag_values=fv)
  flags.DEFINE_integer("hidden_dim", 64, "model.hidden_dim.", lower_bound=1, flag_values=fv)
  flags.DEFINE_enum("decoder", "luong", ["luong", "bahdanau"], "model.decoder.", flag_values=fv)
  flags.DEFINE_string("attention", "general", "model.attention (a score function).",
                      flag_values=fv)
  flags.DEFINE_integer("local_window", 10, "model.local_window: D of local_m / local_p.",
                       lower_bound=0, flag_values=fv)
  flags.DEFINE_list("mechanisms", ["global"] + [m for m in mechanism_names() if m != "global"],
                    "Mechanisms (model.mechanism) to time; the ratios divide by global.",
                    flag_values=fv)
  flags.DEFINE_integer("repeats", 5, "Timed runs per measurement (their median).",
                       lower_bound=1, flag_values=fv)


def parse_flags(argv: Sequence[str] | None = None) -> flags.FlagValues:
  """The flags from ``argv`` (None: ``sys.argv[1:]``); bad flags exit 2 with one line."""
  return cli.parse(define_flags, argv, __doc__)[0]


def main(argv: Sequence[str] | None = None) -> int:
  args = parse_flags(argv)
  try:
    src_lens = [int(s) for s in args.src_lens]
  except ValueError:
    cli.fail(f"--src_lens={','.join(args.src_lens)}: not a comma-separated list of integers")
  if not src_lens or min(src_lens) < 1:
    cli.fail(f"--src_lens={','.join(args.src_lens)}: needs positive integers")
  mechanisms = list(args.mechanisms)
  for name in mechanisms:
    if name not in mechanism_names():
      cli.fail(f"--mechanisms: unknown mechanism {name!r}; valid: "
                f"{', '.join(mechanism_names())}")
  if args.attention not in score_names():
    cli.fail(f"--attention: unknown score {args.attention!r}; valid: {', '.join(score_names())}")

  print(f"device: {jax.devices()[0].device_kind}; batch {args.batch_size}, "
        f"tgt_len {args.tgt_len}, "
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
  return 0


if __name__ == "__main__":
  cli.run(main)
