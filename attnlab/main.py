"""Command line: ``python -m attnlab.main --config configs/date.py --workdir DIR``.

Kept short on purpose (as flax's examples): the logic lives in ``attnlab.training``, which is
importable and testable. ``--config`` is needed to train; eval and decode read the run's own
``config.json`` from ``--workdir`` when it is left out. Modes:

* ``--mode=train`` (default): train, evaluate, checkpoint; resumes from DIR.
* ``--mode=eval``: evaluate the best (or ``--checkpoint=latest``) checkpoint on the test split
  (``--split``); writes DIR/eval_test.json (the metrics) and DIR/eval_test_examples.jsonl, one JSON
  object per example: ``source``, ``reference``, ``hypothesis``, ``score`` (the decoder's ranking
  score), ``log_prob``, ``exact_match``, and ``sentence_bleu`` (text tasks) and
  ``alignment_error_rate`` (tasks with a true alignment) where they apply.
* ``--mode=decode``: translate lines from ``--input`` (default: stdin) and print one output per
  line, each flushed as soon as it is decoded: a Unix filter (from a pipe or a terminal every line
  is decoded as it arrives; a file, ``--input`` or ``< FILE``, in batches of
  ``batching.eval_batch_size``; a file's lines must all be UTF-8, checked before anything is
  written). ``--heatmaps=DIR2`` saves their attention heatmaps and DIR2/index.html (each decoded
  line with its heatmap; an index.html decode did not write is never replaced);
  ``--alignments=FILE`` writes one Pharaoh line per input (``i-j``: source token i - output token j,
  0-based, each output token but EOS linked to its largest attention weight);
  ``--alignment_weights=FILE`` the weights, one JSON object per input line (``attnlab.export``).
  ``--nbest=N`` (beam search, ``--config.eval.beam_size`` >= N) keeps the N best hypotheses, which
  ``--output_format=jsonl`` (stdout) and ``--scores=FILE`` write as one JSON object per input line:
  source, hypotheses (text, score, log_prob, and alignment with ``--alignments``), best first. A
  line that cannot be decoded (too long under ``eval.on_long_input=error``, not UTF-8 in a pipe)
  gets one ``error:`` line on stderr naming it and an empty output line, and decoding goes on; the
  exit status is then 2, once every line is done. These outputs are opened only once the model is
  restored and never over a file of the workdir being read or the input. A reader that stops early
  (``| head -1``) ends it quietly (141). ``--ensemble=DIR2,...`` decodes with those runs too (same
  vocabularies), as one model: ``inference.restore_for_decoding``.
* Eval and decode take ``--average=last:K`` or ``best:K``: the mean of those checkpoints' parameters
  (``attnlab.average`` writes such an average as a workdir of its own).

Exit status: 0 done; 2 bad flags, config or input (one message, no traceback; in decode, one per
failed line); 1 a non-finite loss with ``train.on_nonfinite=stop``; 128 + N when stopped by signal N
(SIGTERM, SIGINT) after saving a checkpoint: rerun to resume (a signal during start-up, the final
evaluation, eval or decode exits 143 or 130 too, with one line and nothing to save). A workdir is
held by one process at a time (train and eval take an exclusive lock; a second one exits 2 naming
the holder); rerunning a finished run is a no-op that says so.

Overrides use dotted paths: ``--config.model.attention=additive``; eval and decode take them with
``--workdir`` alone too (applied to the run's config.json: ``attnlab.run_config``). An invalid
config prints one message naming the key and exits with status 2.
"""

from __future__ import annotations

import ast
import os
import signal
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from attnlab import host_memory, run_record

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
flags.DEFINE_integer("nbest", 1, "Decode mode: keep the N best hypotheses per line (needs "
                     "--config.eval.beam_size >= N; shown by --output_format=jsonl, --scores).",
                     lower_bound=1)
flags.DEFINE_enum("output_format", "text", ["text", "jsonl"], "Decode mode: stdout as one "
                  "output line per input line (text) or one JSON object of scored hypotheses.")
flags.DEFINE_string("scores", None, "Decode mode: write the scored hypotheses, one JSON object "
                    "per input line (as --output_format=jsonl), to this file.")
flags.DEFINE_string("average", None, "Eval/decode: the mean parameters of the 'last:K' or "
                    "'best:K' (lowest validation loss) checkpoints, in place of --checkpoint.")
flags.DEFINE_list("ensemble", [], "Decode mode: more runs, sharing --workdir's vocabularies, to "
                  "decode with as one ensemble (the mean of their output probabilities).")
flags.DEFINE_string("jax_cache_dir",
                    os.environ.get("ATTNLAB_JAX_CACHE_DIR", os.path.join(
                        os.path.expanduser("~"), ".cache", "attnlab", "xla")),
                    "Persistent XLA compilation cache ('' to disable; default "
                    "$ATTNLAB_JAX_CACHE_DIR or ~/.cache/attnlab/xla): reruns, resumes, eval "
                    "and decode skip recompiling.")
flags.DEFINE_boolean("keep_host_memory", True, "Keep freed memory in the process (glibc's "
                     "malloc; attnlab.host_memory): no page faults on each step's new buffers.")
flags.mark_flags_as_required(["workdir"])  # --config: required to train; eval/decode read the run's


INTERRUPTED = "interrupted (Ctrl-C); run the same command again to resume"
TERMINATED = "stopped by SIGTERM; run the same command again to resume"


class Terminated(BaseException):
  """SIGTERM outside the training loop (which saves first: ``training.Interrupted``): raised
  where the program is, like KeyboardInterrupt for Ctrl-C, so it ends the same way."""


def _raise_terminated(signum, frame):
  raise Terminated()


def _fail(message: str) -> None:
  if "Traceback (most recent call last)" in message:
    # ml_collections embeds the config file's traceback: keep its first and last lines.
    lines = [line for line in message.splitlines() if line.strip()]
    message = f"{lines[0]} {lines[-1].strip()}"
  print(f"error: {message}", file=sys.stderr)
  sys.exit(2)


def _with_run_config(argv: list[str]) -> list[str]:
  """``argv`` with ``--config=attnlab/run_config.py:WORKDIR`` added when eval or decode gets
  ``--config.*`` overrides without ``--config`` (the overrides then apply to the run's own
  config.json); ``argv`` itself otherwise."""
  overrides = any(a.startswith("--config.") for a in argv[1:])
  if not overrides or any(a == "--config" or a.startswith("--config=") for a in argv[1:]):
    return argv
  FLAGS(argv, known_only=True)  # --workdir and --mode, leaving the overrides for later
  workdir, mode = FLAGS.workdir, FLAGS.mode
  FLAGS.unparse_flags()
  if not workdir:
    return argv  # absl's own error names the missing flag
  if mode == "train":
    _fail("--config is required for --mode=train (eval and decode read the run's own)")
  if not os.path.isdir(workdir):
    _fail(f"--workdir {workdir!r} does not exist: train there first (--mode=train)")
  if not os.path.isfile(os.path.join(workdir, run_record.CONFIG)):
    _fail(f"--workdir {workdir!r} holds no config.json to apply --config.* overrides to "
          "(not a run's folder; or pass --config)")
  from attnlab import run_config
  return [argv[0], f"--config={run_config.__file__}:{workdir}", *argv[1:]]


def parse_flags(argv):
  """absl's flag parsing, but any flag or config error exits with status 2 and no traceback."""
  try:
    return FLAGS(_with_run_config(argv))
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
  if FLAGS.ensemble and FLAGS.mode != "decode":
    _fail("--ensemble is for --mode=decode")
  if FLAGS.mode == "decode":
    _check_outputs()
  if FLAGS.heatmaps:
    if os.path.exists(FLAGS.heatmaps) and not os.path.isdir(FLAGS.heatmaps):
      _fail(f"--heatmaps {FLAGS.heatmaps!r} is a file; it names a folder for the images")
    try:
      os.makedirs(FLAGS.heatmaps, exist_ok=True)
    except OSError as e:
      _fail(f"cannot create --heatmaps {FLAGS.heatmaps!r}: {e.strerror}")


def _inside(path: str, folder: str) -> bool:
  """Whether ``path`` is ``folder`` or lies under it (symbolic links resolved)."""
  path, folder = os.path.realpath(path), os.path.realpath(folder)
  return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _check_outputs() -> None:
  """Decode's output paths never name what decode reads: a file of the workdir (its
  config.json, vocab.json, run.json, checkpoints, or any other file already there), the input,
  or each other; nor a heatmap folder that is the workdir or inside its checkpoints, or
  holds an index.html decode did not write."""
  workdir = FLAGS.workdir
  files = [(f"--{name}", path) for name in ("alignments", "alignment_weights", "scores")
           if (path := getattr(FLAGS, name))]
  for flag, path in files:
    _check_writable(path)
    if FLAGS.input and os.path.exists(path) and os.path.samefile(path, FLAGS.input):
      _fail(f"{flag} {path!r} is the --input file: name another file for the output")
    for flag_name, run in [("--workdir", workdir)] + [("--ensemble", r) for r in FLAGS.ensemble]:
      if _inside(path, run) and os.path.lexists(path):
        _fail(f"{flag} {path!r} is a file of {flag_name} {run!r}, which decode reads: "
              "name a new file (outside the run's files)")
  for k, (flag, path) in enumerate(files):
    for other, path2 in files[k + 1:]:
      if os.path.realpath(path) == os.path.realpath(path2):
        _fail(f"{flag} and {other} name the same file {path!r}")
  heatmaps = FLAGS.heatmaps
  if not heatmaps:
    return
  if os.path.realpath(heatmaps) == os.path.realpath(workdir) or any(
      _inside(heatmaps, os.path.join(workdir, d)) for d in (
          run_record.CHECKPOINTS, run_record.CHECKPOINTS + "_corrupted")):
    _fail(f"--heatmaps {heatmaps!r} is the run's own folder --workdir {workdir!r} or inside "
          f"its checkpoints: name a folder of its own, e.g. "
          f"{os.path.join(workdir, 'decoded')!r}")
  index = os.path.join(heatmaps, "index.html")
  if os.path.lexists(index) and not _is_decode_index(index):
    _fail(f"--heatmaps {heatmaps!r} already holds an index.html that decode did not write: "
          "name another folder (a page decode wrote there before is replaced)")


def _check_writable(path: str) -> None:
  """An output file that could not be opened fails now, not after the model is restored."""
  folder = os.path.dirname(os.path.abspath(path))
  problem = ("No such file or directory" if not os.path.isdir(folder) else
             "Is a directory" if os.path.isdir(path) else
             "Permission denied" if not os.access(path if os.path.exists(path) else folder,
                                                  os.W_OK) else None)
  if problem:
    _fail(f"cannot open {path!r}: {problem}")


def _is_decode_index(path: str) -> bool:
  """Whether ``path`` is a page ``--heatmaps`` wrote (``atlas.page.decode_index``)."""
  try:
    with open(path, encoding="utf-8", errors="replace") as f:
      head = f.read(4096)
  except OSError:
    return False
  return head.startswith("<!DOCTYPE html>") and "<title>attnlab decode</title>" in head


def _quiet_unraisable(hook=sys.unraisablehook):
  """An unraisable-exception hook that ends the program on a Ctrl-C or SIGTERM that landed
  where it cannot be raised (a failed checkpoint restore's own noise is held back where it
  happens: ``checkpointing.held_back``)."""
  def quiet(unraisable):
    for kind, message, status in ((KeyboardInterrupt, INTERRUPTED, 130),
                                  (Terminated, TERMINATED, 143)):
      if unraisable.exc_type is kind:
        # Ctrl-C or SIGTERM landed in a callback (JAX's garbage-collection hook), where it
        # cannot stop the program: stop it here, as one anywhere else outside the loop does.
        print(message, file=sys.stderr, flush=True)
        os._exit(status)
    hook(unraisable)
  return quiet


def main(argv):
  try:
    _main(argv)
  except KeyboardInterrupt:  # Ctrl-C outside the training loop (start-up, final evaluation)
    print(INTERRUPTED, file=sys.stderr)
    sys.exit(130)
  except Terminated:  # SIGTERM there: the same, with the shell's 128 + 15
    print(TERMINATED, file=sys.stderr)
    sys.exit(128 + signal.SIGTERM)


def _main(argv):
  if len(argv) > 1:
    _fail(f"unexpected arguments: {' '.join(argv[1:])}")
  _check_paths()
  if FLAGS.keep_host_memory:
    host_memory.keep_freed_memory()  # before JAX starts its threads
  # Imported after flag parsing so `--help` and flag errors stay fast.
  import jax

  from attnlab import summaries, training
  from attnlab.checkpointing import CheckpointMismatch
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
      result = training.evaluate_checkpoint(config, FLAGS.workdir, FLAGS.checkpoint, FLAGS.split,
                                            FLAGS.average)
      print(summaries.dumps({k: v for k, v in result.items() if not isinstance(v, dict)}))
    else:
      _decode(config, training)
  except (ConfigError, training.DataError, FileNotFoundError, WorkdirError,
          CheckpointMismatch) as e:
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
  flushed as soon as its input line is decoded. A file's lines are checked to be text first;
  the output files are opened once the model is restored, so a failure before leaves them
  untouched."""
  from attnlab import export
  from attnlab.training import inference
  if FLAGS.nbest > config.eval.beam_size:
    _fail(f"--nbest={FLAGS.nbest} needs --config.eval.beam_size={FLAGS.nbest} or more "
          f"(it is {config.eval.beam_size})")
  if FLAGS.nbest > 1 and FLAGS.output_format == "text" and not FLAGS.scores:
    _fail("--nbest shows its hypotheses with --output_format=jsonl or --scores=FILE")
  name = f"--input {FLAGS.input!r}" if FLAGS.input else "stdin"
  try:
    source = open(FLAGS.input, "rb") if FLAGS.input else sys.stdin.buffer
  except OSError as e:
    _fail(f"cannot open {e.filename!r}: {e.strerror}")
  try:
    batch_size = 1
    if export.is_regular_file(source):  # its lines are all there: check, then batch them
      start = source.tell()
      for _ in inference.text_lines(source, name):
        pass
      source.seek(start)
      batch_size = config.batching.eval_batch_size
    state, prepared = inference.restore_for_decoding(
        config, [FLAGS.workdir, *FLAGS.ensemble], FLAGS.checkpoint, FLAGS.average)
    lines, inputs = inference.text_lines(source, name, per_line=True), []
    if FLAGS.heatmaps:  # each input, for DIR/index.html
      lines = (inputs.append(line) or line for line in lines)
    _write_translations(inference.translations(state, prepared, config, lines, FLAGS.heatmaps,
                                               batch_size, FLAGS.nbest), inputs)
  finally:
    if source is not sys.stdin.buffer:
      source.close()


def _write_translations(translations, inputs: list[str]) -> None:
  """Writes each translation as it comes (stdout and the alignment files; a failed line's
  error on stderr), then the heatmaps' index.html (``inputs``: the input lines read so far);
  exits 2 at the end when a line failed."""
  from attnlab import export
  try:
    writer = export.DecodeWriter(sys.stdout, FLAGS.alignments, FLAGS.alignment_weights,
                                 FLAGS.scores, jsonl=FLAGS.output_format == "jsonl")
  except OSError as e:
    _fail(f"cannot open {e.filename!r}: {e.strerror}")
  shown, failed = [], 0  # --heatmaps: (input, output) per heatmap, for DIR/index.html
  try:
    with writer:
      for number, translation in enumerate(translations):
        if translation.error:
          failed += 1
          print(f"error: {translation.error}; its output line is empty", file=sys.stderr,
                flush=True)
        writer.write(translation)
        if FLAGS.heatmaps and translation.source:
          shown.append((inputs[number], translation.text))
    if FLAGS.heatmaps:
      from attnlab.atlas import page
      page.decode_index(FLAGS.heatmaps, shown)
  except BrokenPipeError:  # the reader left (`| head -1`): stop quietly, as Unix filters do
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit's flush
    sys.exit(128 + signal.SIGPIPE)
  if failed:  # every line was decoded or reported: the status says some failed
    sys.exit(2)


if __name__ == "__main__":
  sys.unraisablehook = _quiet_unraisable()
  # SIGTERM raises where the program is, as Ctrl-C does (the training loop installs its own
  # handler, which saves a checkpoint first, and puts this one back after).
  signal.signal(signal.SIGTERM, _raise_terminated)
  try:
    app.run(main, flags_parser=parse_flags)
  except KeyboardInterrupt:  # Ctrl-C while the flags and the config file load
    print(INTERRUPTED, file=sys.stderr)
    sys.exit(130)
  except Terminated:
    print(TERMINATED, file=sys.stderr)
    sys.exit(128 + signal.SIGTERM)
