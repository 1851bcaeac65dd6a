"""The training data stream: synthetic clips rendered in a background process, tokenized with the
inference prompt path, length-bucketed and collated like `hr_jax.make_batch` (NumPy only).

Example `i` of the stream is task `TASK_NAMES[i % 7]`, index `i // 7` of the train split, so every
step sees fresh clips and every task equally often; the stream is a pure function of (data seed,
step), so a resumed run sees exactly the batches an uninterrupted one would.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
from transformers import AutoTokenizer

from hr_jax.audio import extract_features
from hr_jax.eval import prompts as eval_prompts
from hr_jax.prompt import DEFAULT_PROMPT, DEFAULT_SYSTEM_PROMPT, prompt_ids
from hr_jax.synth import corpus, format_prompt, make_example
from hr_jax.tokenizer import build_tokenizer
from hr_jax.training.config import (
    FRAME_MULTIPLE,
    PROMPT_STYLES,
    SEQ_MULTIPLE,
    TARGET_SLOTS,
    TEXT_CAP,
    TrainConfig,
)
from models.config import num_audio_tokens


def tokenizer_corpus() -> list[str]:
    """`hr_jax.synth.corpus()` plus the fixed prompt text every input carries (system prompt, both
    instruction styles, chat roles), so they tokenize into few tokens."""
    fixed = [DEFAULT_SYSTEM_PROMPT, eval_prompts.MC_INSTRUCTION, eval_prompts.MC_SUFFIX,
             eval_prompts.ASR_PROMPT, DEFAULT_PROMPT,
             "system\n", "user\n", "assistant\n", "You are a helpful assistant."]  # fmt: skip
    return list(corpus()) + fixed * 50


def build_run_tokenizer(vocab_size: int, out_dir: str | os.PathLike) -> None:
    build_tokenizer(tokenizer_corpus(), vocab_size, out_dir)


def load_tokenizer(tok_dir: str | os.PathLike):
    tok = AutoTokenizer.from_pretrained(os.fspath(tok_dir))
    tok.padding_side = "left"
    return tok


def prompt_for(record: dict[str, Any], style: str = "synth") -> str:
    """The instruction of a synth record in one of `PROMPT_STYLES`: the generator's own
    (`hr_jax.synth.format_prompt`) or the benchmark's (`hr_jax.eval.prompts.record_prompt`, exactly
    what `hr-jax eval --benchmark synth` asks)."""
    if style == "synth":
        return format_prompt(record)
    if style == "eval":
        return eval_prompts.record_prompt(record)
    raise ValueError(f"unknown prompt style {style!r}; one of {PROMPT_STYLES}")


_TOKENIZERS: dict[str, Any] = {}


def _worker_tokenizer(tok_dir: str):
    if tok_dir not in _TOKENIZERS:
        _TOKENIZERS[tok_dir] = load_tokenizer(tok_dir)
    return _TOKENIZERS[tok_dir]


def make_train_example(
    tok, index: int, tasks: Sequence[str], seed: int, min_s: float, max_s: float
) -> dict[str, Any]:
    """Stream example `index`: prompt ids, reply ids, log-mel `[mel, frames]` (float16) and task."""
    task = tasks[index % len(tasks)]
    k = index // len(tasks)
    try:
        wave, rec = make_example(task, k, split="train", seed=seed, min_seconds=min_s, max_seconds=max_s)
    except ValueError:  # the informative audio does not fit in max_s: allow a longer clip
        wave, rec = make_example(task, k, split="train", seed=seed, min_seconds=min_s, max_seconds=2 * max_s)
    rng = np.random.default_rng([seed, index, 17])
    style = PROMPT_STYLES[int(rng.integers(len(PROMPT_STYLES)))]
    feats, fmask = extract_features([wave])
    n_frames = int(fmask.sum())
    ids = prompt_ids(tok, prompt_for(rec, style), num_audio_tokens(n_frames), DEFAULT_SYSTEM_PROMPT)
    reply = list(tok(rec["target"] + "<|im_end|>", add_special_tokens=False)["input_ids"])[:TARGET_SLOTS]
    return {
        "prompt": np.asarray(ids, np.int32),
        "reply": np.asarray(reply, np.int32),
        "features": feats[0, :, :n_frames].astype(np.float16),
        "task": task,
    }


def make_group(
    tok_dir: str, group_index: int, tasks: Sequence[str], seed: int, min_s: float, max_s: float, size: int
) -> list[dict[str, Any]]:
    """Examples `[group_index * size, (group_index + 1) * size)`, sorted by audio length."""
    tok = _worker_tokenizer(tok_dir)
    exs = [make_train_example(tok, group_index * size + j, tasks, seed, min_s, max_s) for j in range(size)]
    order = sorted(range(size), key=lambda j: (exs[j]["features"].shape[1], j))
    return [exs[j] for j in order]


def collate(examples: Sequence[dict[str, Any]], pad_id: int, n_mels: int = 128) -> dict[str, np.ndarray]:
    """Left-padded batch (as `make_batch`) + scoring slots.

    `targets [B, TARGET_SLOTS]` are the reply token ids, `target_pos` the positions whose logits
    predict them, `target_w` 1 for real slots.
    """
    b = len(examples)
    n = [e["prompt"].size + e["reply"].size for e in examples]
    frames = max(e["features"].shape[1] for e in examples)
    t = -(-frames // FRAME_MULTIPLE) * FRAME_MULTIPLE
    # one sequence length per frame bucket (few compiles); longer rows (rare) round up further
    length = max(num_audio_tokens(t) + TEXT_CAP, max(n))
    length = -(-length // SEQ_MULTIPLE) * SEQ_MULTIPLE
    ids = np.full((b, length), pad_id, np.int32)
    mask = np.zeros((b, length), np.int32)
    feats = np.zeros((b, n_mels, t), np.float32)
    fmask = np.zeros((b, t), np.int32)
    targets = np.zeros((b, TARGET_SLOTS), np.int32)
    pos = np.zeros((b, TARGET_SLOTS), np.int32)
    w = np.zeros((b, TARGET_SLOTS), np.float32)
    for i, e in enumerate(examples):
        seq = np.concatenate([e["prompt"], e["reply"]])
        off = length - seq.size
        ids[i, off:] = seq
        mask[i, off:] = 1
        f = e["features"].shape[1]
        feats[i, :, :f] = e["features"]
        fmask[i, :f] = 1
        r = e["reply"].size
        targets[i, :r] = e["reply"]
        pos[i, :r] = off + e["prompt"].size - 1 + np.arange(r)
        w[i, :r] = 1
    return {
        "input_ids": ids, "attention_mask": mask, "input_features": feats, "feature_attention_mask": fmask,
        "targets": targets, "target_pos": pos, "target_w": w,
    }  # fmt: skip


class _InlineExecutor:
    """`workers=0`: render groups in the calling thread (tests, debugging)."""

    _processes: dict = {}

    def submit(self, fn, *args) -> cf.Future:
        f: cf.Future = cf.Future()
        f.set_result(fn(*args))
        return f

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        pass


class DataStream:
    """Batches for steps `start, start+1, ...`, rendered `prefetch` groups ahead in a spawned process."""

    def __init__(self, tcfg: TrainConfig, tok_dir: str, pad_id: int, start_step: int, prefetch: int = 2,
                 workers: int = 1):  # fmt: skip
        self.tcfg, self.tok_dir, self.pad_id = tcfg, tok_dir, pad_id
        self.step = start_step
        self.prefetch = prefetch if workers else 0
        self.pool = (
            cf.ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"))
            if workers
            else _InlineExecutor()
        )
        self.futures: dict[int, cf.Future] = {}
        self.cache: tuple[int, list] | None = None

    def _submit(self, g: int) -> None:
        if g not in self.futures:
            c = self.tcfg
            self.futures[g] = self.pool.submit(
                make_group, self.tok_dir, g, c.task_names(), c.data_seed, c.min_seconds, c.max_seconds,
                c.group * c.batch_size,
            )  # fmt: skip

    def next(self) -> tuple[dict[str, np.ndarray], list[str]]:
        c = self.tcfg
        g, j = divmod(self.step, c.group)
        for h in range(g, g + self.prefetch + 1):
            self._submit(h)
        if self.cache is None or self.cache[0] != g:
            self.cache = (g, self.futures.pop(g).result())
        exs = self.cache[1][j * c.batch_size : (j + 1) * c.batch_size]
        self.step += 1
        return collate(exs, self.pad_id), [e["task"] for e in exs]

    def close(self) -> None:
        for f in self.futures.values():
            f.cancel()
        procs = list((getattr(self.pool, "_processes", None) or {}).values())
        self.pool.shutdown(wait=False, cancel_futures=True)
        for proc in procs:  # do not leave a worker rendering clips nobody will read
            proc.terminate()
