"""What a run's training cost: train steps per second and the train step's device memory, the
``cost`` entry of summary.json (Luong et al. 2015 compare attention mechanisms by accuracy
*and* cost: local-p is competitive with global attention at a lower cost).

* ``train_steps_per_second``: the median over the run's timing windows of steps / seconds.
  A window is the training between two of the loop's log / eval / checkpoint steps, timed
  up to the moment the window's last step has finished (``block_until_ready`` on its metrics,
  where the loop syncs anyway) and restarted once that step's logging, evaluation and
  checkpoint are done, so evaluation is never timed (unlike metrics.jsonl's
  ``steps_per_second``, which is wall-clock time between train records). The first window
  holds the compilation of the train step and is left out when there are others
  (``train_timing_windows`` counts the windows the median is over; 0 means only the first
  window existed and its rate, compilation included, is reported). Later windows can hold the
  compilation of another length bucket's program: the median keeps them from mattering when
  there are a few windows. A multi-seed run's step trains every seed at once (one vmapped
  program). A resumed run times the windows since it resumed.
* ``train_step_memory_bytes``: only with ``train.measure_memory=True`` (it costs one more
  compilation), else None. XLA's memory analysis of the compiled program of one optimizer
  step, exactly the program the run executes (the data-parallel step of one model, or the
  vmapped step of all ``num_seeds`` seeds), on a real training batch of the largest padded
  shape (src_len x tgt_len): arguments + outputs - aliased (donated state) + temporaries, i.e.
  what the step holds on a device while it runs (parameters, optimizer state and batch in,
  the new state out, activations kept for the backward pass in between).
  ``train_step_temp_bytes`` is the temporaries alone: the activations, where mechanisms
  differ (the parameters and optimizer state barely do). ``peak_memory_source`` says how
  the numbers were obtained (and the batch shape), or why there are none.
"""

from __future__ import annotations

import statistics
import time

import jax

from attnlab.data import TrainBatches


class TrainTimer:
  """Wall-clock time of training alone, in windows between the loop's sync points.

  ``TrainTimer(step)`` starts a window at ``step``; ``stop(step, outputs)`` waits for
  ``outputs`` (the last step's metrics) and closes the window; ``start(step)`` opens the next.
  """

  def __init__(self, step: int):
    self.windows: list[tuple[int, float]] = []  # (steps, seconds) per closed window
    self.start(step)

  def start(self, step: int) -> None:
    self._step, self._time = step, time.perf_counter()

  def stop(self, step: int, outputs) -> None:
    jax.block_until_ready(outputs)
    seconds = time.perf_counter() - self._time
    if step > self._step and seconds > 0:
      self.windows.append((step - self._step, seconds))
    self._step, self._time = step, time.perf_counter()

  def steps_per_second(self) -> tuple[float | None, int]:
    """(median steps / second over the windows after the first, their count); with a single
    window, (its rate, 0); with none, (None, 0)."""
    rates = [steps / seconds for steps, seconds in self.windows]
    if len(rates) > 1:
      return statistics.median(rates[1:]), len(rates) - 1
    return (rates[0] if rates else None), 0


def largest_batch(batches: TrainBatches) -> dict:
  """A real training batch of the largest padded shape (src_len * tgt_len, ties: the longer
  source) among the buckets the training data fills: ``batches.batch`` of a step of epoch 0.
  Without its ``index`` column, as the train step takes it."""
  plan = batches.epoch_plan(0)
  size = lambda bucket: (batches.buckets[bucket][0] * batches.buckets[bucket][1],  # noqa: E731
                         batches.buckets[bucket][0])
  step = max(range(len(plan)), key=lambda s: size(plan[s][0]))
  batch = batches.batch(step)
  batch.pop("index")
  return batch


def memory_of(lowered: jax.stages.Lowered) -> dict:
  """Compiles ``lowered`` and reads XLA's memory analysis: {"total": arguments + outputs -
  aliased + temporaries, "temp": temporaries} in bytes, None each where the backend has no
  analysis."""
  analysis = lowered.compile().memory_analysis()
  if analysis is None:
    return {"total": None, "temp": None}
  total = (analysis.argument_size_in_bytes + analysis.output_size_in_bytes
           - analysis.alias_size_in_bytes + analysis.temp_size_in_bytes)
  return {"total": int(total), "temp": int(analysis.temp_size_in_bytes)}


def train_step_memory(stepper) -> dict:
  """The memory entries of ``cost``, from ``stepper.lower_train_step()`` (the loop's stepper:
  its train program on ``largest_batch``, lowered, and a description of it)."""
  lowered, description = stepper.lower_train_step()
  memory = memory_of(lowered)
  source = (f"XLA memory_analysis() of the compiled train step ({description}): arguments + "
            f"outputs - aliased + temporaries")
  if memory["total"] is None:
    source = f"not available: the {jax.default_backend()} backend gives no memory analysis"
  return {"train_step_memory_bytes": memory["total"], "train_step_temp_bytes": memory["temp"],
          "peak_memory_source": source}


NOT_MEASURED = {"train_step_memory_bytes": None, "train_step_temp_bytes": None,
                "peak_memory_source": "not measured (train.measure_memory=False)"}


def cost_summary(timer: TrainTimer, memory: dict | None) -> dict:
  """summary.json's ``cost``: the timer's steps per second and ``memory`` (``train_step_memory``,
  None: not measured)."""
  rate, windows = timer.steps_per_second()
  return {"train_steps_per_second": rate, "train_timing_windows": windows,
          **(memory or NOT_MEASURED)}
