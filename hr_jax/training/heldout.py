"""A fixed held-out set of clips from a seed training never draws, scored during a run (every
`eval_every` steps, logged) and at a stage's gate (`python -m hr_jax.training --out RUN --heldout SEED`).

Training stage "encoder" is scored through its heads: greedy CTC transcripts (argmax per audio
token, repeats merged, blanks dropped) against the spoken words, as corpus word accuracy (100 - WER)
and share of clips transcribed exactly, and the per-token class accuracy. Other stages are scored by
reply exact match: every argmax of the teacher-forced reply equals its target token, which is
exactly when greedy decoding produces the target.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from pathlib import Path
from typing import Any

import jax
import numpy as np

from hr_jax.eval.metrics import normalize_transcript, word_accuracy
from hr_jax.training.config import TrainConfig
from hr_jax.training.data import collate, collate_audio, make_train_example
from hr_jax.training.objective import head_losses, loss_fn
from models.qwen2_5_omni.audio_encoder import encode_audio


def ctc_greedy(ids: np.ndarray, n: int) -> list[int]:
    """Token ids of a greedy CTC path `ids [Na]` over its first `n` tokens (blank 0, token t at t + 1)."""
    path = ids[:n]
    keep = np.concatenate([[True], path[1:] != path[:-1]]) & (path != 0)
    return [int(t) - 1 for t in path[keep]]


@functools.partial(jax.jit, static_argnums=(1,))
def _encoder_outputs(params: dict[str, Any], cfg: Any, batch: dict[str, Any]):
    num_frames = batch["feature_attention_mask"].sum(-1)
    audio, n_audio = encode_audio(params["model"].audio, cfg.audio, batch["input_features"], num_frames)
    _, (cls_logits, ctc_logits) = head_losses(params["heads"], audio, n_audio, batch)
    return ctc_logits.argmax(-1), n_audio, cls_logits.argmax(-1)


@functools.partial(jax.jit, static_argnums=(1,))
def _reply_hits(params: dict[str, Any], cfg: Any, batch: dict[str, Any]) -> jax.Array:
    return loss_fn(params, cfg, batch, (0.0, 0.0))[1]["hit"]


class HeldOut:
    """Clips `0..n-1` of the run's task cycle drawn with `seed` instead of the run's data seed, at
    the first curriculum stage's clip lengths (or `min_seconds`..`max_seconds`)."""

    def __init__(self, tcfg: TrainConfig, tok, seed: int, n: int, batch_size: int = 16,
                 min_seconds: float | None = None, max_seconds: float | None = None):  # fmt: skip
        if seed == tcfg.data_seed:
            raise ValueError(f"held-out seed {seed} is the run's data seed")
        first = tcfg.stages()[0]
        lengths = {
            k: v for k, v in (("min_seconds", min_seconds), ("max_seconds", max_seconds)) if v is not None
        }
        stage = dataclasses.replace(first, first_example=0, **lengths)
        self.tcfg = dataclasses.replace(tcfg, data_seed=seed, describe_prob=0.0, transcribe_prob=0.0)
        self.tok, self.seed = tok, seed
        tasks = tcfg.task_names()
        exs = [make_train_example(tok, i, tasks, self.tcfg, stage) for i in range(n)]
        exs.sort(key=lambda e: e["features"].shape[1])
        self.batches = [exs[i : i + batch_size] for i in range(0, n, batch_size)]

    def __call__(self, params: dict[str, Any]) -> dict[str, Any]:
        cfg = self.tcfg.model
        if self.tcfg.stage == "encoder":
            return self._score_encoder(params, cfg)
        hits: dict[str, list[bool]] = {}
        pad = int(self.tok.pad_token_id)
        for exs in self.batches:
            batch = collate(exs, pad, self.tcfg.target_slots, cfg.audio.num_mel_bins)
            for e, h in zip(exs, np.asarray(_reply_hits(params, cfg, batch)), strict=True):
                hits.setdefault(e["task"], []).append(bool(h))
        per_task = {t: round(100.0 * float(np.mean(h)), 1) for t, h in sorted(hits.items())}
        return {"seed": self.seed, "n": sum(map(len, hits.values())), "exact": per_task,
                "mean_exact": round(float(np.mean(list(per_task.values()))), 1)}  # fmt: skip

    def _score_encoder(self, params: dict[str, Any], cfg: Any) -> dict[str, Any]:
        refs: dict[str, list[str]] = {}
        hyps: dict[str, list[str]] = {}
        right = total = 0
        for exs in self.batches:
            batch = collate_audio(exs, cfg.audio.num_mel_bins)
            ids, n_audio, cls = map(np.asarray, _encoder_outputs(params, cfg, batch))
            right += int(((cls == batch["labels"]) * batch["labels_w"]).sum())
            total += int(batch["labels_w"].sum())
            for e, row, n in zip(exs, ids, n_audio, strict=True):
                if e["ctc"].size:
                    refs.setdefault(e["task"], []).append(self.tok.decode(e["ctc"]))
                    hyps.setdefault(e["task"], []).append(self.tok.decode(ctc_greedy(row, int(n))))
        all_refs = [r for t in refs for r in refs[t]]
        all_hyps = [h for t in refs for h in hyps[t]]
        exact = [
            normalize_transcript(r) == normalize_transcript(h)
            for r, h in zip(all_refs, all_hyps, strict=True)
        ]
        return {
            "seed": self.seed,
            "clips_with_words": len(all_refs),
            "word_acc": round(word_accuracy(all_refs, all_hyps), 2),
            "exact": round(100.0 * float(np.mean(exact)), 2) if exact else float("nan"),
            "label_acc": round(100.0 * right / max(total, 1), 2),
            "word_acc_per_task": {t: round(word_accuracy(refs[t], hyps[t]), 2) for t in sorted(refs)},
            "examples": [{"ref": r, "hyp": h} for r, h in list(zip(all_refs, all_hyps, strict=True))[:4]],
        }


def score_run(run_dir: str | os.PathLike, seed: int, n: int) -> dict[str, Any]:
    """The held-out scores of run `run_dir`'s latest checkpoint on `n` clips of `seed`."""
    from hr_jax.training.data import load_tokenizer
    from hr_jax.training.state import restore_latest

    run = Path(run_dir)
    tcfg = TrainConfig.from_json(json.loads((run / "train_config.json").read_text()))
    step, _, params, _ = restore_latest(run, tcfg)
    if not step:
        raise FileNotFoundError(f"no checkpoint under {run / 'ckpt'}")
    return {"step": step, **HeldOut(tcfg, load_tokenizer(run / "tokenizer"), seed, n)(params)}
