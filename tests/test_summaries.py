"""Strict JSON outputs and TensorBoard summaries (attnlab.summaries, training.MetricWriter)."""

import importlib.util
import json
import math
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from matplotlib.figure import Figure

from attnlab import summaries, training

REPO = pathlib.Path(__file__).resolve().parents[1]


def strict_loads(text):
  """json.loads as JavaScript's JSON.parse and jq read: bare NaN / Infinity are errors."""
  def reject(name):
    raise ValueError(f"non-standard JSON constant {name}")
  return json.loads(text, parse_constant=reject)


def date_quick_config(**train_overrides):
  spec = importlib.util.spec_from_file_location("date_config", REPO / "configs" / "date.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config("quick")
  for key, value in train_overrides.items():
    config.train[key] = value
  return config


# ---------------------------------------------------------------- strict JSON

def test_dumps_writes_null_for_every_non_finite_float():
  obj = {"nan": float("nan"), "inf": float("inf"), "ninf": -math.inf,
         "np": np.float32("nan"), "nested": {"list": [1.5, np.float64("inf")]},
         "array": np.array([0.5, np.nan]), "int": np.int64(3)}
  parsed = strict_loads(summaries.dumps(obj))
  assert parsed == {"nan": None, "inf": None, "ninf": None, "np": None,
                    "nested": {"list": [1.5, None]}, "array": [0.5, None], "int": 3}


def test_metrics_jsonl_and_json_files_are_strict_json_with_nan_as_null(tmp_path):
  writer = training.MetricWriter(str(tmp_path))
  writer.write(3, "valid", {"loss": float("nan"), "perplexity": np.float32("inf"),
                            "exact_match": 0.5})
  writer.close()
  (line,) = (tmp_path / "metrics.jsonl").read_text().splitlines()
  record = strict_loads(line)
  assert record == {"step": 3, "split": "valid", "loss": None, "perplexity": None,
                    "exact_match": 0.5}

  training.write_json(str(tmp_path / "summary.json"),
                    {"test": {"loss": float("nan"), "bleu": -math.inf, "exact_match": 1.0}})
  summary = strict_loads((tmp_path / "summary.json").read_text())
  assert summary == {"test": {"loss": None, "bleu": None, "exact_match": 1.0}}


# ---------------------------------------------------------------- pure helpers

def test_flatten_hparams_keeps_scalar_and_string_leaves_under_dotted_keys():
  config = {"seed": 0, "model": {"attention": "dot", "hidden_dim": 32, "remat": False,
                                 "dropout_rate": 0.1, "nothing": None},
            "eval": {"length_boundaries": [10, 20]}}
  assert summaries.flatten_hparams(config) == {
      "seed": 0, "model.attention": "dot", "model.hidden_dim": 32, "model.remat": False,
      "model.dropout_rate": 0.1}


def test_bucket_scalars_flatten_the_by_length_means():
  metrics = {"exact_match": 0.5,
             "exact_match_by_length": {"1-10": {"count": 3, "mean": 1.0, "std": 0.0},
                                       ">10": {"count": 1, "mean": 0.0, "std": 0.0}},
             "bleu_by_length": {"1-10": {"count": 3, "mean": 12.5, "std": 1.0}}}
  assert summaries.bucket_scalars(metrics) == {
      "exact_match_by_length/1-10": 1.0, "exact_match_by_length/>10": 0.0,
      "bleu_by_length/1-10": 12.5}


def test_step_rate_is_steps_over_seconds_between_calls():
  rate = summaries.StepRate(100, 10.0)
  assert rate.rate(300, 12.0) == pytest.approx(100.0)
  assert rate.rate(400, 14.0) == pytest.approx(50.0)
  assert rate.rate(500, 14.0) is None  # no time passed: no figure


def test_examples_markdown_is_a_table_with_escaped_cells():
  text = summaries.examples_markdown([{"source": "a | b", "prediction": ""}])
  assert text.splitlines() == ["| source | prediction |", "|---|---|", "| a \\| b |   |"]
  assert summaries.examples_markdown([]) == ""


def test_figure_to_array_renders_rgb_pixels():
  fig = Figure(figsize=(2, 1), dpi=50)
  fig.add_subplot().plot([0, 1], [1, 0])
  image = summaries.figure_to_array(fig)
  assert image.shape == (50, 100, 3) and image.dtype == np.uint8
  assert image.min() < 128 < image.max()  # a line on a white background


# ---------------------------------------------------------------- TensorBoard, end to end

@pytest.mark.slow
def test_tensorboard_holds_hparams_text_images_rates_and_length_buckets(tmp_path):
  event_accumulator = pytest.importorskip(
      "tensorboard.backend.event_processing.event_accumulator")
  from tensorboard.plugins.hparams import plugin_data_pb2  # pylint: disable=import-outside-toplevel
  config = date_quick_config(num_steps=4, log_every=2, eval_every=2, checkpoint_every=4)
  summary = training.train_and_evaluate(config, str(tmp_path))

  events = event_accumulator.EventAccumulator(
      str(tmp_path / "tensorboard"), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
  events.Reload()
  tags = events.Tags()

  # Per-bucket metrics and steps/s beside the plain scalars.
  assert "valid/exact_match" in tags["scalars"]
  buckets = [t for t in tags["scalars"] if t.startswith("valid/exact_match_by_length/")]
  assert buckets, tags["scalars"]
  assert [e.step for e in events.Scalars(buckets[0])] == [2, 4]
  assert any(t.startswith("test/alignment_error_rate_by_length/") for t in tags["scalars"])
  rates = events.Scalars("train/steps_per_second")
  assert [e.step for e in rates] == [2, 4] and all(e.value > 0 for e in rates)

  # Example translations as text at every evaluation and for the test split.
  texts = events.Tensors("valid/examples/text_summary")
  assert [e.step for e in texts] == [2, 4]
  table = texts[-1].tensor_proto.string_val[0].decode()
  assert table.startswith("| source | reference | prediction |")
  assert "test/examples/text_summary" in tags["tensors"]

  # The test heatmaps as images.
  assert tags["images"] == [f"test/attention/{i}" for i in range(config.eval.num_heatmaps)]
  image = events.Images("test/attention/0")[0]
  assert image.step == 4 and image.width > 100 and image.encoded_image_string[:4] == b"\x89PNG"

  # The config as hparams, the final test metrics as their metrics.
  content = events.PluginTagToContent("hparams")
  start = plugin_data_pb2.HParamsPluginData.FromString(
      content["_hparams_/session_start_info"]).session_start_info
  assert start.hparams["model.attention"].string_value == config.model.attention
  assert start.hparams["train.num_steps"].number_value == 4
  assert "_hparams_/experiment" not in content  # TensorBoard builds it over the logdir
  metric_tags = {m.name.tag for m in tensorboard_experiment(tmp_path).metric_infos}
  assert {"test/exact_match", "test/loss"} <= metric_tags
  assert events.Scalars("test/exact_match")[-1].value == pytest.approx(
      summary["test"]["exact_match"])

  # metrics.jsonl carries the rate too.
  records = [strict_loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert all(r["steps_per_second"] > 0 for r in records if r["split"] == "train")


def tensorboard_experiment(logdir):
  """The HParams experiment TensorBoard's own plugin serves for ``tensorboard --logdir``."""
  from tensorboard import context  # pylint: disable=import-outside-toplevel
  from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
  from tensorboard.plugins import base_plugin
  from tensorboard.plugins.hparams import backend_context
  mux = plugin_event_multiplexer.EventMultiplexer()
  mux.AddRunsFromDirectory(str(logdir))
  mux.Reload()
  backend = backend_context.Context(base_plugin.TBContext(
      logdir=str(logdir), multiplexer=mux,
      data_provider=data_provider.MultiplexerDataProvider(mux, str(logdir))))
  request = context.RequestContext()
  return backend.experiment_from_metadata(
      request, "", True, backend.hparams_metadata(request, ""),
      backend.hparams_from_data_provider(request, "", None))


def session_starts(logdir):
  """{run: SessionStartInfo} of every hparams session under ``logdir``."""
  from tensorboard.backend.event_processing import plugin_event_multiplexer
  from tensorboard.plugins.hparams import metadata
  mux = plugin_event_multiplexer.EventMultiplexer()
  mux.AddRunsFromDirectory(str(logdir))
  mux.Reload()
  return {run: metadata.parse_session_start_info_plugin_data(tags[metadata.SESSION_START_INFO_TAG])
          for run, tags in mux.PluginRunToTagToContent("hparams").items()}


def test_hparams_table_compares_a_sweeps_trials(tmp_path):
  """Two trials differing in model.decoder and model.hidden_dim: TensorBoard's experiment over
  the logdir says which hparams differ, with every value in the domain; ints stay exact."""
  pytest.importorskip("tensorboard")
  for name, decoder, hidden in (("luong", "luong", 32), ("bahdanau", "bahdanau", 64)):
    config = date_quick_config(num_steps=4)
    config.model.decoder, config.model.hidden_dim = decoder, hidden
    (tmp_path / name).mkdir()
    writer = training.MetricWriter(str(tmp_path / name), config=config)
    writer.write(4, "test", {"loss": 1.0, "exact_match": 0.5}, records=[])
    writer.close()
  infos = {h.name: h for h in tensorboard_experiment(tmp_path).hparam_infos}
  decoder = infos["model.decoder"]
  assert decoder.differs
  assert {v.string_value for v in decoder.domain_discrete.values} == {"luong", "bahdanau"}
  hidden = infos["model.hidden_dim"]
  assert hidden.differs
  assert (hidden.domain_interval.min_value, hidden.domain_interval.max_value) == (32, 64)
  assert not infos["train.num_steps"].differs and not infos["seed"].differs
  for start in session_starts(tmp_path).values():
    assert start.hparams["model.hidden_dim"].number_value in (32, 64)
    assert start.hparams["eval.num_heatmaps"].HasField("number_value")
    assert start.hparams["train.num_steps"].number_value == 4  # an int, exactly


def test_session_hparams_give_a_vmapped_seed_its_own_seed():
  flat = {"seed": 3, "num_seeds": 2, "model.decoder": "luong"}
  assert summaries.session_hparams(flat, "/runs/a/seed_4")["seed"] == 4
  assert summaries.session_hparams(flat, "/runs/a/seed_4/")["seed"] == 4
  assert summaries.session_hparams(flat, "/runs/seed_9") == flat  # a run named seed_9
  assert summaries.session_hparams({**flat, "num_seeds": 1}, "/runs/seed_9")["seed"] == 3


@pytest.mark.slow
def test_vmapped_seeds_are_sessions_with_their_own_seeds(tmp_path):
  """Through ``python -m attnlab.main``: a two-seed run from seed 3 is two HParams sessions,
  seed 3 and seed 4, and TensorBoard sees the seed differ."""
  pytest.importorskip("tensorboard")
  subprocess.run([sys.executable, "-m", "attnlab.main", "--config",
                  str(REPO / "configs" / "date.py") + ":quick", "--workdir",
                  str(tmp_path / "run"), "--config.num_seeds=2", "--config.seed=3",
                  "--config.train.num_steps=2"], check=True, cwd=REPO, capture_output=True)
  starts = session_starts(tmp_path)
  seeds = {run.split("/")[-2]: start.hparams["seed"].number_value for run, start in starts.items()}
  assert seeds == {"seed_3": 3, "seed_4": 4}
  assert tensorboard_experiment(tmp_path).hparam_infos  # built from the sessions
  assert {h.name: h.differs for h in tensorboard_experiment(tmp_path).hparam_infos}["seed"]
