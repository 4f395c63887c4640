"""Bring your own subwords, through `python -m attnlab.main`: SentencePiece BPE or unigram, one
joint model or one per side, or an existing `.model` file saved into the workdir."""

import json

import pytest

from tests.data.test_text import CAPTIONS, external_model
from tests.test_main import CONFIGS, run_main

QUICK = f"{CONFIGS / 'mar_eng.py'}:quick"


def write_corpus(tmp_path):
  corpus = tmp_path / "pairs.txt"
  corpus.write_text("".join(f"{c}\t{c.upper()}\n" for c in CAPTIONS[:6]) * 8, encoding="utf-8")
  return corpus


def corpus_args(corpus, *more):
  return [f"--config.data.path={corpus}", "--config.data.num_valid=4", "--config.data.num_test=4",
          "--config.data.tokenizer=sentencepiece", "--config.data.vocab_size=60",
          "--config.data.max_src_len=80", "--config.data.max_tgt_len=80", *more]


@pytest.mark.slow
def test_external_model_decodes_after_the_file_is_deleted(tmp_path):
  corpus, model = write_corpus(tmp_path), external_model(tmp_path, CAPTIONS)
  workdir = tmp_path / "w"
  run_main("--config", QUICK, "--workdir", str(workdir), "--config.train.num_steps=4",
           *corpus_args(corpus, f"--config.data.spm_model={model}"))
  vocab = json.loads((workdir / "vocab.json").read_text())
  assert vocab["src_tokenizer"] == vocab["tgt_tokenizer"]  # one model for both sides
  model.unlink()
  proc = run_main("--workdir", str(workdir), "--mode=decode", stdin="A dog runs.\n")
  assert len(proc.stdout.splitlines()) == 1


@pytest.mark.parametrize("args,needle", [
    (["--config.data.spm_model=/no/such.model"],
     "data.spm_model: no such SentencePiece model file: '/no/such.model'"),
    (["--config.data.src_spm_model=/no/src.model", "--config.data.tgt_spm_model=/no/t.model"],
     "data.src_spm_model: no such SentencePiece model file"),
    (["--config.data.src_spm_model=/no/src.model"], "config.data.src_spm_model: needs"),
    (["--config.data.spm_model_type=word"], "config.data.spm_model_type: must be one of"),
    (["--config.data.spm_model=x.model", "--config.data.spm_joint=True"],
     "config.data.spm_joint: chooses how a model is trained"),
])
def test_bad_subword_options_exit_2_in_one_line(tmp_path, args, needle):
  proc = run_main("--config", QUICK, "--workdir", str(tmp_path / "w"),
                  *corpus_args(write_corpus(tmp_path), *args), check=False)
  assert proc.returncode == 2, proc.stderr
  assert needle in proc.stderr and "Traceback" not in proc.stderr
  assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_subword_options_need_the_sentencepiece_tokenizer(tmp_path):
  proc = run_main("--config", QUICK, "--workdir", str(tmp_path / "w"),
                  f"--config.data.path={write_corpus(tmp_path)}", "--config.data.spm_joint=True",
                  check=False)
  assert proc.returncode == 2 and "config.data.spm_joint: applies to SentencePiece" in proc.stderr
