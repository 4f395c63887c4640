"""attnlab against PyTorch eager, side by side: ``python -m experiments.benchmark_torch``.

    python -m experiments.benchmark_torch                         # every shape, float32
    python -m experiments.benchmark_torch --bf16 --out torch.json  # and bfloat16 rows
    python -m experiments.benchmark_torch --quick                 # a smoke run (seconds)

For each shape of ``experiments.benchmark_limits.SHAPES`` (the configs' own model: cell,
bidirectional encoder, decoder style, score, widths, dropout, label smoothing; at their batch,
lengths and vocabularies), the same model written in PyTorch as a user would write it: an
``nn.Embedding``, an ``nn.GRU`` / ``nn.LSTM`` bidirectional encoder, a dense bridge from its
final states, a decoder looping over the target steps in Python with an ``nn.GRUCell`` /
``nn.LSTMCell`` (Bahdanau: additive attention with s_{t-1}, readout tanh(W [s_t; c_t; y_{t-1}]);
Luong: general attention with h_t, input feeding, h~_t = tanh(W_c [c_t; h_t])), the output
layer over every step at once, cross-entropy, gradient clipping (global norm) and Adam. Both
sides train on one random full batch (no padding).

Each figure is optimizer steps/s, the median of ``--rounds`` rounds of ``--steps`` steps
(more for small shapes, so that a round lasts ``--min_round_s``), the two sides interleaved (a
PyTorch round, then an attnlab round, ...) so both see the same load; attnlab's side is
``benchmark_limits.train_step`` (one jitted, compiled step, dispatched once per step).
``--bf16`` adds rows in bfloat16: ``torch.autocast("cpu", dtype=torch.bfloat16)`` around the
forward pass and loss beside attnlab's ``model.dtype=bfloat16`` (float32 parameters and
optimizer on both sides). PyTorch uses as many threads as the process has cores
(``torch.set_num_threads``) unless ``--torch_threads`` says otherwise: on a busy machine its
OpenMP threads wait on each other (docs/benchmark.md).

Beside each row, both libraries' measured GFLOP/s at the step's dominant product (the output
layer, ``[batch * tgt_len, hidden] x [hidden, vocab]``) in the row's dtype: what each gets from
the CPU's matmul units (AMX for bfloat16, where the library uses it).

Prints a table (shape, dtype, torch steps/s, attnlab steps/s, attnlab / torch) and writes JSON
(``--out``, refused if it exists; default a new file in the temporary directory) with the
versions, thread count, CPU model and XLA_FLAGS. PyTorch is not a dependency of attnlab:
without it the command stops with one line saying how to install it (exit 2). Figures are for
the machine they ran on, under whatever else it was running. Nothing here is a test.
"""

from __future__ import annotations

import json
import math
import statistics
import time
import types
from collections.abc import Sequence

from absl import flags

from experiments import benchmark_limits, cli
from experiments.benchmark import begin, define_common_flags

try:
  import torch
  from torch import nn
except ImportError:  # optional: main() says how to install it
  torch = None
  nn = types.SimpleNamespace(Module=object)

INSTALL = ("PyTorch is not installed: pip install torch --index-url "
           "https://download.pytorch.org/whl/cpu (or pip install -e .[torch])")
# --quick: the seed's small shape, a batch of 8, 2 steps a round.
QUICK_SHAPE = ("date", 8)


class Encoder(nn.Module):
  """Embedding -> bidirectional GRU / LSTM. ``src`` [batch, src_len] -> outputs
  [batch, src_len, 2 hidden] and the bridge's initial decoder state(s) [batch, hidden]."""

  def __init__(self, vocab: int, emb: int, hidden: int, cell: str, dropout: float):
    super().__init__()
    self.cell = cell
    self.embed = nn.Embedding(vocab, emb, padding_idx=0)
    self.dropout = nn.Dropout(dropout)
    rnn = nn.LSTM if cell == "lstm" else nn.GRU
    self.rnn = rnn(emb, hidden, batch_first=True, bidirectional=True)
    self.bridge_h = nn.Linear(2 * hidden, hidden)
    self.bridge_c = nn.Linear(2 * hidden, hidden) if cell == "lstm" else None

  def forward(self, src):
    outputs, final = self.rnn(self.dropout(self.embed(src)))
    h = final[0] if self.cell == "lstm" else final  # [2, batch, hidden]: forward, backward
    h0 = torch.tanh(self.bridge_h(torch.cat([h[0], h[1]], -1)))
    if self.cell == "lstm":
      c = final[1]
      return outputs, (h0, torch.tanh(self.bridge_c(torch.cat([c[0], c[1]], -1))))
    return outputs, h0


class Decoder(nn.Module):
  """Bahdanau (additive score, attend with s_{t-1}) or Luong (general score, attend with h_t,
  input feeding) decoder, one Python loop step per target position."""

  def __init__(self, vocab: int, emb: int, hidden: int, cell: str, style: str, score: str,
               dropout: float):
    super().__init__()
    self.style, self.score, self.cell = style, score, cell
    self.embed = nn.Embedding(vocab, emb, padding_idx=0)
    self.dropout = nn.Dropout(dropout)
    cell_type = nn.LSTMCell if cell == "lstm" else nn.GRUCell
    if style == "bahdanau":
      self.rnn = cell_type(emb + 2 * hidden, hidden)
      self.readout = nn.Linear(hidden + 2 * hidden + emb, hidden)
    else:
      self.rnn = cell_type(emb + hidden, hidden)
      self.W_c = nn.Linear(2 * hidden + hidden, hidden, bias=False)
    if score == "additive":  # v^T tanh(W q + U k + b)
      self.W = nn.Linear(hidden, hidden, bias=False)
      self.U = nn.Linear(2 * hidden, hidden)
      self.v = nn.Linear(hidden, 1, bias=False)
    else:  # general: q^T W_a k, computed as (W_a^T q) . k
      self.W_a = nn.Linear(hidden, 2 * hidden, bias=False)
    self.out = nn.Linear(hidden, vocab)

  def attend(self, query, keys, projected):
    """query [batch, hidden], keys [batch, src_len, 2 hidden] -> context [batch, 2 hidden]."""
    if self.score == "additive":
      scores = self.v(torch.tanh(self.W(query)[:, None] + projected))[..., 0]
    else:
      scores = torch.bmm(keys, self.W_a(query)[:, :, None])[..., 0]
    weights = torch.softmax(scores, -1)  # [batch, src_len]
    return torch.bmm(weights[:, None], keys)[:, 0]

  def forward(self, tgt_in, keys, state):
    """tgt_in [batch, tgt_len] -> logits [batch, tgt_len, vocab]."""
    emb = self.dropout(self.embed(tgt_in))
    projected = self.U(keys) if self.score == "additive" else None  # once per source
    hidden = lambda s: s[0] if self.cell == "lstm" else s  # noqa: E731
    feed = keys.new_zeros(keys.shape[0], keys.shape[2] // 2)  # h~_0 = 0 (Luong's input feed)
    features = []
    for t in range(tgt_in.shape[1]):
      if self.style == "bahdanau":
        context = self.attend(hidden(state), keys, projected)
        state = self.rnn(torch.cat([emb[:, t], context], -1), state)
        features.append(torch.cat([hidden(state), context, emb[:, t]], -1))
      else:
        state = self.rnn(torch.cat([emb[:, t], feed], -1), state)
        context = self.attend(hidden(state), keys, projected)
        feed = torch.tanh(self.W_c(torch.cat([context, hidden(state)], -1)))
        features.append(feed)
    features = torch.stack(features, 1)  # [batch, tgt_len, d]
    if self.style == "bahdanau":
      features = torch.tanh(self.readout(features))
    return self.out(self.dropout(features))


class Seq2Seq(nn.Module):
  """Encoder + decoder of one attnlab config's model section."""

  def __init__(self, model, src_vocab: int, tgt_vocab: int):
    super().__init__()
    if model.decoder not in ("bahdanau", "luong") or not model.bidirectional:
      raise ValueError(f"no PyTorch twin of decoder {model.decoder!r} "
                       f"(bidirectional={model.bidirectional})")
    args = (model.emb_dim, model.hidden_dim, model.cell)
    self.encoder = Encoder(src_vocab, *args, model.dropout_rate)
    self.decoder = Decoder(tgt_vocab, *args, model.decoder, model.attention, model.dropout_rate)

  def forward(self, src, tgt_in):
    keys, state = self.encoder(src)
    return self.decoder(tgt_in, keys, state)


def torch_step(name: str, dtype: str, batch: int | None = None):
  """PyTorch's train step at shape ``name``: returns ``run(steps)``, which takes that many
  optimizer steps on one random batch (autocast to bfloat16 when ``dtype`` is bfloat16)."""
  config = benchmark_limits.config_of(name, "float32")
  _, _, full_batch, src_len, tgt_len, src_vocab, tgt_vocab = benchmark_limits.SHAPES[name]
  data = benchmark_limits.random_batch(batch or full_batch, src_len, tgt_len, src_vocab,
                                       tgt_vocab)
  src, tgt_in, tgt_out = (torch.from_numpy(data[k]).long() for k in ("src", "tgt_in", "tgt_out"))
  torch.manual_seed(0)
  model = Seq2Seq(config.model, src_vocab, tgt_vocab).train()
  optimizer = torch.optim.Adam(model.parameters(), lr=config.train.learning_rate)
  loss_fn = nn.CrossEntropyLoss(ignore_index=0, label_smoothing=config.train.label_smoothing)
  autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bfloat16")

  def run(steps: int) -> None:
    for _ in range(steps):
      optimizer.zero_grad(set_to_none=True)
      with autocast:
        logits = model(src, tgt_in)
        loss = loss_fn(logits.reshape(-1, tgt_vocab).float(), tgt_out.reshape(-1))
      loss.backward()
      nn.utils.clip_grad_norm_(model.parameters(), config.train.grad_clip)
      optimizer.step()
    loss.item()  # eager already waited; the same host sync as attnlab's

  run(1)  # warm-up: allocator, oneDNN primitives
  return run


def torch_matmul(m: int, k: int, n: int, dtype: str, rounds: int = 5, reps: int = 10) -> float:
  """PyTorch's measured GFLOP/s of ``[m, k] x [k, n]`` in ``dtype`` (the anchor beside
  ``benchmark_limits.matmul_limit``: oneDNN, on AMX for bfloat16 where the CPU has it)."""
  generator = torch.Generator().manual_seed(0)
  a, b = (torch.randn(shape, generator=generator).to(getattr(torch, dtype))
          for shape in ((m, k), (k, n)))
  a @ b  # warm-up
  times = []
  for _ in range(rounds):
    start = time.perf_counter()
    for _ in range(reps):
      a @ b
    times.append(time.perf_counter() - start)
  return 2.0 * m * k * n * reps / statistics.median(times) / 1e9


def interleaved(runs: dict, steps: int, rounds: int) -> dict:
  """Steps/s of each of ``runs`` ({name: run(steps)}), the median of ``rounds`` rounds taken
  in turn (one round of each, then the next), so both sides see the same load."""
  times = {name: [] for name in runs}
  for _ in range(rounds):
    for name, run in runs.items():
      start = time.perf_counter()
      run(steps)
      times[name].append(time.perf_counter() - start)
  return {name: steps / statistics.median(t) for name, t in times.items()}


def round_steps(runs: dict, steps: int, min_seconds: float) -> int:
  """Steps per round: ``steps``, or more so that a round of the slower side lasts at least
  ``min_seconds`` (a round of a few milliseconds measures the machine's noise)."""
  slowest = 0.0
  for run in runs.values():
    start = time.perf_counter()
    run(1)
    slowest = max(slowest, time.perf_counter() - start)
  return max(steps, math.ceil(min_seconds / max(slowest, 1e-6)))


def bench_pair(name: str, dtype: str, steps: int, rounds: int, batch: int | None = None,
               min_seconds: float = 0.0) -> dict:
  """One row: PyTorch eager and attnlab at shape ``name`` in ``dtype``, side by side, at least
  ``steps`` steps and ``min_seconds`` a round."""
  _, _, full_batch, src_len, tgt_len, src_vocab, tgt_vocab = benchmark_limits.SHAPES[name]
  attnlab_step = benchmark_limits.train_step(name, dtype, batch)
  runs = {"torch": torch_step(name, dtype, batch), "attnlab": attnlab_step.run}
  steps = round_steps(runs, steps, min_seconds)
  rates = interleaved(runs, steps, rounds)
  # The step's dominant product, the output layer [batch * tgt_len, hidden] x [hidden, vocab].
  product = [(batch or full_batch) * tgt_len, attnlab_step.config.model.hidden_dim, tgt_vocab]
  return {"shape": name, "dtype": dtype, "batch": batch or full_batch, "src_len": src_len,
          "tgt_len": tgt_len, "src_vocab": src_vocab, "tgt_vocab": tgt_vocab,
          "steps": steps, "rounds": rounds, "torch_steps_per_s": rates["torch"],
          "attnlab_steps_per_s": rates["attnlab"], "ratio": rates["attnlab"] / rates["torch"],
          "attnlab_gflop_per_step": attnlab_step.flop / 1e9, "output_matmul": product,
          "torch_matmul_gflop_per_s": torch_matmul(*product, dtype),
          "xla_matmul_gflop_per_s": benchmark_limits.matmul_limit(*product, dtype)}


def define_flags(fv: flags.FlagValues) -> None:
  flags.DEFINE_list("shapes", list(benchmark_limits.SHAPES),
                    f"Shapes: {', '.join(benchmark_limits.SHAPES)}.", flag_values=fv)
  flags.DEFINE_boolean("bf16", False, "Also bfloat16 rows: torch.autocast(cpu, bfloat16) "
                       "beside attnlab's model.dtype=bfloat16.", flag_values=fv)
  flags.DEFINE_integer("steps", 5, "Steps per timed round.", lower_bound=1, flag_values=fv)
  flags.DEFINE_float("min_round_s", 2.0, "Seconds a round lasts at least (more steps for "
                     "small shapes).", lower_bound=0.0, flag_values=fv)
  flags.DEFINE_integer("rounds", 3, "Timed rounds per side, interleaved (the median is "
                       "reported).", lower_bound=1, flag_values=fv)
  flags.DEFINE_integer("torch_threads", 0, "torch.set_num_threads (0: the process's cores; "
                       "on a busy machine fewer can be much faster, docs/benchmark.md).",
                       lower_bound=0, flag_values=fv)
  flags.DEFINE_boolean("quick", False, f"A smoke run: shape {QUICK_SHAPE[0]} at batch "
                       f"{QUICK_SHAPE[1]}, 2 steps, 1 round.", flag_values=fv)
  define_common_flags(fv)


def parse_flags(argv: Sequence[str] | None = None) -> flags.FlagValues:
  """The flags from ``argv`` (None: ``sys.argv[1:]``); bad flags exit 2 with one line."""
  return cli.parse(define_flags, argv, __doc__)[0]


def main(argv: Sequence[str] | None = None) -> dict:
  args = parse_flags(argv)
  if torch is None:
    cli.fail(INSTALL)
  unknown = [s for s in args.shapes if s not in benchmark_limits.SHAPES]
  if unknown or not args.shapes:
    cli.fail(f"--shapes: valid {', '.join(benchmark_limits.SHAPES)}; got "
             f"{','.join(args.shapes) or '(none)'}")
  shapes, batch, steps, rounds = args.shapes, None, args.steps, args.rounds
  if args.quick:
    shapes, batch, steps, rounds = [QUICK_SHAPE[0]], QUICK_SHAPE[1], 2, 1
  out = begin(args)
  torch.set_num_threads(args.torch_threads or benchmark_limits.cores())
  result = {**benchmark_limits.machine(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "quick": args.quick, "rows": []}
  print(f"{result['cpu']}, {result['cores']} cores; torch {result['torch']} "
        f"({result['torch_threads']} threads), jax {result['jax']}")
  print("shape              dtype     torch steps/s  attnlab steps/s  attnlab/torch   "
        "output matmul GFLOP/s: torch  XLA")
  for name in shapes:
    for dtype in ("float32", "bfloat16") if args.bf16 else ("float32",):
      row = bench_pair(name, dtype, steps, rounds, batch,
                       0.0 if args.quick else args.min_round_s)
      result["rows"].append(row)
      print(f"{name:18s} {dtype:8s} {row['torch_steps_per_s']:14.2f} "
            f"{row['attnlab_steps_per_s']:16.2f} {row['ratio']:13.2f}x "
            f"{row['torch_matmul_gflop_per_s']:28.0f} {row['xla_matmul_gflop_per_s']:5.0f}",
            flush=True)
  with open(out, "w", encoding="utf-8") as f:
    json.dump(result, f, indent=1)
  print(out)
  return result


if __name__ == "__main__":
  cli.run(main)
