"""Local, hard and monotonic attention end to end: each learns the reverse task through the
real ``training.train_step`` (REINFORCE surrogate and baseline included), and their config
fields are validated and reach the model."""

import jax
import numpy as np
import pytest

from attnlab import config as config_lib
from attnlab import training
from attnlab.data import TrainBatches, eval_batches
from attnlab.training.steps import Objective

# The variants of this issue (global attention learns the task in tests/models/test_seq2seq.py).
VARIANTS = {
    "local_m": dict(mechanism="local_m"),
    "local_p": dict(mechanism="local_p"),
    "hard_reinforce": dict(mechanism="hard", hard_estimator="reinforce"),
    "hard_gumbel": dict(mechanism="hard", hard_estimator="gumbel"),
    "monotonic": dict(mechanism="monotonic"),
}
STEPS = 150


def tiny_config(**model):
  c = config_lib.base_config("reverse")
  c.data.vocab_size, c.data.min_len, c.data.max_len = 6, 1, 5
  c.data.num_train, c.data.num_valid, c.data.num_test = 512, 64, 64
  c.batching.batch_size, c.batching.eval_batch_size, c.batching.num_buckets = 32, 64, 1
  # The cheapest cell compiles fastest; attention and the bidirectional encoder do the work.
  c.model.emb_dim, c.model.hidden_dim, c.model.cell = 16, 32, "rnn"
  c.model.local_window = 1  # windows of 3 out of up to 5 source positions
  for key, value in model.items():
    c.model[key] = value
  c.train.num_steps, c.train.warmup_steps, c.train.learning_rate = STEPS, 10, 1e-2
  return c


@pytest.mark.slow
def test_every_variant_learns_to_reverse():
  base = tiny_config()
  prepared = training.prepare(base)
  task = prepared.task
  configs = {name: tiny_config(**model) for name, model in VARIANTS.items()}
  models = {name: config_lib.build_model(c, len(task.src_vocab), len(task.tgt_vocab),
                                         prepared.max_src_len)
            for name, c in configs.items()}
  batches = TrainBatches(task.train, task.src_vocab, task.tgt_vocab, 32,
                               prepared.buckets, 0)
  first = batches.batch(0)
  first.pop("index")

  @jax.jit
  def init_all(key):  # one program for all variants: compiling is most of the cost
    return {name: m.init(key, first["src"][:1], first["src_lengths"][:1],
                         first["tgt_in"][:1])["params"] for name, m in models.items()}

  params = init_all(jax.random.key(0))
  states = {name: training.TrainState.create(
      apply_fn=models[name].apply, params=params[name],
      tx=training.make_optimizer(configs[name].train),
      objective=Objective.create(configs[name].train, models[name].options))
            for name in models}

  @jax.jit
  def step_all(states, batch, rng):
    return {name: training.train_step(state, batch, rng) for name, state in states.items()}

  @jax.jit
  def eval_all(states, batch):
    return {name: training.eval_step(state, batch) for name, state in states.items()}

  rng = jax.random.key(1)
  history = []
  for step in range(STEPS):
    batch = batches.batch(step)
    batch.pop("index")
    results = step_all(states, batch, rng)
    states = {name: state for name, (state, _) in results.items()}
    history.append({name: metrics for name, (_, metrics) in results.items()})
  history = jax.device_get(history)

  valid = next(iter(eval_batches(task.valid, task.src_vocab, task.tgt_vocab, 64,
                                       prepared.buckets)))
  valid.pop("index")
  evaluation = jax.device_get(eval_all(states, valid))

  for name in VARIANTS:
    losses = np.array([h[name]["loss"] for h in history])
    assert np.all(np.isfinite(losses)), name
    start, end = losses[:10].mean(), losses[-10:].mean()
    assert end < 0.3 * start, f"{name}: loss {start:.3f} -> {end:.3f}"
    # Evaluation mode (argmax / hard monotonic decoding), teacher-forced on held-out
    # examples: chance is about 1 / 7 (six symbols and EOS).
    e = evaluation[name]
    accuracy = e["correct"] / e["tokens"]
    assert accuracy > 0.7, f"{name}: held-out token accuracy {accuracy:.3f}"
  baselines = np.array([h["hard_reinforce"]["reward_baseline"] for h in history])
  assert np.all(baselines < 0) and baselines[-1] > 0.25 * baselines[0]  # tracks -NLL
  assert all("reward_baseline" not in h["hard_gumbel"] for h in history)
  assert float(states["hard_reinforce"].reward_baseline) == pytest.approx(baselines[-1])


@pytest.mark.parametrize("key,value,needle", [
    ("model.mechanism", "sparse", "local_p"),
    ("model.local_window", 0, ">= 1"),
    ("model.hard_estimator", "nvil", "gumbel, reinforce"),
    ("model.hard_temperature", 0.0, "> 0"),
    ("model.hard_entropy_weight", -1.0, ">= 0"),
    ("model.hard_baseline_decay", 1.0, "[0, 1)"),
    ("model.monotonic_noise", -0.5, ">= 0"),
])
def test_bad_mechanism_options_name_the_key(key, value, needle):
  c = tiny_config()
  c.model[key.split(".")[1]] = value
  with pytest.raises(config_lib.ConfigError) as e:
    config_lib.validate(c)
  assert e.value.key == key and needle in str(e.value)


def test_mechanism_options_reach_the_attention_module():
  c = tiny_config(mechanism="hard", local_window=3, hard_estimator="gumbel",
                  hard_temperature=0.5, hard_entropy_weight=0.2, hard_baseline_decay=0.5,
                  monotonic_noise=0.0, monotonic_bias=-2.0)
  config_lib.validate(c)
  model = config_lib.build_model(c, 10, 10, 7)
  assert (model.options.mechanism, model.options.hard_entropy_weight,
          model.options.hard_baseline_decay) == ("hard", 0.2, 0.5)
  # The mechanism the decoder's Attention builds reads them from the one options value.
  options = model.bind({}).decoder_module.attn.mechanism_fn.options
  assert (options.mechanism, options.local_window, options.hard_estimator,
          options.hard_temperature, options.monotonic_noise, options.monotonic_bias) == (
              "hard", 3, "gumbel", 0.5, 0.0, -2.0)
