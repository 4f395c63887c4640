"""The ``grid`` part of ``experiments.benchmark``: train steps/s, target tokens/s, compile
time and peak memory of one jitted train step per decoder style x score function x source
length x batch size, on random batches of a fixed target length, and a least-squares line of
peak memory against source length per (style, score, batch) (``linear_fits``) with what
attention adds per decoder step and source position (``attention_share``). Peak memory is
XLA's own accounting of the compiled program (``compiled.memory_analysis()``).
"""

from __future__ import annotations

import time

import jax
import numpy as np

from attnlab import training
from attnlab.config import base_config, build_model


def grid_state(style: str, score: str, batch: int, src_len: int, tgt_len: int, remat: bool,
                vocab: int, emb: int, hidden: int, dtype: str):
  config = base_config("copy")
  m = config.model
  m.decoder, m.attention, m.remat, m.dtype = style, score, remat, dtype
  m.emb_dim, m.hidden_dim = emb, hidden
  model = build_model(config, vocab, vocab, src_len)
  rng = np.random.default_rng(0)
  src = rng.integers(4, vocab, (batch, src_len)).astype(np.int32)
  tgt = rng.integers(4, vocab, (batch, tgt_len)).astype(np.int32)
  tgt_in = np.concatenate([np.ones((batch, 1), np.int32), tgt[:, :-1]], 1)
  data = {"src": src, "src_lengths": np.full((batch,), src_len, np.int32), "tgt_in": tgt_in,
          "tgt_out": tgt, "tgt_lengths": np.full((batch,), tgt_len, np.int32),
          "example_mask": np.ones((batch,), bool)}
  params = jax.jit(model.init)(jax.random.key(0), data["src"][:1], data["src_lengths"][:1],
                               data["tgt_in"][:1])["params"]
  state = training.TrainState.create(apply_fn=model.apply, params=params,
                                  tx=training.make_optimizer(config.train))
  return state, jax.device_put(data)


def _peak_bytes(compiled) -> int | None:
  analysis = compiled.memory_analysis()
  if analysis is None:
    return None
  return int(analysis.argument_size_in_bytes + analysis.output_size_in_bytes
             + analysis.temp_size_in_bytes - analysis.alias_size_in_bytes)


def bench_grid(styles, scores, src_lens, batch_sizes, tgt_len: int, steps: int, remat: bool,
               vocab: int, emb: int, hidden: int, dtype: str) -> list[dict]:
  rows = []
  step_fn = jax.jit(training.steps.train_step_fn, donate_argnums=0)  # the plain step
  for style in styles:
    for score in (scores if style != "none" else ["-"]):
      for batch in batch_sizes:
        for src_len in src_lens:
          row = {"style": style, "score": score, "batch": batch, "src_len": src_len,
                 "tgt_len": tgt_len}
          for use_remat in ((False, True) if remat else (False,)):
            state, data = grid_state(style, score if score != "-" else "general", batch,
                                      src_len, tgt_len, use_remat, vocab, emb, hidden, dtype)
            rng = jax.random.key(0)
            t0 = time.perf_counter()
            compiled = step_fn.lower(state, data, rng).compile()
            compile_s = time.perf_counter() - t0
            suffix = "_remat" if use_remat else ""
            row["peak_mb" + suffix] = (_peak_bytes(compiled) or 0) / 2**20
            if use_remat:
              continue  # remat: memory only (its speed is the plain step's plus recompute)
            state, metrics = compiled(state, data, rng)
            jax.block_until_ready(metrics)
            t0 = time.perf_counter()
            for _ in range(steps):
              state, metrics = compiled(state, data, rng)
            jax.block_until_ready(metrics)
            elapsed = time.perf_counter() - t0
            row.update(compile_s=compile_s, steps_per_s=steps / elapsed,
                       target_tokens_per_s=steps * batch * tgt_len / elapsed)
          rows.append(row)
          print(grid_line(row), flush=True)
  return rows


def grid_line(row: dict) -> str:
  remat = f" {row['peak_mb_remat']:9.2f}" if "peak_mb_remat" in row else ""
  return (f"{row['style']:9s} {row['score']:12s} {row['batch']:5d} {row['src_len']:6d} "
          f"{row['steps_per_s']:9.1f} {row['target_tokens_per_s']:12.0f} "
          f"{row['compile_s']:8.2f} {row['peak_mb']:9.2f}{remat}")


def linear_fits(rows: list[dict], key: str = "peak_mb") -> list[dict]:
  """Per (style, score, batch): least-squares line of peak memory vs source length (fixed
  target length); its slope / tgt_len is the memory each decoder step adds per source
  position, R^2 says how linear the growth is."""
  fits = []
  keys = sorted({(r["style"], r["score"], r["batch"]) for r in rows})
  for group in keys:
    pts = [(r["src_len"], r[key]) for r in rows
           if (r["style"], r["score"], r["batch"]) == group and key in r]
    tgt_len = rows[0]["tgt_len"]
    if len(pts) < 3:
      continue
    x, y = np.array(pts, float).T
    slope, intercept = np.polyfit(x, y, 1)
    residual = y - (slope * x + intercept)
    r2 = 1 - residual.var() / max(y.var(), 1e-30)
    fits.append({"style": group[0], "score": group[1], "batch": group[2], "memory": key,
                 "tgt_len": tgt_len, "mb_per_src_position": slope, "intercept_mb": intercept,
                 "r2": r2})
  return fits


def attention_share(fits: list[dict]) -> list[dict]:
  """Adds each attention decoder's growth beyond the no-attention decoder's (same batch and
  memory kind: the encoder's share), per decoder step: what attention itself keeps for
  every source position at every target step."""
  base = {(f["batch"], f["memory"]): f for f in fits if f["style"] == "none"}
  for f in fits:
    ref = base.get((f["batch"], f["memory"]))
    if ref is not None and f["style"] != "none":
      f["attention_kb_per_decoder_step_per_src_position"] = (
          (f["mb_per_src_position"] - ref["mb_per_src_position"]) * 1024 / f["tgt_len"])
  return fits


def print_memory_fits(fits: list[dict], tgt_len: int) -> None:
  """The lines of ``attention_share(linear_fits(...))``, one per (style, score, batch, memory)."""
  if not fits:
    return
  print(f"\npeak training memory vs source length, target length {tgt_len} "
        "(least-squares line)")
  for f in fits:
    share = f.get("attention_kb_per_decoder_step_per_src_position")
    print(f"{f['style']:9s} {f['score']:12s} batch {f['batch']:4d} {f['memory']:13s}: "
          f"{f['mb_per_src_position'] * 1024:8.2f} KB per source position, R^2 "
          f"{f['r2']:.4f}" + ("" if share is None else
                              f"; attention: {share:.2f} KB per decoder step per source "
                              "position"))
