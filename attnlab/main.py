"""Command line: ``python -m attnlab.main --config configs/date.py --workdir DIR``.

Kept short on purpose (as flax's examples): the logic lives in ``attnlab.training``,
which is importable and testable. ``--config`` is needed to train; eval and decode read the
run's own ``config.json`` from ``--workdir`` when it is left out. Modes:

* ``--mode=train`` (default): train, evaluate, checkpoint; resumes from DIR.
* ``--mode=eval``: evaluate the best (or ``--checkpoint=latest``) checkpoint on
  the test split (``--split``); writes DIR/eval_test.json (the metrics) and
  DIR/eval_test_examples.jsonl, one JSON object per example: ``source``, ``reference``,
  ``hypothesis``, ``score`` (the decoder's ranking score), ``log_prob``, ``exact_match``,
  and ``sentence_bleu`` (text tasks) and ``alignment_error_rate`` (tasks with a true
  alignment) where they apply.
* ``--mode=decode``: translate lines from ``--input`` (default: stdin) and print
  one output per line, each flushed as soon as it is decoded: a Unix filter (from a pipe
  or a terminal every line is decoded as it arrives; a file, ``--input`` or ``< FILE``, in
  batches of ``batching.eval_batch_size``). ``--heatmaps=DIR2`` saves their attention
  heatmaps and DIR2/index.html (each decoded line with its heatmap); ``--alignments=FILE``
  writes one Pharaoh line per input (``i-j``: source token i - output token j, 0-based, each
  output token but EOS linked to its largest attention weight); ``--alignment_weights=FILE``
  the weights, one JSON object per input line (``attnlab.export``). A reader that stops early
  (``| head -1``) ends it quietly (141).

Exit status: 0 done; 2 bad flags, config or input (one message, no traceback);
1 a non-finite loss with ``train.on_nonfinite=stop``; 128 + N when stopped by
signal N (SIGTERM, SIGINT) after saving a checkpoint: rerun to resume (Ctrl-C during
start-up or the final evaluation exits 130 too, with nothing to save). A workdir is held
by one process at a time (train and eval take an exclusive lock; a second one exits 2
naming the holder); rerunning a finished run is a no-op that says so.

Overrides use dotted paths: ``--config.model.attention=additive``. An invalid
config prints one message naming the key and exits with status 2.
"""

from __future__ import annotations

import ast
import logging as logging_module
import os
import signal
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
flags.DEFINE_string("alignments", None, "Decode mode: write one Pharaoh line ('i-j': source "
                    "token i, output token j, 0-based) per input line to this file.")
flags.DEFINE_string("alignment_weights", None, "Decode mode: write the attention weights, one "
                    "JSON object per input line ({source, target, weights}), to this file.")
flags.DEFINE_string("jax_cache_dir",
                    os.environ.get("ATTNLAB_JAX_CACHE_DIR",
                                   os.path.join(os.path.expanduser("~"), ".cache", "attnlab", "xla")),
                    "Persistent XLA compilation cache ('' to disable; default "
                    "$ATTNLAB_JAX_CACHE_DIR or ~/.cache/attnlab/xla): reruns, resumes, eval "
                    "and decode skip recompiling.")
flags.mark_flags_as_required(["workdir"])  # --config: required to train; eval/decode read the run's


INTERRUPTED = "interrupted (Ctrl-C); run the same command again to resume"


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
  except SyntaxError as e:  # the config file is not Python
    _fail(f"config file {e.filename}:{e.lineno}: {e.msg}")
  except Exception as e:  # noqa: BLE001  the config file raised while loading
    _fail(f"the config file raised {type(e).__name__}: {' '.join(str(e).split())}")


def _check_paths() -> None:
  """Flags naming files: checked before anything runs, so no work is lost to a typo."""
  if FLAGS.mode == "decode" and FLAGS.input and not os.path.isfile(FLAGS.input):
    _fail(f"--input {FLAGS.input!r} is not a file" if os.path.exists(FLAGS.input)
          else f"--input {FLAGS.input!r} does not exist")
  if FLAGS.heatmaps:
    if os.path.exists(FLAGS.heatmaps) and not os.path.isdir(FLAGS.heatmaps):
      _fail(f"--heatmaps {FLAGS.heatmaps!r} is a file; it names a folder for the images")
    try:
      os.makedirs(FLAGS.heatmaps, exist_ok=True)
    except OSError as e:
      _fail(f"cannot create --heatmaps {FLAGS.heatmaps!r}: {e.strerror}")


def _quiet_unraisable(hook=sys.unraisablehook):
  """An unraisable-exception hook that drops the harmless 'Event loop is closed' noise of
  tensorstore callbacks after a failed checkpoint restore (one warning line is enough)."""
  def quiet(unraisable):
    from attnlab import checkpointing
    if unraisable.exc_type is KeyboardInterrupt:
      # Ctrl-C landed in a callback (JAX's garbage-collection hook), where it cannot stop
      # the program: stop it here, as a Ctrl-C anywhere else outside the loop does.
      print(INTERRUPTED, file=sys.stderr, flush=True)
      os._exit(130)
    if not checkpointing.is_closed_loop_noise(unraisable.exc_type, unraisable.exc_value):
      hook(unraisable)
  return quiet


def main(argv):
  try:
    _main(argv)
  except KeyboardInterrupt:  # Ctrl-C outside the training loop (start-up, final evaluation)
    print(INTERRUPTED, file=sys.stderr)
    sys.exit(130)


def _main(argv):
  if len(argv) > 1:
    _fail(f"unexpected arguments: {' '.join(argv[1:])}")
  _check_paths()
  from attnlab.checkpointing import DropFailedRestoreTasks
  logging_module.getLogger("asyncio").addFilter(DropFailedRestoreTasks())
  # Imported after flag parsing so `--help` and flag errors stay fast.
  import jax

  from attnlab import summaries, training
  from attnlab.config import ConfigError, validate
  from attnlab.training import WorkdirError

  if not FLAGS["verbosity"].present:
    # orbax and jax log every checkpoint operation at INFO; -v 0 shows them.
    logging.set_verbosity(logging.WARNING)
  if FLAGS.jax_cache_dir:
    jax.config.update("jax_compilation_cache_dir", FLAGS.jax_cache_dir)
  config = FLAGS.config
  try:
    if config is None:  # eval / decode from the workdir alone: the run's own config.json
      if FLAGS.mode == "train":
        _fail("--config is required for --mode=train (eval and decode read the run's own)")
      config = training.load_config(FLAGS.workdir)
    validate(config)
  except ConfigError as e:
    _fail(str(e))
  except OSError as e:  # config_flags defers a missing config file's error to first use
    _fail(" ".join(str(e).split()))
  except WorkdirError as e:
    _fail(str(e))
  from attnlab import parallel
  parallel.initialize(config)  # jax.distributed if configured: before any device is used
  logging.info("JAX process %d/%d, devices: %s", jax.process_index(), jax.process_count(),
               jax.devices())
  try:
    if FLAGS.mode == "train":
      summary = training.train_and_evaluate(config, FLAGS.workdir)
      print(summaries.dumps({k: summary[k] for k in ("step", "best_step", "wall_time_s")} |
                       {"test_" + k: v for k, v in summary["test"].items()
                        if isinstance(v, (int, float))}))
    elif FLAGS.mode == "eval":
      result = training.evaluate_checkpoint(config, FLAGS.workdir, FLAGS.checkpoint, FLAGS.split)
      print(summaries.dumps({k: v for k, v in result.items() if not isinstance(v, dict)}))
    else:
      _decode(config, training)
  except (ConfigError, training.DataError, FileNotFoundError, WorkdirError) as e:
    _fail(str(e))
  except ValueError as e:
    if FLAGS.mode != "decode":
      raise
    _fail(str(e))  # bad decode input: a message, not a traceback
  except training.NonFiniteError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(1)
  except training.Interrupted as e:
    print(str(e), file=sys.stderr)
    sys.exit(128 + e.signum)  # the shell's convention for "ended by signal N"


def _decode(config, training) -> None:
  """--mode=decode as a Unix filter: each output line (and its alignment lines) is written and
  flushed as soon as its input line is decoded."""
  from attnlab import export
  try:
    source = open(FLAGS.input, encoding="utf-8") if FLAGS.input else sys.stdin
    writer = export.DecodeWriter(sys.stdout, FLAGS.alignments, FLAGS.alignment_weights)
  except OSError as e:
    _fail(f"cannot open {e.filename!r}: {e.strerror}")
  batch_size = config.batching.eval_batch_size if export.is_regular_file(source) else 1
  lines = (line.rstrip("\r\n") for line in source)
  inputs, shown = [], []  # --heatmaps: (input, output) per heatmap, for DIR/index.html
  if FLAGS.heatmaps:
    lines = (inputs.append(line) or line for line in lines)
  try:
    with writer:
      for number, translation in enumerate(training.decode_stream(
          config, FLAGS.workdir, lines, FLAGS.checkpoint, FLAGS.heatmaps, batch_size)):
        writer.write(translation)
        if FLAGS.heatmaps and translation.source:
          shown.append((inputs[number], translation.text))
    if FLAGS.heatmaps:
      from attnlab.atlas import page
      page.decode_index(FLAGS.heatmaps, shown)
  except BrokenPipeError:  # the reader left (`| head -1`): stop quietly, as Unix filters do
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit's flush
    sys.exit(128 + signal.SIGPIPE)
  finally:
    if source is not sys.stdin:
      source.close()


if __name__ == "__main__":
  sys.unraisablehook = _quiet_unraisable()
  try:
    app.run(main, flags_parser=parse_flags)
  except KeyboardInterrupt:  # Ctrl-C while the flags and the config file load
    print(INTERRUPTED, file=sys.stderr)
    sys.exit(130)
