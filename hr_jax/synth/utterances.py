"""Short speech-only clips for pre-training the audio encoder to hear words (training stage "encoder").

An utterance is one of: a random string of 1-6 words from the vocabulary of every task (digits,
colours, animals, places, cue words, the question templates' and the neutral sentences' words), a
spoken-QA sentence, a digit string as the ``digits`` task says it, or a neutral sentence; spoken by a
random espeak voice at a random level, placed at a random offset in a clip of ``min_seconds`` ..
``max_seconds`` (stretched to fit the speech) over the tasks' noise floor; with probability
``SOUND_PROB`` a quiet non-speech sound sits in the rest of the clip. Like ``make_example`` the clip is
a pure function of ``(seed, index)`` and comes with a timeline, so the training heads
(``hr_jax.training.labels``) read its words and per-token classes the same way.
"""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np

from hr_jax.audio import SAMPLE_RATE

from . import sounds
from .speech import random_voice, speak
from .tasks import (
    ANIMALS,
    COLOURS,
    CUE_WORDS,
    DIGITS,
    EDGE_SECONDS,
    FLOOR_RMS,
    MARGIN_SECONDS,
    NEUTRAL_SENTENCES,
    PLACES,
    QA_TEMPLATES,
)

SOUND_PROB = 0.3  # share of clips with a non-speech sound beside the speech


def _vocabulary() -> tuple[str, ...]:
    words = {*DIGITS, *COLOURS, *ANIMALS, *PLACES, *CUE_WORDS}
    for text in (*QA_TEMPLATES, *NEUTRAL_SENTENCES):
        words.update(w for w in text.replace("{", " ").replace("}", " ").split() if w.isalpha())
    words -= {"colour", "animal", "place"}  # template slots, not spoken
    return tuple(sorted(words))


VOCABULARY: tuple[str, ...] = _vocabulary()


def utterance_text(rng: np.random.Generator) -> str:
    """What an utterance says (plain words; "I" upper case, as espeak should read it)."""
    kind = rng.random()
    if kind < 0.5:
        return " ".join(
            VOCABULARY[int(i)] for i in rng.integers(len(VOCABULARY), size=int(rng.integers(1, 7)))
        )
    if kind < 0.7:
        template = QA_TEMPLATES[int(rng.integers(len(QA_TEMPLATES)))]
        return template.format(
            colour=COLOURS[int(rng.integers(6))], animal=ANIMALS[int(rng.integers(6))],
            place=PLACES[int(rng.integers(6))],
        )  # fmt: skip
    if kind < 0.9:
        return " ".join(DIGITS[int(i)] for i in rng.integers(10, size=int(rng.integers(1, 7))))
    return NEUTRAL_SENTENCES[int(rng.integers(len(NEUTRAL_SENTENCES)))]


def make_utterance(
    index: int, seed: int, min_seconds: float = 1.0, max_seconds: float = 4.0
) -> tuple[np.ndarray, dict[str, Any]]:
    """Utterance clip `index` of `seed`: ``(waveform float32 @16 kHz, record)``; the record has
    ``task`` ("speech"), ``target`` (the words), ``duration`` and ``timeline`` (as ``make_example``'s)."""
    if not 0 < min_seconds <= max_seconds:
        raise ValueError(f"need 0 < min_seconds <= max_seconds, got {min_seconds}, {max_seconds}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(b"utterance"), index]))
    text = utterance_text(rng)
    voice = random_voice(rng)
    # digit strings are said as the digits task says them, half the time with commas
    said = ", ".join(text.split()) if text.split()[0] in DIGITS and rng.random() < 0.5 else text
    speech = sounds.normalize_rms(speak(said, voice), float(rng.uniform(0.05, 0.12)), max_peak=0.9)
    edge = sounds.n_samples(EDGE_SECONDS)
    total = max(sounds.n_samples(float(rng.uniform(min_seconds, max_seconds))), speech.size + 2 * edge)
    clip = np.zeros(total, np.float32)
    at = edge + int(rng.integers(total - speech.size - 2 * edge + 1))
    sounds.place(clip, speech, at)
    timeline = [{"kind": "speech", "label": f"{voice.gender} voice", "text": text.lower(),
                 "start": round(at / SAMPLE_RATE, 3), "end": round((at + speech.size) / SAMPLE_RATE, 3),
                 "informative": True}]  # fmt: skip
    margin = sounds.n_samples(MARGIN_SECONDS)
    if rng.random() < SOUND_PROB:  # a sound in the larger free side, if it fits there
        before, after = at - margin, total - (at + speech.size + margin)
        kind, label, sound = sounds.distractor_sound(rng, float(rng.uniform(0.02, 0.08)))
        room, lo = (before, 0) if before >= after else (after, at + speech.size + margin)
        if sound.size <= room:
            pos = lo + int(rng.integers(room - sound.size + 1))
            sounds.place(clip, sound, pos)
            span = {"start": round(pos / SAMPLE_RATE, 3), "end": round((pos + sound.size) / SAMPLE_RATE, 3)}
            timeline.append({"kind": kind, "label": label, **span, "informative": False})
    clip += rng.standard_normal(total).astype(np.float32) * float(rng.uniform(*FLOOR_RMS))
    timeline.sort(key=lambda e: (e["start"], e["end"]))
    record = {"task": "speech", "target": text.lower(), "index": index,
              "duration": round(total / SAMPLE_RATE, 3), "meta": {"voice": voice.as_dict()},
              "timeline": timeline}  # fmt: skip
    return clip, record
