"""Small fixtures for evaluation tests and smoke runs: benchmark directories and a fake engine.

:func:`write_audiomarathon_fixture` and :func:`write_mmau_pro_fixture` write tiny data sets in
each benchmark's on-disk format (short 16 kHz WAVs made with soundfile), optionally with broken
records and missing or corrupt audio files. :func:`fake_generate_fn` stands in for
``hr_jax.generate_batch`` (the :data:`hr_jax.eval.runner.GenerateFn` contract): its replies
depend only on each row's own audio and prompt, so any batching, padding, ordering or sharding
mistake in the runner changes the results.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from hr_jax.eval.audio_io import SAMPLE_RATE, SAMPLES_PER_AUDIO_TOKEN

GENRES = ("blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock")


def write_wav(path: str, seconds: float, seed: int) -> str:
    """A deterministic tone-plus-noise WAV (16 kHz, 16-bit) at `path`."""
    import soundfile as sf

    rng = np.random.default_rng(seed)
    n = max(1, int(round(seconds * SAMPLE_RATE)))
    t = np.arange(n) / SAMPLE_RATE
    x = 0.3 * np.sin(2 * np.pi * (150 + 40 * (seed % 7)) * t) + 0.05 * rng.standard_normal(n)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    sf.write(path, x.astype(np.float32), SAMPLE_RATE, subtype="PCM_16")
    return path


def _mc_records(task: str, n: int, audio_dir: str, root: str, seed: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    recs = []
    for i in range(n):
        rel = os.path.join(audio_dir, f"{task}_{i:03d}.wav")
        write_wav(os.path.join(root, rel), 0.3 + 0.1 * ((i * 7 + seed) % 9), seed * 1000 + i)
        opts = list(rng.choice(GENRES, size=4, replace=False))
        recs.append(
            {
                "path": rel,
                "question": f"What is the genre of clip {i}?",
                "choice_a": opts[0],
                "choice_b": opts[1],
                "choice_c": opts[2],
                "choice_d": opts[3],
                "answer_gt": "ABCD"[int(rng.integers(4))],
            }
        )
    return recs


def write_audiomarathon_fixture(
    root: str, tasks: Sequence[str] = ("gtzan", "race", "librispeech"), n: int = 6, seed: int = 0
) -> str:
    """A clean AudioMarathon directory: ``<root>/<TASK>/<task>.json`` with `n` samples per task.

    Multiple-choice tasks get four-way genre questions; ``librispeech`` gets ASR records with
    transcripts. Audio paths are relative to `root`. Returns `root`.
    """
    for k, task in enumerate(tasks):
        task_dir = os.path.join(root, task.upper())
        os.makedirs(task_dir, exist_ok=True)
        if task == "librispeech":
            recs = []
            for i in range(n):
                rel = os.path.join(task.upper(), "audio", f"utt_{i:03d}.wav")
                write_wav(os.path.join(root, rel), 0.4 + 0.1 * (i % 5), 500 + i)
                recs.append({"path": rel, "transcript": f"HELLO WORLD NUMBER {i}"})
        else:
            recs = _mc_records(task, n, os.path.join(task.upper(), "audio"), root, seed + k + 1)
        with open(os.path.join(task_dir, f"{task}.json"), "w", encoding="utf-8") as f:
            json.dump(recs, f, indent=1)
    return root


def write_mmau_pro_fixture(root: str, per_category: int = 3, seed: int = 0) -> str:
    """A clean MMAU-Pro directory: ``<root>/mmau_pro.jsonl`` and ``<root>/data/*.wav``."""
    cats = ["speech", "voice", "sound", "music", "spatial"]
    rng = np.random.default_rng(seed)
    with open(os.path.join(root, "mmau_pro.jsonl"), "w", encoding="utf-8") as f:
        for c_i, cat in enumerate(cats):
            for i in range(per_category):
                rel = f"data/{cat}_{i}.wav"
                write_wav(os.path.join(root, rel), 0.3 + 0.15 * i, 100 * c_i + i)
                choices = [f"{cat} option {j}" for j in range(4)]
                rec = {
                    "id": f"{cat}-{i}",
                    "audio_path": [rel],
                    "question": f"Question {i} about {cat}?",
                    "choices": choices,
                    "answer": choices[int(rng.integers(4))],
                    "category": cat,
                }
                f.write(json.dumps(rec) + "\n")
    return root


@dataclasses.dataclass(frozen=True)
class FakeOutput:
    """What :func:`fake_generate_fn` returns (the fields of ``hr_jax.generate_batch``'s output)."""

    texts: list[str]
    num_generated: np.ndarray
    num_audio: np.ndarray
    kept_audio: np.ndarray
    kept_positions: np.ndarray
    alpha: np.ndarray | None
    spread: np.ndarray | None
    prefill_s: float
    decode_s: float
    audio_start: np.ndarray


FAKE_PREFIX = 5  # fake text tokens before the audio span


def fake_generate_fn(calls: list[dict[str, Any]] | None = None, use_mesh: bool = False):
    """A deterministic stand-in for the engine.

    Per row: Na = len(audio) // 640 audio tokens; k = floor(Na (1 - r)) kept at a uniform
    stride; the reply is the letter ``(sum of the first 800 samples * 1000) mod n_options``
    (or, for ASR prompts, "hello world number <Na mod 7>"); alpha and spread come from the audio
    energy. With `use_mesh`, the per-row statistic is computed by a jitted function whose input
    is sharded over the mesh's "data" axis (so a batch that is not a multiple of the device count
    fails). `calls` collects one dict per call (batch size, ratio, method, seed, prompts).
    """

    def generate(audios, prompts, *, ratio, method, router, max_new_tokens, mesh, seed):
        b = len(audios)
        head = np.zeros((b, 800), np.float32)
        for i, a in enumerate(audios):
            head[i, : min(800, len(a))] = a[:800]
        if use_mesh:
            import jax
            import jax.numpy as jnp
            from jax.sharding import NamedSharding, PartitionSpec

            x = jax.device_put(head, NamedSharding(mesh, PartitionSpec("data")))
            stat = np.asarray(jax.jit(lambda v: jnp.sum(v, axis=1))(x))
        else:
            stat = head.sum(axis=1)
        if calls is not None:
            calls.append(
                {"batch": b, "ratio": ratio, "method": method, "seed": seed, "prompts": list(prompts)}
            )
        num_audio = np.array([len(a) // SAMPLES_PER_AUDIO_TOKEN for a in audios])
        kept_audio = np.floor(num_audio * (1 - ratio)).astype(int)
        width = FAKE_PREFIX + int(num_audio.max()) + 3
        kept_positions = np.full((b, width), -1)
        texts, alpha, spread = [], np.zeros((b, 3)), np.zeros(b)
        for i in range(b):
            na, k = int(num_audio[i]), int(kept_audio[i])
            audio_idx = (np.arange(k) * na // max(k, 1)) if k else np.zeros(0, int)
            pos = np.concatenate(
                [np.arange(FAKE_PREFIX), FAKE_PREFIX + audio_idx, FAKE_PREFIX + na + np.arange(3)]
            )
            kept_positions[i, : len(pos)] = pos
            n_opts = len(re.findall(r"(?m)^[A-Z]\. ", prompts[i]))
            value = int(abs(stat[i]) * 1000)
            texts.append(
                f"The answer is {'ABCDEFGH'[value % n_opts]}." if n_opts else f"hello world number {na % 7}"
            )
            e = float(np.mean(np.abs(audios[i])))
            logits = np.array([np.sin(e * 50), 0.0, np.cos(e * 50)])
            alpha[i] = np.exp(logits) / np.exp(logits).sum()
            spread[i] = e
        routed = method in ("headrouter", "hard", "no_prefilter")
        return FakeOutput(
            texts=texts,
            num_generated=np.array([len(t.split()) + 1 for t in texts]),
            num_audio=num_audio,
            kept_audio=kept_audio,
            kept_positions=kept_positions,
            alpha=alpha if routed else None,
            spread=spread if routed else None,
            prefill_s=0.01 * b,
            decode_s=0.02 * b,
            audio_start=np.full(b, FAKE_PREFIX),
        )

    return generate
