"""What every task shares: `Example`, `TaskData`, and the registry of tasks by name.

A task is one function `ConfigDict -> TaskData`, registered under a name with `register_task`
(optionally with a function adding its fields to the default data config);
`build_task(config.data)` picks it by `config.data.task`, `default_data_config(task)` gives the
fields that task reads, commented. The synthetic tasks live in `attnlab.data.tasks`, the
parallel-corpus task in `attnlab.data.corpus`; `import attnlab.data` registers them all.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import ml_collections

from attnlab.data.text import Tokenizer, WhitespaceTokenizer
from attnlab.data.vocab import Vocab

Alignment = tuple[tuple[int, int], ...]


@dataclasses.dataclass(frozen=True)
class Example:
  """One source/target pair.

  Attributes:
    src: source tokens `[src_len]`.
    tgt: target tokens `[tgt_len]`.
    alignment: sure links `(tgt_position, src_position)`, 0-based over `tgt` and `src`; None
      when unknown.
    reference: the target as the corpus writes it (untokenized), for sacrebleu's standard
      detokenized BLEU; None for synthetic tasks.
  """

  src: tuple[str, ...]
  tgt: tuple[str, ...]
  alignment: Alignment | None = None
  reference: str | None = None

  def __post_init__(self):
    object.__setattr__(self, "src", tuple(self.src))
    object.__setattr__(self, "tgt", tuple(self.tgt))
    if self.alignment is not None:
      links = tuple((int(t), int(s)) for t, s in self.alignment)
      for t, s in links:
        if not (0 <= t < len(self.tgt) and 0 <= s < len(self.src)):
          raise ValueError(
              f"alignment link {(t, s)} out of range for tgt_len={len(self.tgt)}, "
              f"src_len={len(self.src)}")
      object.__setattr__(self, "alignment", links)


@dataclasses.dataclass(frozen=True)
class TaskData:
  """The splits, vocabularies and tokenizers of one task.

  Attributes:
    name: the task's registered name.
    train, valid, test: disjoint splits.
    src_vocab, tgt_vocab: vocabularies (for `corpus`, built from the train split only).
    is_text: True when BLEU is meaningful (natural or synthetic-language text).
    has_alignment: True when every example carries its true alignment.
    src_tokenizer, tgt_tokenizer: how this task's source / target text becomes tokens and back
      (`tokenize(line) -> tuple[str, ...]`, `detokenize(tokens) -> str`; `to_json()` and
      `attnlab.data.text.tokenizer_from_json` to save and rebuild them without the data).
  """

  name: str
  train: tuple[Example, ...]
  valid: tuple[Example, ...]
  test: tuple[Example, ...]
  src_vocab: Vocab
  tgt_vocab: Vocab
  is_text: bool
  has_alignment: bool
  src_tokenizer: Tokenizer = WhitespaceTokenizer()
  tgt_tokenizer: Tokenizer = WhitespaceTokenizer()


TaskFn = Callable[[ml_collections.ConfigDict], TaskData]
DefaultsFn = Callable[[ml_collections.ConfigDict], None]
# Task name -> the function building its TaskData from the data config.
TASKS: dict[str, TaskFn] = {}
# Task name -> the function adding that task's own fields (commented) to a data config.
TASK_DEFAULTS: dict[str, DefaultsFn] = {}


def register_task(name: str, defaults: DefaultsFn | None = None) -> Callable[[TaskFn], TaskFn]:
  """Decorator registering `fn(data_config) -> TaskData` under `name`.

  Args:
    name: the task's name (`config.data.task`).
    defaults: adds the task's own fields, each with a comment, to the data config that
      `default_data_config(name)` returns; None: the task reads only the common fields.
  """

  def decorator(fn: TaskFn) -> TaskFn:
    if name in TASKS:
      raise ValueError(f"task {name!r} is already registered")
    TASKS[name] = fn
    if defaults is not None:
      TASK_DEFAULTS[name] = defaults
    return fn

  return decorator


def _check_name(name: str) -> None:
  if name not in TASKS:
    raise ValueError(f"unknown task {name!r}; valid tasks: {', '.join(sorted(TASKS))}")


def build_task(data_config: ml_collections.ConfigDict) -> TaskData:
  """Builds the task named by `data_config.task` from the rest of `data_config`."""
  _check_name(data_config.task)
  task = TASKS[data_config.task](data_config)
  cap = data_config.train_max_src_len
  if cap:
    # Train on short sources only, test on every length (Bahdanau et al. 2015 trained
    # RNNsearch-30 / -50 on sentences of at most 30 / 50 words and tested on all lengths).
    # The validation split, which picks checkpoints and stops training early, is cut the
    # same way: model selection sees only the training lengths, never the test's longer ones.
    # Vocabularies and the test split are left as the task built them.
    train = tuple(e for e in task.train if len(e.src) <= cap)
    if not train:
      raise ValueError(f"train_max_src_len={cap} drops every one of the {len(task.train)} "
                       "training examples")
    valid = tuple(e for e in task.valid if len(e.src) <= cap)
    task = dataclasses.replace(task, train=train, valid=valid or task.valid)
  return task


def default_data_config(task: str = "date") -> ml_collections.ConfigDict:
  """The default data config of `task`: every field that task reads, commented."""
  _check_name(task)
  c = shared_data_config(task)
  if task in TASK_DEFAULTS:
    TASK_DEFAULTS[task](c)
  return c


def shared_data_config(task: str) -> ml_collections.ConfigDict:
  """The data fields every task has, `task` named but not checked (a plug-in's task that is
  not registered yet: `attnlab.run_config.upgrade_config`)."""
  c = ml_collections.ConfigDict()
  # Registered task name (see attnlab.data.TASKS).
  c.task = task
  # Seed of numpy.random.default_rng for generating, sampling and splitting the data.
  c.seed = 0
  # Drop training (and validation) examples with more source tokens than this (0 = keep
  # all), after the task is built: the test split keeps every length, so a model trained on
  # short sentences is tested on long ones (the long-sentence study).
  c.train_max_src_len = 0
  return c
