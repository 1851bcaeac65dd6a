"""Model inputs for a batch of (audio, prompt) pairs, named like the Hugging Face processor's.

`make_batch` left-pads rows (as the processor does for generation), so a `Batch` can be fed to
`transformers` and a processor's output can be wrapped as a `Batch`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from hr_jax.prompt import FAMILY_DEFAULT
from models.family import family_of

if TYPE_CHECKING:
    from hr_jax.model import Model


AudioInput = str | os.PathLike | np.ndarray | tuple[np.ndarray, int]


@dataclasses.dataclass(frozen=True)
class Batch:
    """Host (NumPy) arrays.

    input_ids, attention_mask: `[B, L]` int32, left-padded.
    input_features: `[B, mel, T]` float32 log-mel; feature_attention_mask: `[B, T]` int32.
    """

    input_ids: np.ndarray
    attention_mask: np.ndarray
    input_features: np.ndarray
    feature_attention_mask: np.ndarray

    @classmethod
    def from_processor(cls, outputs: dict) -> Batch:
        """Wraps a `Qwen2_5OmniProcessor` output (tensors or arrays)."""

        def arr(x: object) -> np.ndarray:
            return np.asarray(x.numpy() if hasattr(x, "numpy") else x)

        return cls(
            input_ids=arr(outputs["input_ids"]).astype(np.int32),
            attention_mask=arr(outputs["attention_mask"]).astype(np.int32),
            input_features=arr(outputs["input_features"]).astype(np.float32),
            feature_attention_mask=arr(outputs["feature_attention_mask"]).astype(np.int32),
        )

    def to_dict(self) -> dict[str, np.ndarray]:
        return dataclasses.asdict(self)

    @property
    def size(self) -> int:
        return int(self.input_ids.shape[0])

    def select(self, rows: Sequence[int]) -> Batch:
        rows = np.asarray(rows)
        return Batch(*(getattr(self, f.name)[rows] for f in dataclasses.fields(self)))


def _load(audio: AudioInput) -> np.ndarray:
    from hr_jax.audio import load_audio

    if isinstance(audio, tuple):
        wave, sr = audio
        return load_audio(np.asarray(wave), sample_rate=sr)
    return load_audio(audio)


def make_batch(
    model: Model,
    audios: Sequence[AudioInput],
    prompts: Sequence[str] | str,
    system_prompt: str | None | object = FAMILY_DEFAULT,
    feature_padding: str = "longest",
    truncation: bool = True,
) -> Batch:
    """Builds model inputs for each (audio, prompt).

    Args:
      audios: paths, 1-D float waveforms at 16 kHz, or `(waveform, sample_rate)` pairs (resampled).
      prompts: one instruction per audio, or one for all.
      system_prompt: the system turn; `FAMILY_DEFAULT` is the model family's (Qwen's persona prompt,
        none for Phi-4); None: no system turn.
      feature_padding: "longest" (features end after the longest clip: all the model reads) or
        "max_length" (the reference processor's arrays, e.g. Qwen's 300 s `[B, 128, 30000]`; only a
        feature-for-feature comparison needs them: the outputs are the same).
      truncation: True (the released behaviour) refuses audio longer than the feature extractor takes
        (Qwen2.5-Omni's 300 s, which its processor would cut); False takes it whole, up to the
        decoder's position range (about 21 minutes for Qwen2.5-Omni), as the processor does with
        `audio_kwargs={"truncation": False}`.
    Raises:
      ValueError: on bad audio (empty, NaN/Inf, silent) or a prompt too long for the model.
    """
    from hr_jax.audio import check_length

    if isinstance(prompts, str):
        prompts = [prompts] * len(audios)
    if len(audios) != len(prompts) or not audios:
        raise ValueError(
            f"need one prompt per audio and at least one audio; got {len(audios)} and {len(prompts)}"
        )
    family = family_of(model.config)
    if system_prompt is FAMILY_DEFAULT:
        system_prompt = family.default_system_prompt
    waves = [_load(a) for a in audios]
    max_pos = model.config.text.max_position_embeddings
    for w in waves:
        check_length(w, max_seconds=max_pos / family.tokens_per_second)
    features, feature_mask = model.feature_extractor(waves, feature_padding, truncation)
    rows = []
    for prompt, n_frames in zip(prompts, feature_mask.sum(-1), strict=True):
        n_audio = family.num_audio_tokens(model.config, int(n_frames))
        ids = family.prompt_ids(model.tokenizer, model.config, prompt, n_audio, system_prompt)
        if len(ids) > max_pos:
            raise ValueError(
                f"prompt with audio is {len(ids)} tokens, over the model's {max_pos} positions "
                f"(about {max_pos / family.tokens_per_second:.0f} s of audio); shorten the audio"
            )
        rows.append(ids)
    length = max(map(len, rows))
    input_ids = np.full((len(rows), length), model.pad_token_id, np.int32)
    attention_mask = np.zeros((len(rows), length), np.int32)
    for i, ids in enumerate(rows):
        input_ids[i, length - len(ids) :] = ids
        attention_mask[i, length - len(ids) :] = 1
    return Batch(
        input_ids,
        attention_mask,
        features.astype(np.float32, copy=False),
        feature_mask.astype(np.int32, copy=False),
    )
