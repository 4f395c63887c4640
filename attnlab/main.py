"""Command line: ``python -m attnlab.main --config configs/date.py --workdir DIR``.

Kept short on purpose (as flax's examples): the logic lives in ``attnlab.train``,
which is importable and testable. Modes:

* ``--mode=train`` (default): train, evaluate, checkpoint; resumes from DIR.
* ``--mode=eval``: evaluate the best (or ``--checkpoint=latest``) checkpoint on
  the test split (``--split``); writes DIR/eval_test.json.
* ``--mode=decode``: translate lines from ``--input`` (default: stdin) and print
  one output per line; ``--heatmaps=DIR2`` saves their attention heatmaps.

Exit status: 0 done; 2 bad flags, config or input (one message, no traceback);
1 a non-finite loss with ``train.on_nonfinite=stop``; 128 + N when stopped by
signal N (SIGTERM, SIGINT) after saving a checkpoint: rerun to resume.

Overrides use dotted paths: ``--config.model.attention=additive``. An invalid
config prints one message naming the key and exits with status 2.
"""

from __future__ import annotations

import ast
import json
import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Experiment config file (configs/*.py).",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "Directory holding the run's checkpoints and outputs.")
flags.DEFINE_enum("mode", "train", ["train", "eval", "decode"], "What to do.")
flags.DEFINE_enum("checkpoint", "best", ["best", "latest"], "Checkpoint for eval/decode.")
flags.DEFINE_enum("split", "test", ["train", "valid", "test"], "Split for --mode=eval.")
flags.DEFINE_string("input", None, "Decode mode: file of source lines (default: stdin).")
flags.DEFINE_string("heatmaps", None, "Decode mode: write attention heatmaps to this folder.")
flags.DEFINE_string("jax_cache_dir",
                    os.environ.get("ATTNLAB_JAX_CACHE_DIR",
                                   os.path.join(os.path.expanduser("~"), ".cache", "attnlab", "xla")),
                    "Persistent XLA compilation cache ('' to disable; default "
                    "$ATTNLAB_JAX_CACHE_DIR or ~/.cache/attnlab/xla): reruns, resumes, eval "
                    "and decode skip recompiling.")
flags.mark_flags_as_required(["config", "workdir"])


def _fail(message: str) -> None:
  if "Traceback (most recent call last)" in message:
    # ml_collections embeds the config file's traceback: keep its first and last lines.
    lines = [line for line in message.splitlines() if line.strip()]
    message = f"{lines[0]} {lines[-1].strip()}"
  print(f"error: {message}", file=sys.stderr)
  sys.exit(2)


def parse_flags(argv):
  """absl's flag parsing, but any flag or config error exits with status 2 and no traceback."""
  try:
    return FLAGS(argv)
  except flags.Error as e:
    _fail(str(e))
  except (KeyError, AttributeError, TypeError, ValueError) as e:  # bad --config.* override
    detail = str(e.args[0] if e.args else e)
    while detail[:1] in "'\"":  # KeyError messages arrive repr-quoted (sometimes twice)
      try:
        detail = str(ast.literal_eval(detail))
      except (ValueError, SyntaxError):
        break
    _fail(f"bad config override: unknown key {' '.join(detail.split())}")
  except OSError as e:  # the config file itself is missing or unreadable
    _fail(" ".join(str(e).split()))


def main(argv):
  if len(argv) > 1:
    _fail(f"unexpected arguments: {' '.join(argv[1:])}")
  # Imported after flag parsing so `--help` and flag errors stay fast.
  import jax

  from attnlab import train
  from attnlab.config import ConfigError, validate

  if not FLAGS["verbosity"].present:
    # orbax and jax log every checkpoint operation at INFO; -v 0 shows them.
    logging.set_verbosity(logging.WARNING)
  if FLAGS.jax_cache_dir:
    jax.config.update("jax_compilation_cache_dir", FLAGS.jax_cache_dir)
  config = FLAGS.config
  try:
    validate(config)
  except ConfigError as e:
    _fail(str(e))
  except OSError as e:  # config_flags defers a missing config file's error to first use
    _fail(" ".join(str(e).split()))
  from attnlab import parallel
  parallel.initialize(config)  # jax.distributed if configured: before any device is used
  logging.info("JAX process %d/%d, devices: %s", jax.process_index(), jax.process_count(),
               jax.devices())
  try:
    if FLAGS.mode == "train":
      summary = train.train_and_evaluate(config, FLAGS.workdir)
      print(json.dumps({k: summary[k] for k in ("step", "best_step", "wall_time_s")} |
                       {"test_" + k: v for k, v in summary["test"].items()
                        if isinstance(v, (int, float))}))
    elif FLAGS.mode == "eval":
      result = train.evaluate_checkpoint(config, FLAGS.workdir, FLAGS.checkpoint, FLAGS.split)
      print(json.dumps({k: v for k, v in result.items() if not isinstance(v, dict)}))
    else:
      if FLAGS.input:
        with open(FLAGS.input, encoding="utf-8") as f:
          lines = f.read().splitlines()
      else:
        lines = sys.stdin.read().splitlines()
      for output in train.decode_lines(config, FLAGS.workdir, lines, FLAGS.checkpoint,
                                       FLAGS.heatmaps):
        print(output)
  except (ConfigError, train.DataError, FileNotFoundError) as e:
    _fail(str(e))
  except ValueError as e:
    if FLAGS.mode != "decode":
      raise
    _fail(str(e))  # bad decode input: a message, not a traceback
  except train.NonFiniteError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(1)
  except train.Interrupted as e:
    print(str(e), file=sys.stderr)
    sys.exit(128 + e.signum)  # the shell's convention for "ended by signal N"


if __name__ == "__main__":
  app.run(main, flags_parser=parse_flags)
