"""The run record: what a run and a sweep write, read and written here and nowhere else.

A run's workdir (``attnlab.main --workdir``)::

    config.json           the resolved config                                  CONFIG
    vocab.json            vocabularies, tokenizers and their checksum          VOCAB
    run.json              shapes decode needs without the dataset              RUN
    checkpoints/          orbax checkpoints                                    CHECKPOINTS
    metrics.jsonl         one object per logged step and split                 METRICS
    summary.json          final metrics; there once the run finished           SUMMARY
    test_outcomes.jsonl   one object per test sentence                         outcomes_file()
    test_outcomes_<decoding>.jsonl  the same of another decoding (``beam5``, ``step400``)
    attention_examples.json         test examples and their attention          EXAMPLES
    seed_<k>/             seed k of a multi-seed run: its metrics.jsonl, outcomes and
                          examples (the shared files stay in the workdir)      seed_folder(k)
    .lock                 the writer's lock; {"pid", "host"} while held        LOCK
    averaged.json         a workdir of averaged checkpoints (attnlab.average): its source
                          run, which checkpoints and their validation losses   AVERAGED

A sweep's root (``experiments.sweep --root``)::

    sweep.json            the plan: trials, labels, commands, statuses         SWEEP
    <trial name>/         the trial's workdir, as above, and
      status.json         ``running`` (PID, host) or the trial's outcome       STATUS
      stdout.txt, stderr.txt                                                   STDOUT, STDERR

Every JSON file is written as strict JSON (RFC 8259): a non-finite float (the loss of a
diverged run) is ``null``, which JavaScript's ``JSON.parse``, jq and every strict parser
accept, where Python's default bare ``NaN`` is rejected (``dumps``: simplejson's
``ignore_nan``, with ``allow_nan=False`` as a guard). Numpy and JAX scalars and arrays are
written as numbers and lists. Whole files are written atomically (a crash never leaves half a
file). Readers accept what older runs wrote (bare ``NaN`` included).

Reading a record needs neither JAX nor a plotting library: a pip user can load a sweep's
results with ``attnlab.results`` on any machine.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import socket
from collections.abc import Mapping, Sequence
from typing import Any

import simplejson

# A run's workdir.
CONFIG = "config.json"
VOCAB = "vocab.json"
RUN = "run.json"
CHECKPOINTS = "checkpoints"
METRICS = "metrics.jsonl"
SUMMARY = "summary.json"
EXAMPLES = "attention_examples.json"
LOCK = ".lock"
AVERAGED = "averaged.json"
# A sweep's root and each trial's workdir in it.
SWEEP = "sweep.json"
STATUS = "status.json"
STDOUT = "stdout.txt"
STDERR = "stderr.txt"
# metrics.jsonl's split of a test at a matched training step (``eval.test_at_steps``).
TEST_AT_STEP = "test_at_step"

_SEED_FOLDER = re.compile(r"seed_(\d+)")


class RecordError(ValueError):
  """A record file that is missing or damaged (one line, naming the file)."""


# ---------------------------------------------------------------- strict JSON

def _builtin(value: Any) -> Any:
  """``default`` hook: numpy/JAX scalars and arrays as Python numbers and lists."""
  if hasattr(value, "tolist"):  # np.generic, np.ndarray, jax.Array
    return value.tolist()
  return float(value)


def dumps(obj: Any, **kwargs) -> str:
  """``obj`` as strict JSON text: non-finite floats become ``null`` (module doc).

  Keyword arguments go to ``simplejson.dumps`` (e.g. ``indent=2``).
  """
  return simplejson.dumps(obj, ignore_nan=True, allow_nan=False, default=_builtin, **kwargs)


def dump(obj: Any, fp, **kwargs) -> None:
  """Writes ``dumps(obj, **kwargs)`` to the text file ``fp``."""
  fp.write(dumps(obj, **kwargs))


def _replace(path: str | os.PathLike, text: str) -> None:
  """Writes ``text`` to ``path`` atomically: a temporary file beside it, then a rename."""
  tmp = os.fspath(path) + ".tmp"
  with open(tmp, "w", encoding="utf-8") as f:
    f.write(text)
  os.replace(tmp, path)


def write_json(path: str | os.PathLike, obj) -> None:
  """``obj`` as strict JSON (indented), atomically."""
  _replace(path, dumps(obj, indent=2))


def write_jsonl(path: str | os.PathLike, rows: Sequence[Mapping]) -> None:
  """One strict-JSON object per line, atomically."""
  _replace(path, "".join(dumps(row) + "\n" for row in rows))


def read_json(path: str | os.PathLike):
  """A JSON file; ``RecordError`` (one line) when it is missing or damaged."""
  try:
    with open(path, encoding="utf-8") as f:
      return json.load(f)
  except OSError as e:
    raise RecordError(f"cannot read {os.fspath(path)}: {e.strerror}") from None
  except ValueError as e:
    raise RecordError(f"{os.fspath(path)} is damaged: {e}") from None


def read_json_or_none(path: str | os.PathLike):
  """A JSON file, or None when it is missing or unreadable."""
  try:
    return read_json(path)
  except RecordError:
    return None


def read_jsonl(path: str | os.PathLike) -> list[dict]:
  """The objects of a JSON Lines file (a torn or missing file gives what could be read; a
  line that is not JSON, or not UTF-8, is left out)."""
  records = []
  try:
    with open(path, "rb") as f:  # decoded line by line: bad bytes fail one line only
      for line in f:
        try:
          records.append(json.loads(line.decode("utf-8")))
        except ValueError:
          continue
  except OSError:
    pass
  return records


# ---------------------------------------------------------------- a run's layout

def seed_folder(seed: int) -> str:
  """The folder of seed ``seed`` of a multi-seed run, relative to its workdir."""
  return f"seed_{int(seed)}"


def seed_of_folder(path: str | os.PathLike) -> int | None:
  """The seed whose folder ``path`` is (``.../seed_<k>``), else None."""
  match = _SEED_FOLDER.fullmatch(os.path.basename(os.path.normpath(os.fspath(path))))
  return int(match.group(1)) if match else None


def model_dirs(workdir: str | os.PathLike,
               summary: Mapping) -> list[tuple[str, pathlib.Path, dict]]:
  """(label, folder, summary entry) per model of a finished run: ``seed <s>`` and its seed
  folder (the one the entry names, else ``seed_<s>``) for a multi-seed run
  (``summary["seeds"]``), else ``run``, the workdir itself and the whole summary."""
  workdir = pathlib.Path(workdir)
  if "seeds" in summary:
    return [(f"seed {s['seed']}", workdir / (s.get("workdir") or seed_folder(s["seed"])), s)
            for s in summary["seeds"]]
  return [("run", workdir, dict(summary))]


def is_finished(workdir: str | os.PathLike) -> bool:
  """Whether the run in ``workdir`` finished: trained and tested (its summary.json)."""
  return os.path.isfile(os.path.join(workdir, SUMMARY))


def decoding_name(beam_size: int) -> str:
  """How a beam size decodes, as the report's ``decoding`` axis and the outcomes files name
  it: ``greedy`` (1) or ``beam<k>``."""
  return "greedy" if int(beam_size) == 1 else f"beam{int(beam_size)}"


def step_name(step: int) -> str:
  """The label of the test at a matched training step (``eval.test_at_steps``)."""
  return f"step{int(step)}"


def outcomes_file(label: str | None = None) -> str:
  """``test_outcomes.jsonl`` (the final test), or ``test_outcomes_<label>.jsonl`` for another
  decoding (``decoding_name``) or a matched step (``step_name``)."""
  return f"test_outcomes_{label}.jsonl" if label else "test_outcomes.jsonl"


def read_outcomes(directory: str | os.PathLike, label: str | None = None) -> list[dict] | None:
  """The rows of a model's ``outcomes_file(label)``, or None when it has none (a run from
  before the file existed)."""
  path = pathlib.Path(directory) / outcomes_file(label)
  if not path.exists():
    return None
  return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# ---------------------------------------------------------------- who holds a workdir

def holder() -> dict:
  """This process, as a workdir's ``.lock`` records its holder."""
  return {"pid": os.getpid(), "host": socket.gethostname()}


def describe_holder(record: Mapping | None) -> str:
  """``PID <pid> on host <host>``, or ``another process`` for a record without them."""
  try:
    return f"PID {int(record['pid'])} on host {record['host']}"
  except (KeyError, TypeError, ValueError):
    return "another process"


def read_holder(workdir: str | os.PathLike) -> dict | None:
  """The holder ``workdir/.lock`` records, or None when it records none: a lock that was
  released (its holder empties the file first) or never taken."""
  try:
    text = pathlib.Path(workdir, LOCK).read_text(encoding="utf-8")
  except OSError:
    return None
  try:
    record = json.loads(text) if text.strip() else None
  except ValueError:
    return None
  return record if isinstance(record, dict) and "pid" in record else None


def pid_alive(pid: int) -> bool:
  """Whether process ``pid`` exists on this host."""
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True
  return True


def live_holder(workdir: str | os.PathLike) -> dict | None:
  """The holder that ``workdir/.lock`` records, unless it is known to be gone: a process of
  this host that no longer runs (killed without releasing; the kernel dropped its lock)."""
  record = read_holder(workdir)
  if record is None:
    return None
  if record.get("host") == socket.gethostname():
    try:
      if not pid_alive(int(record["pid"])):
        return None
    except (TypeError, ValueError):
      return None
  return record


# ---------------------------------------------------------------- a sweep's records

def read_status(workdir: str | os.PathLike) -> dict | None:
  """A trial's ``status.json``, or None without a readable one."""
  status = read_json_or_none(pathlib.Path(workdir) / STATUS)
  return status if isinstance(status, dict) else None


def write_status(workdir: str | os.PathLike, status: Mapping) -> None:
  """A trial's ``status.json`` (its workdir is made if needed)."""
  pathlib.Path(workdir).mkdir(parents=True, exist_ok=True)
  write_json(pathlib.Path(workdir) / STATUS, status)
