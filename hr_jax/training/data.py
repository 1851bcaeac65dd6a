"""The training data stream: synthetic clips rendered in a background process, tokenized with the
inference prompt path, length-bucketed and collated like `hr_jax.make_batch` (NumPy only).

Example `i` of the stream is task `tasks[i % len(tasks)]` (all seven by default), clip `i // len(tasks)`
of the train split (`clip_index`; a task listed twice is drawn twice per cycle), so every step sees
fresh clips and every task as often as it is listed; the stream is a pure function of (data seed,
step), so a resumed run sees exactly the batches an uninterrupted one would.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import multiprocessing as mp
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
from transformers import AutoTokenizer

from hr_jax.audio import clip_features
from hr_jax.eval import prompts as eval_prompts
from hr_jax.prompt import DEFAULT_PROMPT, DEFAULT_SYSTEM_PROMPT, prompt_ids
from hr_jax.synth import corpus, format_prompt, make_example
from hr_jax.synth.utterances import make_utterance
from hr_jax.tokenizer import build_tokenizer
from hr_jax.training.config import (
    CTC_SLOTS,
    FRAME_MULTIPLE,
    PROMPT_STYLES,
    SEQ_MULTIPLE,
    SPEECH_CLIPS,
    TEXT_CAP,
    Stage,
    TrainConfig,
)
from hr_jax.training.labels import (
    DESCRIBE_PROMPT,
    TOKEN_CLASSES,
    TRANSCRIBE_PROMPT,
    describe,
    spoken_words,
    token_labels,
    transcribe,
)
from models.qwen2_5_omni.config import num_audio_tokens


def tokenizer_corpus() -> list[str]:
    """`hr_jax.synth.corpus()` plus the fixed prompt text every input carries (system prompt, both
    instruction styles, chat roles), so they tokenize into few tokens."""
    fixed = [DEFAULT_SYSTEM_PROMPT, eval_prompts.MC_INSTRUCTION, eval_prompts.MC_SUFFIX,
             eval_prompts.ASR_PROMPT, DEFAULT_PROMPT, DESCRIBE_PROMPT, *TOKEN_CLASSES,
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


def render_clip(
    task: str, k: int, seed: int, min_s: float, max_s: float, cache_dir: str | None = None
) -> tuple[np.ndarray, dict[str, Any]]:
    """Clip `k` of `task` in the train split (`task` "speech": utterance `k`, `hr_jax.synth.utterances`):
    log-mel `[mel, frames]` (float16) and its record. With `cache_dir`, each clip is rendered once and
    read back from `<cache_dir>/train-<seed>-<min>-<max>/`."""
    path = None
    if cache_dir:
        path = os.path.join(cache_dir, f"train-{seed}-{min_s:g}-{max_s:g}", task, f"{k:07d}.npz")
        if os.path.exists(path):
            with np.load(path) as z:
                return z["features"], json.loads(str(z["record"]))
    wave, rec = render_wave(task, k, seed, min_s, max_s, split="train")
    features = clip_features(wave).astype(np.float16)
    if path:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp.npz"
        np.savez(tmp, features=features, record=json.dumps(rec))
        os.replace(tmp, path)  # a reader never sees half a file
    return features, rec


def render_wave(
    task: str, k: int, seed: int, min_s: float, max_s: float, split: str = "train"
) -> tuple[np.ndarray, dict[str, Any]]:
    """The waveform and record of clip `k` of `task` (or utterance `k` for "speech")."""
    if task == SPEECH_CLIPS:
        return make_utterance(k, seed, min_s, max_s)
    try:
        return make_example(task, k, split=split, seed=seed, min_seconds=min_s, max_seconds=max_s)
    except ValueError:  # the informative audio does not fit in max_s: allow a clip as long as it needs
        return make_example(task, k, split=split, seed=seed, min_seconds=min_s, max_seconds=2 * max_s + 8.0)


def clip_index(index: int, tasks: Sequence[str]) -> int:
    """The train-split clip of stream example `index`. A task listed m times in `tasks` is drawn m
    times per cycle, each time a different clip (with every task listed once this is
    `index // len(tasks)`)."""
    cycle, pos = divmod(index, len(tasks))
    task = tasks[pos]
    return cycle * tasks.count(task) + tasks[:pos].count(task)


def ctc_target(tok, words: str) -> np.ndarray:
    """`[<= CTC_SLOTS]` int32 token ids of the spoken words, every word in its mid-sentence form
    (a leading space): byte-level BPE splits about half of the synth words into pieces at the start
    of a text ("brother" -> 3 pieces, " brother" -> 1), which CTC would have to spell."""
    ids = tok(" " + words, add_special_tokens=False)["input_ids"] if words else []
    return np.asarray(ids[:CTC_SLOTS], np.int32)


def make_train_example(
    tok, index: int, tasks: Sequence[str], tcfg: TrainConfig, stage: Stage, cache_dir: str | None = None
) -> dict[str, Any]:
    """Stream example `index` (of `stage`): log-mel `[mel, frames]` (float16), the class of each audio
    token, the spoken words' token ids (CTC target), the task, and (but in training stage "encoder")
    prompt ids and reply ids."""
    task = tasks[index % len(tasks)]
    clip = index % tcfg.clip_pool if tcfg.clip_pool else index  # a pool: the clips come round again
    features, rec = render_clip(
        task, clip_index(clip, tasks), tcfg.data_seed, stage.min_seconds, stage.max_seconds, cache_dir
    )
    n_audio = num_audio_tokens(features.shape[1])
    heads = {
        "features": features,
        "labels": token_labels(rec["timeline"], n_audio),
        "ctc": ctc_target(tok, spoken_words(rec["timeline"])),
        "task": task,
    }
    if tcfg.stage == "encoder":  # no prompt: the decoder is not run
        return heads
    rng = np.random.default_rng([tcfg.data_seed, index, 17])
    draw = rng.random()
    if task == SPEECH_CLIPS:  # the reading curriculum: the reply is exactly the words spoken
        prompt, target = TRANSCRIBE_PROMPT, transcribe(rec["timeline"])
    elif draw < tcfg.describe_prob:
        prompt, target = DESCRIBE_PROMPT, describe(rec["timeline"])
    elif draw < tcfg.describe_prob + tcfg.transcribe_prob:
        prompt, target = TRANSCRIBE_PROMPT, transcribe(rec["timeline"])
    else:
        prompt, target = prompt_for(rec, PROMPT_STYLES[int(rng.integers(len(PROMPT_STYLES)))]), rec["target"]
    ids = prompt_ids(tok, prompt, n_audio, DEFAULT_SYSTEM_PROMPT)
    reply = list(tok(target + "<|im_end|>", add_special_tokens=False)["input_ids"])[: tcfg.target_slots]
    return {"prompt": np.asarray(ids, np.int32), "reply": np.asarray(reply, np.int32), **heads}


def make_group(
    tok_dir: str, group_index: int, tcfg: TrainConfig, cache_dir: str | None = None
) -> list[dict[str, Any]]:
    """The clips of steps `[group_index * group, (group_index + 1) * group)`, sorted by audio length."""
    tok = _worker_tokenizer(tok_dir)
    stage = tcfg.stage_at(group_index * tcfg.group)
    size = tcfg.group * stage.batch_size
    first = stage.first_example + (group_index * tcfg.group - stage.first_step) * stage.batch_size
    tasks = tcfg.task_names()
    exs = [make_train_example(tok, first + j, tasks, tcfg, stage, cache_dir) for j in range(size)]
    order = sorted(range(size), key=lambda j: (exs[j]["features"].shape[1], j))
    return [exs[j] for j in order]


def collate(
    examples: Sequence[dict[str, Any]], pad_id: int, target_slots: int, n_mels: int = 128
) -> dict[str, np.ndarray]:
    """Left-padded batch (as `make_batch`) + scoring slots.

    `targets [B, target_slots]` are the reply token ids, `target_pos` the positions whose logits
    predict them, `target_w` 1 for real slots; `labels [B, Na]` the class of each audio token (`Na`
    the bucket's audio tokens) with `labels_w`; `ctc [B, CTC_SLOTS]` the spoken words' ids with `ctc_w`.
    """
    b = len(examples)
    n = [e["prompt"].size + e["reply"].size for e in examples]
    out = collate_audio(examples, n_mels)
    na = out["labels"].shape[1]
    # one sequence length per frame bucket (few compiles); longer rows (rare) round up further
    length = -(-max(na + TEXT_CAP, max(n)) // SEQ_MULTIPLE) * SEQ_MULTIPLE
    out |= {
        "input_ids": np.full((b, length), pad_id, np.int32),
        "attention_mask": np.zeros((b, length), np.int32),
        "targets": np.zeros((b, target_slots), np.int32),
        "target_pos": np.zeros((b, target_slots), np.int32),
        "target_w": np.zeros((b, target_slots), np.float32),
    }
    for i, e in enumerate(examples):
        seq = np.concatenate([e["prompt"], e["reply"]])
        off = length - seq.size
        out["input_ids"][i, off:] = seq
        out["attention_mask"][i, off:] = 1
        r = e["reply"].size
        out["targets"][i, :r] = e["reply"]
        out["target_pos"][i, :r] = off + e["prompt"].size - 1 + np.arange(r)
        out["target_w"][i, :r] = 1
    return out


def collate_audio(examples: Sequence[dict[str, Any]], n_mels: int = 128) -> dict[str, np.ndarray]:
    """The audio half of a batch (all that training stage "encoder" reads): `input_features
    [B, mel, T]` with `feature_attention_mask [B, T]` (T the frames rounded up to `FRAME_MULTIPLE`),
    `labels [B, Na]` with `labels_w`, `ctc [B, CTC_SLOTS]` with `ctc_w` (see `collate`)."""
    b = len(examples)
    frames = max(e["features"].shape[1] for e in examples)
    t = -(-frames // FRAME_MULTIPLE) * FRAME_MULTIPLE
    na = num_audio_tokens(t)
    out = {
        "input_features": np.zeros((b, n_mels, t), np.float32),
        "feature_attention_mask": np.zeros((b, t), np.int32),
        "labels": np.zeros((b, na), np.int32),
        "labels_w": np.zeros((b, na), np.float32),
        "ctc": np.zeros((b, CTC_SLOTS), np.int32),
        "ctc_w": np.zeros((b, CTC_SLOTS), np.float32),
    }
    for i, e in enumerate(examples):
        f = e["features"].shape[1]
        out["input_features"][i, :, :f] = e["features"]
        out["feature_attention_mask"][i, :f] = 1
        k = e["labels"].size
        out["labels"][i, :k], out["labels_w"][i, :k] = e["labels"], 1
        c = e["ctc"].size
        out["ctc"][i, :c], out["ctc_w"][i, :c] = e["ctc"], 1
    return out


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
                 workers: int = 1, cache_dir: str | None = None):  # fmt: skip
        self.tcfg, self.tok_dir, self.pad_id, self.cache_dir = tcfg, tok_dir, pad_id, cache_dir
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
        if g not in self.futures and g * self.tcfg.group < self.tcfg.steps:
            self.futures[g] = self.pool.submit(make_group, self.tok_dir, g, self.tcfg, self.cache_dir)

    def next(self) -> tuple[dict[str, np.ndarray], list[str]]:
        c = self.tcfg
        g, j = divmod(self.step, c.group)
        for h in range(g, g + self.prefetch + 1):
            self._submit(h)
        if self.cache is None or self.cache[0] != g:
            self.cache = (g, self.futures.pop(g).result())
        bs = c.stage_at(self.step).batch_size
        exs = self.cache[1][j * bs : (j + 1) * bs]
        self.step += 1
        if c.stage == "encoder":
            return collate_audio(exs, c.model.audio.num_mel_bins), [e["task"] for e in exs]
        return collate(exs, self.pad_id, c.target_slots, c.model.audio.num_mel_bins), [e["task"] for e in exs]

    def close(self) -> None:
        for f in self.futures.values():
            f.cancel()
        procs = list((getattr(self.pool, "_processes", None) or {}).values())
        self.pool.shutdown(wait=False, cancel_futures=True)
        for proc in procs:  # do not leave a worker rendering clips nobody will read
            proc.terminate()
