"""Data for attnlab: vocabularies, tasks by name, parallel corpora and padded batches.

    task = build_task(config.data)                       # TaskData: splits + vocabularies
    buckets = make_buckets(task.train, num_buckets=4)    # static (src_len, tgt_len) shapes
    train = TrainBatches(task.train, task.src_vocab, task.tgt_vocab, 64, buckets, seed=0)
    batch = train.batch(step)                            # pure function of (seed, step)
"""

from attnlab.data.batching import (TrainBatches, bucket_of, encode_batch, eval_batches,
                                   make_buckets)
from attnlab.data.corpus import read_parallel, tokenize
from attnlab.data.tasks import (TASKS, Example, TaskData, build_task, default_data_config,
                                register_task)
from attnlab.data.vocab import BOS, EOS, PAD, SPECIALS, UNK, Vocab

__all__ = [
    "BOS", "EOS", "PAD", "SPECIALS", "UNK", "Vocab",
    "TASKS", "Example", "TaskData", "build_task", "default_data_config", "register_task",
    "read_parallel", "tokenize",
    "TrainBatches", "bucket_of", "encode_batch", "eval_batches", "make_buckets",
]
