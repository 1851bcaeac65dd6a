"""A finished run as a Hugging Face thinker checkpoint (`export_run`), and a quick greedy accuracy
check of a converted checkpoint on synth record files (`accuracy`)."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

import hr_jax
from hr_jax.checkpoint import export_hf
from hr_jax.eval.prompts import clean_transcript, parse_answer
from hr_jax.synth import TASK_NAMES, task_file
from hr_jax.tokenizer import special_token_ids
from hr_jax.training.config import TrainConfig
from hr_jax.training.data import prompt_for
from hr_jax.training.loop import TOKENIZER_FILES
from hr_jax.training.state import restore_latest


def export_run(out_dir: str | os.PathLike, hf_dir: str | os.PathLike, step: int | None = None) -> Path:
    """Writes the run's latest (or `step`) parameters as a HF thinker checkpoint with tokenizer files."""
    out = Path(out_dir).absolute()
    tcfg = TrainConfig.from_json(json.loads((out / "train_config.json").read_text()))
    found, cfg, params, _ = restore_latest(out, tcfg, step=step)
    if not found:
        raise FileNotFoundError(f"no checkpoint under {out / 'ckpt'}")
    hf = Path(hf_dir)
    export_hf(params["model"], cfg, hf, base_config=tcfg.hf_config())  # the training heads stay behind
    for f in TOKENIZER_FILES:
        shutil.copy(out / "tokenizer" / f, hf / f)
    ids = special_token_ids(cfg.text.vocab_size)
    gen = {"eos_token_id": [ids["<|im_end|>"]], "pad_token_id": ids["<|endoftext|>"]}
    (hf / "generation_config.json").write_text(json.dumps(gen, indent=2) + "\n")
    return hf


def _score(record: dict[str, Any], reply: str) -> bool:
    """Exact match: the parsed option letter for multiple choice, the normalised words for digits."""
    choices = [record.get(f"choice_{c}", "") for c in "abcd"]
    choices = [c for c in choices if c]
    if not choices:
        norm = lambda s: " ".join(s.lower().replace(",", " ").split())  # noqa: E731
        return norm(clean_transcript(reply)) == norm(record["answer_gt"])
    return parse_answer(reply, choices) == record["answer_letter"]


def accuracy(
    model_dir: str | os.PathLike,
    data_dir: str | os.PathLike,
    n: int | None = None,
    style: str = "eval",
    batch_size: int = 16,
    tasks: Sequence[str] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Greedy, unpruned (ratio 0) exact-match accuracy per task on `hr_jax.synth` record files.

    Records of all tasks are sorted by duration and batched together, so few shapes are compiled.
    """
    model = hr_jax.load(model_dir)
    recs = []
    for task in tasks or TASK_NAMES:
        path = task_file(data_dir, task)
        if path.exists():
            recs += json.loads(path.read_text())[:n]
    recs.sort(key=lambda r: (r.get("duration", 0), r["task"], r["index"]))
    hits: dict[str, list[bool]] = {}
    examples: dict[str, list[dict[str, str]]] = {}
    t0 = time.perf_counter()
    for i in tqdm(range(0, len(recs), batch_size), desc="accuracy", disable=not progress):
        chunk = recs[i : i + batch_size]
        audios = [str(Path(data_dir) / r["path"]) for r in chunk]
        batch = hr_jax.make_batch(model, audios, [prompt_for(r, style) for r in chunk])
        outs = hr_jax.generate_batch(model, batch, ratio=0.0, max_new_tokens=16)
        for r, text in zip(chunk, outs.texts, strict=True):
            hits.setdefault(r["task"], []).append(_score(r, text))
            ex = examples.setdefault(r["task"], [])
            if len(ex) < 3:
                ex.append({"target": r["target"], "reply": text})
    res: dict[str, Any] = {
        t: {"accuracy": float(np.mean(h)), "n": len(h), "examples": examples[t]}
        for t, h in sorted(hits.items())
    }
    res["mean"] = float(np.mean([v["accuracy"] for v in res.values()])) if hits else float("nan")
    res["seconds"] = round(time.perf_counter() - t0, 1)
    res["durations_s"] = [min(r.get("duration", 0) for r in recs), max(r.get("duration", 0) for r in recs)]
    return res
