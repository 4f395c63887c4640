"""Data for attnlab: vocabularies, tokenizers, tasks by name, parallel corpora, padded batches.

    task = build_task(config.data)                       # TaskData: splits, vocabularies, text
    buckets = make_buckets(task.train, num_buckets=4)    # static (src_len, tgt_len) shapes
    train = TrainBatches(task.train, task.src_vocab, task.tgt_vocab, 64, buckets, seed=0)
    batch = train.batch(step)                            # pure function of (seed, step)
    tokens = task.src_tokenizer.tokenize(line)           # raw text -> the task's tokens
    text = task.tgt_tokenizer.detokenize(tokens)         # and back

Modules, lowest first (none imports a later one): vocab (ids and special tokens), text
(tokenizers), base (Example, TaskData, the task registry), tasks (synthetic tasks), corpus
(parallel corpora), batching. Importing this package registers every task.
"""

from attnlab.data.base import (TASK_DEFAULTS, TASKS, Example, TaskData, build_task,
                               default_data_config, register_task)
from attnlab.data.batching import (TrainBatches, bucket_of, encode_batch, eval_batches,
                                   make_buckets)
# Importing these registers the tasks: date, copy, reverse, toy_translation; corpus.
from attnlab.data import corpus, tasks
from attnlab.data.corpus import read_aligned, read_lines, read_parallel
from attnlab.data.text import (TOKENIZERS, Tokenizer, build_tokenizer, tokenize,
                               tokenizer_from_dict, tokenizer_from_json)
from attnlab.data.vocab import BOS, EOS, PAD, SPECIALS, UNK, Vocab

__all__ = [
    "corpus", "tasks",
    "BOS", "EOS", "PAD", "SPECIALS", "UNK", "Vocab",
    "TOKENIZERS", "Tokenizer", "build_tokenizer", "tokenize", "tokenizer_from_dict",
    "tokenizer_from_json",
    "TASKS", "TASK_DEFAULTS", "Example", "TaskData", "build_task", "default_data_config",
    "register_task",
    "read_aligned", "read_lines", "read_parallel",
    "TrainBatches", "bucket_of", "encode_batch", "eval_batches", "make_buckets",
]
