"""Config validation: every bad value fails before anything is built, naming its key."""

import math
import pathlib
import sys

import ml_collections
import pytest

from attnlab import config as config_lib, run_config
from attnlab.options import Integer, Real
from attnlab.attention import score_names
from attnlab.data import TASKS

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from test_main import CONFIGS, run_main  # noqa: E402


def _config(**changes):
  c = config_lib.base_config("date")
  for key, value in changes.items():
    node = c
    *parents, leaf = key.split(".")
    for p in parents:
      node = node[p]
    node[leaf] = value
  return c


def test_base_config_is_valid():
  config_lib.validate(config_lib.base_config("date"))


@pytest.mark.parametrize("key,value,needle", [
    ("model.attention", "nope", "scaled_dot"),
    ("model.cell", "transformer", "gru, lstm, rnn"),
    ("model.decoder", "nope", "bahdanau"),
    ("model.mechanism", "nope", "global"),
    ("model.normalizer", "nope", "softmax"),
    ("model.bridge", "nope", "dense"),
    ("data.task", "nope", "toy_translation"),
    ("model.hidden_dim", 0, ">= 1"),
    ("batching.batch_size", -3, ">= 1"),
    ("model.dropout_rate", 1.5, "in [0, 1)"),
    ("train.learning_rate", 0.0, "> 0"),
    ("num_seeds", 0, ">= 1"),
    ("data.train_max_src_len", -1, ">= 0"),
    ("model.location_bias", None, "True or False"),
    ("train.schedule", "rsqrt", "inverse_sqrt, reduce_on_plateau"),
    ("train.grad_accum_steps", 0, ">= 1"),
    ("batching.max_tokens", -1, ">= 0"),
])
def test_bad_values_name_the_key_and_choices(key, value, needle):
  with pytest.raises(config_lib.ConfigError) as e:
    config_lib.validate(_config(**{key: value}))
  assert e.value.key == key
  assert f"config.{key}" in str(e.value) and needle in str(e.value)


def test_impossible_sizes():
  with pytest.raises(config_lib.ConfigError, match="num_heads"):
    config_lib.validate(_config(**{"model.decoder_self_attention": True, "model.num_heads": 3}))
  with pytest.raises(config_lib.ConfigError, match="num_heads"):
    config_lib.validate(_config(**{"model.encoder_self_attention_layers": 1,
                                   "model.num_heads": 5}))
  with pytest.raises(config_lib.ConfigError, match="bridge"):
    config_lib.validate(_config(**{"model.decoder": "none", "model.bridge": "zeros"}))


def test_missing_corpus_file(tmp_path):
  c = config_lib.base_config("corpus")
  with pytest.raises(config_lib.ConfigError, match="data.path"):
    config_lib.validate(c)
  c.data.path = str(tmp_path / "missing.txt")
  with pytest.raises(config_lib.ConfigError, match="no such file"):
    config_lib.validate(c)


@pytest.mark.parametrize("score", score_names())
def test_every_score_name_is_selectable(score):
  c = _config(**{"model.attention": score})
  config_lib.validate(c)
  model = config_lib.build_model(c, 20, 30, max_src_len=12)
  assert model.options.attention == score and model.options.max_src_len == 12


def test_copy_attention_config():
  config_lib.validate(_config(**{"model.copy": True}))
  assert config_lib.base_config("date").model.copy is False
  with pytest.raises(config_lib.ConfigError, match="decoder='none'") as e:
    config_lib.validate(_config(**{"model.copy": True, "model.decoder": "none"}))
  assert e.value.key == "model.copy"
  with pytest.raises(config_lib.ConfigError, match="label_smoothing"):
    config_lib.validate(_config(**{"model.copy": True, "train.label_smoothing": 0.1}))
  config_lib.validate(_config(**{"model.decoder": "none", "train.label_smoothing": 0.1}))
  model = config_lib.build_model(_config(**{"model.copy": True}), 20, 15, 8)
  assert model.copy and not config_lib.build_model(_config(), 20, 15, 8).copy


@pytest.mark.parametrize("changes,key", [
    ({"model.decoder": "none", "model.coverage": True}, "model.coverage"),
    ({"model.decoder": "none", "train.coverage_loss_weight": 1.0}, "train.coverage_loss_weight"),
    ({"model.decoder": "none", "train.guided_alignment_weight": 1.0},
     "train.guided_alignment_weight"),
    ({"model.decoder": "none", "eval.coverage_penalty": 0.2}, "eval.coverage_penalty"),
    ({"train.coverage_loss_weight": -0.5}, "train.coverage_loss_weight"),
    ({"train.guided_alignment_weight": -1.0}, "train.guided_alignment_weight"),
    ({"eval.coverage_penalty": float("nan")}, "eval.coverage_penalty"),
    ({"eval.coverage_penalty": 0.2}, "eval.coverage_penalty"),  # greedy: no beam to re-rank
])
def test_coverage_and_guided_alignment_config_errors(changes, key):
  with pytest.raises(config_lib.ConfigError, match=key.replace(".", r"\.")) as error:
    config_lib.validate(_config(**changes))
  assert error.value.key == key


def test_guided_alignment_needs_a_task_with_alignments():
  config = _config(**{"train.guided_alignment_weight": 1.0})
  config_lib.validate(config)
  config_lib.validate_task(config, has_alignment=True)
  with pytest.raises(config_lib.ConfigError, match="no true alignment") as error:
    config_lib.validate_task(config, has_alignment=False)
  assert error.value.key == "train.guided_alignment_weight"
  config_lib.validate_task(_config(), has_alignment=False)  # weight 0: fine


def test_guided_alignment_on_a_corpus_fails_before_training(tmp_path):
  from attnlab import training  # the check runs once the task is built, in training.prepare
  path = tmp_path / "pairs.txt"
  path.write_text("".join(f"go {i}\tva {i}\n" for i in range(20)), encoding="utf-8")
  config = config_lib.base_config("corpus")
  config.data.path, config.data.num_valid, config.data.num_test = str(path), 2, 2
  config.train.guided_alignment_weight = 1.0
  with pytest.raises(config_lib.ConfigError, match="'corpus' task has no true alignment"):
    training.prepare(config)


@pytest.mark.parametrize("location_bias", [False, True])
def test_location_bias_config_reaches_the_score(location_bias):
  import jax
  import jax.numpy as jnp
  assert config_lib.base_config("date").model.location_bias is False  # Luong et al.: no bias
  config = _config(**{"model.attention": "location", "model.location_bias": location_bias})
  config_lib.validate(config)
  model = config_lib.build_model(config, 20, 30, max_src_len=6)
  src, lengths, tgt = jnp.array([[4, 5, 6, 0]]), jnp.array([3]), jnp.array([[1, 4]])
  params = model.init(jax.random.key(0), src, lengths, tgt)["params"]
  w_a = params["decoder_module"]["attn"]["score_fn"]["W_a"]
  assert set(w_a) == ({"kernel", "bias"} if location_bias else {"kernel"})
  assert w_a["kernel"].shape[-1] == 6 and (not location_bias or w_a["bias"].shape == (6,))


def test_coverage_config_reaches_the_model():
  config = _config(**{"model.coverage": True, "train.coverage_loss_weight": 0.5,
                      "train.guided_alignment_weight": 2.0, "eval.coverage_penalty": 0.2,
                      "eval.beam_size": 4})
  config_lib.validate(config)
  model = config_lib.build_model(config, 10, 12, 8)
  assert model.options.coverage
  assert not config_lib.build_model(_config(), 10, 12, 8).options.coverage
  # The loss weights are the training side's (steps.Objective), not the model's.
  assert not hasattr(model.options, "coverage_loss_weight")
  from attnlab.training.steps import Objective
  assert Objective.create(config.train, model.options) == Objective(
      coverage_loss_weight=0.5, guided_alignment_weight=2.0)


@pytest.mark.parametrize("key,value", [("train.steps_per_dispatch", 4),
                                       ("parallel.num_devices", 2)])
def test_multiseed_refuses_what_it_does_not_support(key, value):
  config = _config(num_seeds=2, **{key: value})
  with pytest.raises(config_lib.ConfigError, match=key.replace(".", r"\.")):
    config_lib.validate(config)


def numeric_options() -> dict:
  """Every numeric option of every task's base config, key -> default, but ``data.*`` (each
  task checks its own data fields when it builds its data)."""
  options = {}

  def walk(node, prefix):
    for key, value in node.items():
      if isinstance(value, dict):
        walk(value, f"{prefix}{key}.")
      elif isinstance(value, (int, float)) and not isinstance(value, bool):
        options[prefix + key] = value

  for task in TASKS:
    walk(config_lib.base_config(task).to_dict(), "")
  return {k: v for k, v in sorted(options.items()) if not k.startswith("data.")}


def _from_json(key, value):
  """The base config with ``key`` set to ``value`` as a config.json could hold it (no
  ConfigDict type checks: True where a number belongs, a float where an integer does)."""
  values = config_lib.base_config("date").to_dict()
  *parents, leaf = key.split(".")
  node = values
  for part in parents:
    node = node[part]
  node[leaf] = value
  return ml_collections.ConfigDict(values)


@pytest.mark.parametrize("key", list(numeric_options()))
def test_every_numeric_option_refuses_non_finite_and_out_of_range_values(key):
  default = numeric_options()[key]
  config_lib.validate(_from_json(key, default))
  if isinstance(default, int):
    bad = [-2, True, 1.5, float("nan"), "1"]
  else:
    bad = [float("nan"), float("inf"), -float("inf"), True, "0.1", None]
  for value in bad:
    with pytest.raises(config_lib.ConfigError) as e:
      config_lib.validate(_from_json(key, value))
    assert e.value.key == key, (value, str(e.value))
    assert "must be" in str(e.value) and repr(value) in str(e.value)


# (key, values out of its range, values at or inside its edges)
RANGES = [
    ("train.learning_rate", [0.0, -1e-3], [1e-9, 10.0]),
    ("train.grad_clip", [-1.0, -1e-9], [0.0, 1e6]),  # 0: no clipping
    ("train.weight_decay", [-1e-4], [0.0, 0.1]),
    ("train.label_smoothing", [1.0, 1.5, -0.1], [0.0, 0.999]),
    ("train.coverage_loss_weight", [-0.5], [0.0, 2.0]),
    ("train.guided_alignment_weight", [-1.0], [0.0, 2.0]),
    ("train.early_stopping_min_delta", [-0.01], [0.0, 0.5]),
    ("train.early_stopping_min_relative_delta", [-0.01, 1.0], [0.0, 0.05]),
    ("train.plateau_factor", [0.0, 1.0, -0.5], [0.01, 0.99]),
    ("train.plateau_window", [0], [1, 1000]),
    ("train.plateau_patience", [0], [1, 10]),
    ("train.grad_accum_steps", [0], [1, 4]),  # both divide the default num_steps, 2000
    ("batching.max_tokens", [-1], [0, 4096]),
    ("model.dropout_rate", [1.0, -0.1], [0.0, 0.9]),
    ("model.hard_temperature", [0.0, -1.0], [1e-3, 5.0]),
    ("model.hard_entropy_weight", [-0.01], [0.0, 1.0]),
    ("model.hard_baseline_decay", [1.0, -0.5], [0.0, 0.99]),
    ("model.monotonic_noise", [-1.0], [0.0, 2.0]),
    ("model.monotonic_bias", [], [-4.0, 0.0, 3.0]),
    ("model.cosine_temperature", [0.0, -10.0], [0.5, 30.0]),
    ("eval.length_penalty", [-0.6], [0.0, 1.0]),
    ("train.num_steps", [0, -5], [1, 10**9]),
    ("train.warmup_steps", [-1], [0, 5000]),
    ("train.keep_checkpoints", [0], [1]),
    ("train.early_stopping_patience", [-1], [0, 3]),
    ("seed", [-1], [0, 2**31]),
    ("parallel.process_id", [-2], [-1, 0, 3]),
]


@pytest.mark.parametrize("key,bad,good", RANGES, ids=[r[0] for r in RANGES])
def test_numeric_ranges(key, bad, good):
  for value in good:
    config_lib.validate(_from_json(key, value))
  for value in bad:
    with pytest.raises(config_lib.ConfigError, match=f"config.{key}: must be") as e:
      config_lib.validate(_from_json(key, value))
    assert e.value.key == key


def just_outside(interval: str) -> list[float]:
  """The nearest floats outside ``interval`` (``config.REAL_RANGES``' notation), its excluded
  bounds included."""
  low, high = (float(b) for b in interval[1:-1].split(","))
  outside = []
  if math.isfinite(low):
    outside += [math.nextafter(low, -math.inf)] + ([low] if interval[0] == "(" else [])
  if math.isfinite(high):
    outside += [math.nextafter(high, math.inf)] + ([high] if interval[-1] == ")" else [])
  return outside


def real_ranges() -> dict:
  """{key: interval} of every real option: the generic ones and each variant's own."""
  return {**config_lib.REAL_RANGES, **{key: check.interval for key, check
                                       in config_lib.variant_checks() if isinstance(check, Real)}}


@pytest.mark.parametrize("key", sorted(real_ranges()))
def test_every_real_option_refuses_the_nearest_values_outside_its_interval(key):
  for value in just_outside(real_ranges()[key]):
    with pytest.raises(config_lib.ConfigError, match=f"config.{key}: must be a finite") as e:
      config_lib.validate(_from_json(key, value))
    assert e.value.key == key


def test_every_numeric_option_has_a_range():
  variants = {key for key, check in config_lib.variant_checks() if isinstance(check, Integer)}
  assert set(numeric_options()) <= (set(real_ranges()) | set(config_lib.INTEGER_MINIMUMS)
                                    | variants)


def test_a_config_json_from_before_an_option_existed_still_validates():
  values = config_lib.base_config("date").to_dict()
  del values["train"]["early_stopping_min_delta"], values["model"]["cosine_temperature"]
  config_lib.validate(run_config.from_json(values))  # as every reader reads a config.json


@pytest.mark.parametrize("override,needle", [
    ("train.label_smoothing=1.0", "config.train.label_smoothing: must be a finite number in "
                                  "[0, 1), got 1.0"),
    ("train.weight_decay=nan", "config.train.weight_decay: must be a finite number >= 0, "
                               "got nan"),
    ("train.grad_clip=-1", "config.train.grad_clip: must be a finite number >= 0, got -1.0"),
])
def test_bad_numbers_on_the_command_line_are_one_line_and_exit_2(tmp_path, override, needle):
  proc = run_main("--config", f"{CONFIGS / 'date.py'}:quick", "--workdir", str(tmp_path / "w"),
                  f"--config.{override}", check=False)
  assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
  assert proc.stderr.strip() == f"error: {needle}"
  assert not (tmp_path / "w" / "checkpoints").exists()


def test_grad_accum_steps_must_divide_num_steps():
  config_lib.validate(_config(**{"train.num_steps": 12, "train.grad_accum_steps": 4}))
  with pytest.raises(config_lib.ConfigError) as e:
    config_lib.validate(_config(**{"train.num_steps": 10, "train.grad_accum_steps": 4}))
  assert e.value.key == "train.grad_accum_steps" and "num_steps=10" in str(e.value)


@pytest.mark.parametrize("override,needle", [
    ("train.grad_accum_steps=3", "config.train.grad_accum_steps: must divide "
                                 "train.num_steps=20 (which counts batches, one update every "
                                 "grad_accum_steps of them), got 3"),
    ("train.schedule=rsqrt", "config.train.schedule: unknown value 'rsqrt'; valid choices: "
                             "constant, cosine, inverse_sqrt, reduce_on_plateau"),
    # Checked once the buckets are known: date's padded shapes are longer than 5 tokens.
    ("batching.max_tokens=5", "config.batching.max_tokens: must hold one training example of "
                              "the padded shape"),
])
def test_bad_batching_and_schedule_options_are_one_line_and_exit_2(tmp_path, override, needle):
  proc = run_main("--config", f"{CONFIGS / 'date.py'}:quick", "--workdir", str(tmp_path / "w"),
                  f"--config.{override}", check=False)
  assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
  assert len(proc.stderr.strip().splitlines()) == 1 and needle in proc.stderr, proc.stderr
  assert not (tmp_path / "w" / "checkpoints").exists()
