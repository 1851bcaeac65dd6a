"""Dense supervision from a synthetic clip's timeline (training only; nothing here is exported).

`hr_jax.synth` knows what sounds where in every clip (`record["timeline"]`). From it come:
- one class per audio token (25 per second): the noise floor, a male or female voice, each sound
  event, scene noise, melody style, and the distractor sounds (`token_labels`);
- the words spoken in the clip, in time order, for a CTC head over the audio tokens (`spoken_words`);
- the reply of the "describe the clip" task, which lists every sound in time order (`describe`), so
  that a clip supervises tens of reply tokens instead of four.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from hr_jax.audio import TOKENS_PER_SECOND
from hr_jax.synth import MELODY_STYLES, SCENES, SOUND_EVENTS

FLOOR = "floor"
TOKEN_CLASSES: tuple[str, ...] = (
    FLOOR,
    "male voice",
    "female voice",
    *SOUND_EVENTS,
    *SCENES,
    *(f"{style} music" for style in MELODY_STYLES),
    "tone",
    "chord",
    "clicks",
    "noise",
)
CLASS_INDEX = {name: i for i, name in enumerate(TOKEN_CLASSES)}
DESCRIBE_PROMPT = "Describe the clip: list every sound you hear, in time order."
TRANSCRIBE_PROMPT = "Transcribe all speech in the clip."
NO_SPEECH = "no speech"


def token_labels(timeline: Sequence[dict[str, Any]], num_tokens: int) -> np.ndarray:
    """`[num_tokens]` int32 class (`TOKEN_CLASSES`) of each audio token: the timeline entry that covers
    the token's centre (a later entry wins where two overlap), else the floor."""
    centres = (np.arange(num_tokens) + 0.5) / TOKENS_PER_SECOND
    out = np.zeros(num_tokens, np.int32)
    for entry in timeline:
        inside = (centres >= entry["start"]) & (centres < entry["end"])
        out[inside] = CLASS_INDEX[entry["label"]]
    return out


def spoken_words(timeline: Sequence[dict[str, Any]]) -> str:
    """Every word spoken in the clip, in time order."""
    return " ".join(e["text"] for e in timeline if e["kind"] == "speech" and e.get("text"))


def transcribe(timeline: Sequence[dict[str, Any]]) -> str:
    """The "transcribe all speech" reply: every word spoken, in time order, or ``"no speech"``."""
    return spoken_words(timeline) or NO_SPEECH


def describe(timeline: Sequence[dict[str, Any]]) -> str:
    """The "describe the clip" reply: every sound in time order, speech with its words, e.g.
    ``"female voice: four one one; siren; rain"``."""
    parts = [f"{e['label']}: {e['text']}" if e["kind"] == "speech" else e["label"] for e in timeline]
    return "; ".join(parts) if parts else "silence"
