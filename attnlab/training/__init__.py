"""Training, evaluation and inference, one module per responsibility:

* ``steps``: ``TrainState``, optimizer and schedule, the pure jitted train / eval steps.
* ``preparation``: config -> task, length buckets, model, device mesh; fresh states.
* ``evaluation``: batched decoding and ``evaluate`` (every metric, per length bucket too).
* ``writer``: metrics.jsonl and TensorBoard. ``workdir``: the workdir's files, lock, checks,
  checkpointer. ``signals``: SIGTERM/SIGINT and the non-finite policy.
* ``loop``: ``train_and_evaluate``, the one loop over a stepper (one model, or
  ``multiseed``'s vmapped seeds).
* ``inference``: a run restored from its workdir for ``--mode=eval`` and ``--mode=decode``.
* ``run_page``: what a finished run writes for people: attention_examples.json, report.html.
"""

from attnlab.training.evaluation import (copy_oovs, decode_batch, evaluate, is_copy_model,
                                         longest_example, scalars, write_heatmaps)
from attnlab.training.inference import (decode_lines, decode_stream, evaluate_checkpoint,
                                        load_config, restore_for_inference)
from attnlab.training.loop import dispatch_group, run_group, train_and_evaluate
from attnlab.training.preparation import (DataError, Prepared, data_parallel_mesh, init_state,
                                          prepare)
from attnlab.training.signals import Interrupted, NonFiniteError
from attnlab.training.steps import (TrainState, eval_step, make_optimizer, make_schedule,
                                    sharded_train_step, train_step, train_steps)
from attnlab.training.workdir import WorkdirError, checkpointer, write_json
from attnlab.training.writer import MetricWriter

__all__ = [
    "DataError", "Interrupted", "MetricWriter", "NonFiniteError", "Prepared", "TrainState",
    "WorkdirError", "checkpointer", "copy_oovs", "data_parallel_mesh", "decode_batch",
    "decode_lines", "decode_stream", "dispatch_group", "eval_step", "evaluate",
    "evaluate_checkpoint", "init_state", "is_copy_model", "load_config", "longest_example",
    "make_optimizer", "make_schedule", "prepare", "restore_for_inference", "run_group",
    "scalars", "sharded_train_step", "train_and_evaluate", "train_step",
    "train_steps", "write_heatmaps", "write_json",
]
