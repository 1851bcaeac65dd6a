"""Synthetic long-audio tasks for training and benchmarking a small Qwen2.5-Omni-architecture model.

Speech comes from ``espeak-ng`` (several accents, male and female variants, rates and pitches), sounds
are synthesized in NumPy (tones, chords, noise colours, click trains, melodies, sound events). Clips
are 15-90 s long; the informative part is a few seconds at a random position and the rest is filler
(noise floor and distractor sounds that do not change the answer), so audio-token pruning matters.

Output layout of :func:`generate` (one directory per split, e.g. ``data/synth/test``)::

    <out_dir>/<task>/<task>.json            # list of records, AudioMarathon format + extras
    <out_dir>/<task>/wav/<split>_00000.wav  # 16 kHz mono PCM-16

Record fields: ``path`` (relative to ``out_dir``), ``question``, ``choice_a``..``choice_d`` (``""`` where
there is no option: all four for the ASR-like ``digits`` task, ``c``/``d`` for ``gender``), ``answer_gt``
(the answer *text*, always one of the non-empty choices; the transcript for ``digits``),
``answer_letter`` (``"A"``..``"D"``, ``""`` for ``digits``), ``target`` (training target text),
``transcript`` (``digits`` only, same as ``answer_gt``), ``task``, ``category``
(``semantic``/``acoustic``/``mixed``), ``split``, ``index``, ``duration`` (s),
``segments`` (``[[start, end], ...]`` of the informative audio, s), ``meta`` (voice, distractors...) and
``timeline`` (everything that sounds, in time order: kind, label, span, speech with its words, and whether
it is informative; see :func:`hr_jax.synth.render.render`).

CLI: ``python -m hr_jax.synth --out DIR --split test --n 50 [--tasks digits,gender] [--seed S]
[--min-seconds 15 --max-seconds 90]``.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import soundfile as sf
from tqdm import tqdm

from hr_jax.audio import SAMPLE_RATE

from .render import make_example, render
from .sounds import MELODY_STYLES, SCENES, SOUND_EVENTS
from .speech import EspeakNotFoundError, Voice, espeak_binary
from .tasks import (
    CUE_WORDS,
    DIGITS,
    NEUTRAL_SENTENCES,
    QA_TEMPLATES,
    SPLIT_SEEDS,
    SPLITS,
    TASK_NAMES,
    TASKS,
    TaskSpec,
    format_prompt,
    plan_example,
    plan_to_record,
)

__all__ = [
    "DIGITS",
    "MELODY_STYLES",
    "SCENES",
    "SOUND_EVENTS",
    "SAMPLE_RATE",
    "SPLITS",
    "SPLIT_SEEDS",
    "TASKS",
    "TASK_NAMES",
    "EspeakNotFoundError",
    "TaskSpec",
    "Voice",
    "corpus",
    "format_prompt",
    "generate",
    "make_example",
    "render",
    "plan_example",
    "task_file",
]


def task_file(out_dir: str | os.PathLike[str], task: str) -> Path:
    """Path of a task's record file: ``<out_dir>/<task>/<task>.json``."""
    return Path(out_dir) / task / f"{task}.json"


def _write_json_atomic(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=1, ensure_ascii=False)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def generate(
    out_dir: str | os.PathLike[str],
    split: str,
    task: str,
    n: int,
    seed: int | None = None,
    min_seconds: float = 15.0,
    max_seconds: float = 90.0,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Synthesize ``n`` clips of ``task`` for ``split`` into ``out_dir``; return their records.

    ``seed=None`` uses the split's fixed seed (:data:`SPLIT_SEEDS`); output is deterministic given
    (split, task, seed, index, min/max seconds). WAVs go to ``<out_dir>/<task>/wav/``, the records to
    :func:`task_file` (written atomically once all clips exist). Nothing is written elsewhere.
    Raises :class:`EspeakNotFoundError` up front when espeak-ng is missing.
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; one of {TASK_NAMES}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; one of {SPLITS}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    espeak_binary()  # fail early with the install hint
    out = Path(out_dir)
    wav_dir = out / task / "wav"
    wav_dir.mkdir(parents=True, exist_ok=True)
    records: list[dict[str, Any]] = []
    for i in tqdm(range(n), desc=f"{split}/{task}", unit="clip", disable=not progress, leave=False):
        audio, rec = make_example(
            task, i, split=split, seed=seed, min_seconds=min_seconds, max_seconds=max_seconds
        )
        rel = f"{task}/wav/{split}_{i:05d}.wav"
        sf.write(out / rel, audio, SAMPLE_RATE, subtype="PCM_16")
        records.append({"path": rel, **rec})
    _write_json_atomic(task_file(out, task), records)
    return records


def corpus(n_per_task: int = 200, seed: int = 0, splits: Sequence[str] = SPLITS) -> Iterator[str]:
    """Text for training a byte-level BPE tokenizer: every vocabulary word, question template, neutral
    sentence, and for ``n_per_task`` planned examples per task and split the question, choices, answer,
    spoken text and :func:`format_prompt` prompt. Needs no audio and no espeak-ng."""
    yield " ".join(DIGITS)
    yield " ".join(CUE_WORDS)
    yield from NEUTRAL_SENTENCES
    yield from QA_TEMPLATES
    for spec in TASKS.values():
        yield from spec.labels
    for split in splits:
        for task in TASK_NAMES:
            for i in range(n_per_task):
                plan = plan_example(task, i, split, seed + SPLIT_SEEDS[split])
                rec = plan_to_record(plan)
                yield rec["question"]
                yield from plan.choices
                yield rec["target"]
                yield format_prompt(rec)
                for item in plan.items:
                    for key in ("text", "word"):
                        if key in item:
                            yield str(item[key])
