"""The audio of a synthetic example: informative items placed at random in a clip of filler
(distractors that cannot change the answer, over a noise floor), and the timeline of what sounds where."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from hr_jax.audio import SAMPLE_RATE

from . import sounds
from .speech import random_voice, speak
from .tasks import (
    EDGE_SECONDS,
    FLOOR_RMS,
    MARGIN_SECONDS,
    MEAN_DISTRACTOR_GAP,
    NEUTRAL_SENTENCES,
    TASKS,
    Plan,
    plan_example,
    plan_to_record,
    streams,
)


def _words(text: str) -> str:
    """Spoken text as plain lower-case words ("four, one" -> "four one")."""
    return " ".join("".join(ch for ch in text.lower() if ch.isalnum() or ch.isspace()).split())


def _speech_entry(text: str, voice: Any) -> dict[str, Any]:
    return {"kind": "speech", "label": f"{voice.gender} voice", "text": _words(text)}


def _render_item(item: dict[str, Any], rng: np.random.Generator) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Audio of one informative item, at a level between 0.07 and 0.12 RMS, and what sounds where in
    it: timeline entries with sample offsets ``a``..``b`` inside the item."""
    rms = float(rng.uniform(0.07, 0.12))
    kind = item["kind"]
    if kind == "speech":
        x = sounds.normalize_rms(speak(item["text"], item["voice"]), rms, max_peak=0.9)
        return x, [dict(_speech_entry(item["text"], item["voice"]), a=0, b=x.size)]
    if kind == "event":
        x = sounds.sound_event(item["name"], rng, rms)
        return x, [{"kind": "event", "label": item["name"], "a": 0, "b": x.size}]
    if kind == "scene":
        x = sounds.scene(item["name"], item["seconds"], rng, rms)
        return x, [{"kind": "scene", "label": item["name"], "a": 0, "b": x.size}]
    if kind == "melody":
        x = sounds.melody(item["style"], item["seconds"], rng, rms)
        return x, [{"kind": "melody", "label": f"{item['style']} music", "a": 0, "b": x.size}]
    if kind == "word_sound":
        word = sounds.normalize_rms(speak(item["word"], item["voice"]), rms, max_peak=0.9)
        event = sounds.sound_event(item["event"], rng, rms)
        gap = np.zeros(sounds.n_samples(item["gap"]), dtype=np.float32)
        start = word.size + gap.size
        entries = [
            dict(_speech_entry(item["word"], item["voice"]), a=0, b=word.size),
            {"kind": "event", "label": item["event"], "a": start, "b": start + event.size},
        ]
        return np.concatenate([word, gap, event]), entries
    raise ValueError(f"unknown item kind {kind!r}")


def _distractor(
    kinds: Sequence[str], rng: np.random.Generator, level: float
) -> tuple[dict[str, Any], np.ndarray]:
    """A distractor of an allowed kind: its timeline entry (without a span) and its audio."""
    kind = kinds[int(rng.integers(len(kinds)))]
    if kind == "speech":
        text = NEUTRAL_SENTENCES[int(rng.integers(len(NEUTRAL_SENTENCES)))]
        voice = random_voice(rng)
        return _speech_entry(text, voice), sounds.normalize_rms(speak(text, voice), level, max_peak=0.9)
    while True:  # draw a non-speech sound of an allowed kind
        got, label, audio = sounds.distractor_sound(rng, level)
        if got in kinds:
            return {"kind": got, "label": label}, audio


def _fill(
    clip: np.ndarray,
    start: int,
    end: int,
    kinds: Sequence[str],
    rng: np.random.Generator,
    base_level: float,
    out: list[dict[str, Any]],
) -> None:
    """Place distractors in ``clip[start:end]`` with exponential gaps (mean ``MEAN_DISTRACTOR_GAP``)."""
    cursor = start
    while True:
        cursor += sounds.n_samples(float(rng.exponential(MEAN_DISTRACTOR_GAP)))
        if cursor >= end:
            return
        entry, audio = _distractor(kinds, rng, base_level * float(rng.uniform(0.3, 0.8)))
        if cursor + audio.size > end:
            return
        sounds.place(clip, audio, cursor)
        span = {"start": round(cursor / SAMPLE_RATE, 3), "end": round((cursor + audio.size) / SAMPLE_RATE, 3)}
        out.append({**entry, **span})
        cursor += audio.size


def render(plan: Plan) -> tuple[np.ndarray, list[list[float]], list[dict], list[dict]]:
    """Audio of a plan: ``(waveform float32 @16 kHz, informative segments [[start, end], ...] in seconds,
    distractor list, timeline)``. The clip is ``plan.seconds`` long, stretched (up to
    ``plan.max_seconds``) only when the informative audio does not fit; raises ``ValueError`` when it
    cannot fit at all.

    The timeline lists everything that sounds in the clip but the noise floor, in time order: entries
    ``{"start", "end", "kind", "label", "informative"}`` (seconds; ``kind`` speech, event, scene, melody,
    tone, chord, clicks or noise; ``label`` e.g. "female voice", "siren", "rain", "calm music"), speech
    with its ``text`` (plain words)."""
    max_seconds = plan.max_seconds
    spec = TASKS[plan.task]
    _, rng_audio, rng_layout = streams(plan.seed, plan.split, plan.task, plan.index)
    rendered = [_render_item(it, rng_audio) for it in plan.items]
    parts = [audio for audio, _ in rendered]
    edge, margin = sounds.n_samples(EDGE_SECONDS), sounds.n_samples(MARGIN_SECONDS)
    need = sum(p.size for p in parts) + 2 * edge + (len(parts) - 1) * 2 * margin
    total = max(sounds.n_samples(plan.seconds), need)
    if max_seconds is not None and total > sounds.n_samples(max_seconds):
        raise ValueError(
            f"task {plan.task!r} needs {need / SAMPLE_RATE:.1f} s of informative audio; "
            f"max_seconds={max_seconds} is too small"
        )
    order = [int(i) for i in rng_layout.permutation(len(parts))]
    rendered = [rendered[i] for i in order]
    free = total - need
    cuts = np.sort(rng_layout.integers(0, free + 1, size=len(parts)))
    gaps = np.diff(np.concatenate([[0], cuts]))
    clip = np.zeros(total, dtype=np.float32)
    segments: list[list[float]] = []
    timeline: list[dict[str, Any]] = []
    pos = edge
    spans: list[tuple[int, int]] = []
    for gap, (part, entries) in zip(gaps, rendered, strict=True):
        pos += int(gap)
        sounds.place(clip, part, pos)
        spans.append((pos, pos + part.size))
        segments.append([round(pos / SAMPLE_RATE, 3), round((pos + part.size) / SAMPLE_RATE, 3)])
        for e in entries:
            a, b = pos + e.pop("a"), pos + e.pop("b")
            span = {"start": round(a / SAMPLE_RATE, 3), "end": round(b / SAMPLE_RATE, 3)}
            timeline.append({**e, **span, "informative": True})
        pos += part.size + 2 * margin
    base_level = float(np.sqrt(np.mean(np.concatenate([p for p, _ in rendered]) ** 2)))
    distractors: list[dict] = []
    bounds = [0] + [x for s, e in spans for x in (s - margin, e + margin)] + [total]
    for a, b in zip(bounds[::2], bounds[1::2], strict=True):
        _fill(clip, a, b, spec.distractors, rng_layout, base_level, distractors)
    clip += rng_layout.standard_normal(total).astype(np.float32) * float(rng_layout.uniform(*FLOOR_RMS))
    peak = float(np.abs(clip).max())
    if peak > 0.98:
        clip *= 0.98 / peak
    timeline += [dict(d, informative=False) for d in distractors]
    timeline.sort(key=lambda e: (e["start"], e["end"]))
    return clip.astype(np.float32), segments, distractors, timeline


def make_example(task: str, index: int, **plan_args: Any) -> tuple[np.ndarray, dict[str, Any]]:
    """Synthesize example ``index`` of ``task`` in memory: ``(waveform, record)``. `plan_args` are
    :func:`plan_example`'s (``split``, ``seed``, ``min_seconds``, ``max_seconds``).

    The record has every field of :func:`hr_jax.synth.generate`'s records except ``path``.
    """
    plan = plan_example(task, index, **plan_args)
    audio, segments, distractors, timeline = render(plan)
    meta = dict(plan.meta, distractors=distractors)
    record = plan_to_record(plan, duration=audio.size / SAMPLE_RATE, segments=segments, meta=meta)
    return audio, dict(record, timeline=timeline)
