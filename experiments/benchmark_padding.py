"""How much of a training batch is padding, and what less of it buys:
``python -m experiments.benchmark_padding``.

A training batch is the rows of one length bucket, padded to that bucket's (src_len, tgt_len)
(``attnlab.data.make_buckets``: ``batching.num_buckets`` source-length quantiles, each bucket's
target length the ``batching.tgt_quantile`` quantile of its pairs' targets). A step costs what
its padded shape costs, whatever the real tokens. For a config's training pairs and each
batching option ``num_buckets:tgt_quantile`` this prints

* the buckets, and the mean padded source and target length a training pair is computed at
  (each pair in the bucket it falls in, ``attnlab.data.batching.bucket_of``; the buckets cover
  every split, as ``attnlab.training.preparation`` builds them), with the share of those padded
  positions that hold real tokens;
* with ``--steps N``: the training loop's own steps/s at that batching (``python -m
  attnlab.main`` on the config with the option's ``batching`` fields, N steps, evaluations
  off): the mean of the log windows after the first ``--warmup`` steps, which hold the
  compilations (one per bucket).

    python -m experiments.benchmark_padding --config configs/multi30k.py \\
        --options 4:1.0,8:0.95 --steps 400 --log_every 100 --warmup 200

Options run one after the other, in the order given. Figures are for the machine they ran on
(the JSON records it and its load average); measure on an idle machine. Nothing here is a test.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence

import numpy as np
from absl import flags

from attnlab.data import build_task, make_buckets
from attnlab.data.batching import bucket_of
from attnlab.defaults import load_config_file
from experiments import benchmark_limits, cli
from experiments.benchmark import begin, define_common_flags

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse_option(text: str) -> tuple[int, float]:
  """``"8:0.95"`` -> (8, 0.95): ``batching.num_buckets`` and ``batching.tgt_quantile``."""
  try:
    buckets, quantile = text.split(":")
    num_buckets, tgt_quantile = int(buckets), float(quantile)
  except ValueError:
    raise cli.UsageError(f"--options: num_buckets:tgt_quantile, e.g. 8:0.95, got {text!r}") from None
  if num_buckets < 1 or not 0 < tgt_quantile <= 1:
    raise cli.UsageError(f"--options {text!r}: num_buckets >= 1 and tgt_quantile in (0, 1]")
  return num_buckets, tgt_quantile


def padding(train: Sequence, everything: Sequence, num_buckets: int,
            tgt_quantile: float) -> dict:
  """The buckets ``make_buckets(everything, ...)`` gives, and what each training pair of
  ``train`` is padded to: ``src_len`` / ``tgt_len`` (mean padded source tokens and decoder
  positions a pair, target + EOS), ``src_real`` / ``tgt_real`` (the share of them that are the
  pair's own), and ``tokens``: mean padded (source + decoder) positions a pair."""
  buckets = make_buckets(everything, num_buckets, tgt_quantile=tgt_quantile)
  src = np.array([len(e.src) for e in train])
  tgt = np.array([len(e.tgt) + 1 for e in train])
  which = np.array([bucket_of(s, buckets, t) for s, t in zip(src, tgt)])
  padded_src = np.array([buckets[b][0] for b in which])
  padded_tgt = np.array([buckets[b][1] for b in which])
  return {"num_buckets": num_buckets, "tgt_quantile": tgt_quantile,
          "buckets": [list(b) for b in buckets],
          "pairs": [int(np.sum(which == b)) for b in range(len(buckets))],
          "src_len": float(padded_src.mean()), "tgt_len": float(padded_tgt.mean()),
          "src_real": float(src.sum() / padded_src.sum()),
          "tgt_real": float(tgt.sum() / padded_tgt.sum()),
          "tokens": float((padded_src + padded_tgt).mean())}


def train_rate(config: str, num_buckets: int, tgt_quantile: float, steps: int, log_every: int,
               warmup: int, extra: Sequence[str] = ()) -> dict:
  """The training loop's steps/s at this batching: ``attnlab.main`` for ``steps`` steps in a
  temporary workdir (evaluations and checkpoints off; stopped once the last training window is
  logged), the mean of the ``steps_per_second`` of the windows that start at ``warmup`` or
  later."""
  with tempfile.TemporaryDirectory(prefix="attnlab-padding-") as workdir:
    metrics = os.path.join(workdir, "metrics.jsonl")
    command = [sys.executable, "-m", "attnlab.main", "--config", config, "--workdir", workdir,
               f"--config.train.num_steps={steps}", f"--config.train.log_every={log_every}",
               f"--config.train.eval_every={10 * steps}",
               f"--config.train.checkpoint_every={10 * steps}",
               f"--config.batching.num_buckets={num_buckets}",
               f"--config.batching.tgt_quantile={tgt_quantile}",
               "--config.eval.test_beam_sizes=()", *extra]
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    windows = []
    while process.poll() is None:
      time.sleep(1)
      windows = _train_windows(metrics)
      if windows and windows[-1][0] >= steps:
        process.send_signal(signal.SIGTERM)
        break
    _, stderr = process.communicate()
    windows = _train_windows(metrics)
    if not windows or windows[-1][0] < steps:
      raise RuntimeError(f"attnlab.main stopped before step {steps} (exit "
                         f"{process.returncode}): {stderr.strip().splitlines()[-1:]}")
  timed = [rate for step, rate in windows if step - log_every >= warmup]
  if not timed:
    raise cli.UsageError(f"--warmup {warmup} leaves no window of {log_every} steps before "
                         f"step {steps}")
  return {"steps_per_s": float(np.mean(timed)), "windows": windows,
          "seconds": time.perf_counter() - start}


def _train_windows(path: str) -> list[tuple[int, float]]:
  """(step, steps_per_second) of each training log line of a metrics.jsonl so far."""
  if not os.path.exists(path):
    return []
  with open(path, encoding="utf-8") as f:
    lines = [json.loads(line) for line in f if line.strip().endswith("}")]
  return [(d["step"], d["steps_per_second"]) for d in lines
          if d.get("split") == "train" and "steps_per_second" in d]


def define_flags(fv: flags.FlagValues) -> None:
  flags.DEFINE_string("config", "configs/multi30k.py", "Config file (path[:argument]).",
                      flag_values=fv)
  flags.DEFINE_list("options", ["4:1.0", "8:0.95"],
                    "Batching options, num_buckets:tgt_quantile each.", flag_values=fv)
  flags.DEFINE_integer("steps", 0, "Training steps timed per option (0: padding only).",
                       lower_bound=0, flag_values=fv)
  flags.DEFINE_integer("log_every", 100, "Steps a timed window.", lower_bound=1,
                       flag_values=fv)
  flags.DEFINE_integer("warmup", 200, "Steps left out of the timing (the compilations).",
                       lower_bound=0, flag_values=fv)
  define_common_flags(fv)


def parse_flags(argv: Sequence[str] | None = None) -> flags.FlagValues:
  """The flags from ``argv`` (None: ``sys.argv[1:]``); bad flags exit 2 with one line."""
  return cli.parse(define_flags, argv, __doc__)[0]


def main(argv: Sequence[str] | None = None) -> dict:
  args = parse_flags(argv)
  try:
    return run(args)
  except cli.UsageError as e:
    cli.fail(e)


def run(args: flags.FlagValues) -> dict:
  """The benchmark of ``main``'s parsed flags; bad input raises ``cli.UsageError``."""
  options = [parse_option(o) for o in args.options]
  if not options:
    raise cli.UsageError("--options: give at least one num_buckets:tgt_quantile")
  path, _, arg = args.config.partition(":")
  try:
    config = load_config_file(path).get_config(arg or None)
    task = build_task(config.data)
  except (OSError, ValueError) as e:
    raise cli.UsageError(f"--config {args.config}: {e}") from None
  out = begin(args)
  result = {**benchmark_limits.machine(), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            "config": args.config, "batch_size": config.batching.batch_size, "rows": []}
  everything = task.train + task.valid + task.test
  print(f"{args.config}: {len(task.train)} training pairs, batches of "
        f"{config.batching.batch_size}")
  print("buckets:tgt_q  padded src x tgt a pair  real src / tgt  steps/s  buckets")
  for num_buckets, tgt_quantile in options:
    row = padding(task.train, everything, num_buckets, tgt_quantile)
    if args.steps:
      host = "--keep_host_memory" if args.keep_host_memory else "--nokeep_host_memory"
      row.update(train_rate(args.config, num_buckets, tgt_quantile, args.steps,
                            args.log_every, args.warmup, extra=[host]))
    result["rows"].append(row)
    rate = f"{row['steps_per_s']:7.2f}" if args.steps else "      -"
    print(f"{num_buckets:7d}:{tgt_quantile:<5g} {row['src_len']:10.1f} x {row['tgt_len']:5.1f}"
          f"      {row['src_real']:5.0%} / {row['tgt_real']:4.0%}  {rate}  "
          f"{' '.join(f'{s}x{t}' for s, t in row['buckets'])}", flush=True)
  if args.steps and len(options) > 1:
    first = result["rows"][0]["steps_per_s"]
    for row in result["rows"][1:]:
      print(f"{row['num_buckets']}:{row['tgt_quantile']:g} trains "
            f"{row['steps_per_s'] / first:.2f}x as many steps a second as "
            f"{options[0][0]}:{options[0][1]:g}")
  with open(out, "w", encoding="utf-8") as f:
    json.dump(result, f, indent=1)
  print(out)
  return result


if __name__ == "__main__":
  cli.run(main)
