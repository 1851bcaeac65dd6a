"""The one interface between a model family and everything that runs it.

A family is a package under `models/` (`models.qwen2_5_omni`, `models.phi4mm`) exposing one object that
satisfies `ModelFamily`, registered here by name. The engine, the pruning step, calibration, evaluation,
the checkpoint store and the CLI reach a model only through it (and through the decoder both families
share, `models.decoder`, driven by `cfg.text`), so adding a family means adding a package and one line
in `_PACKAGES`, not editing the engine.

Every config class names its family (`cfg.family`), so `family_of(cfg)` works inside `jax.jit`, where
the config is a static argument.
"""

from __future__ import annotations

import importlib
import os
from typing import Any, Protocol

import jax
import numpy as np

# family name -> the module whose `FAMILY` implements it (imported on first use).
_PACKAGES = {"qwen2_5_omni": "models.qwen2_5_omni", "phi4mm": "models.phi4mm"}
DEFAULT_FAMILY = "qwen2_5_omni"  # checkpoints written before families existed


class UnsupportedConfig(ValueError):
    """A config field whose value would change the numerics in a way hr_jax does not implement."""


FEATURE_PADDINGS = ("longest", "max_length")


class FeatureExtractor(Protocol):
    """A family's front end: waveforms -> (features `[B, mel, T]`, frame mask `[B, T]`).

    padding: "longest" (T = the longest clip's frames: all the engine reads) or "max_length" (T = the
    family processor's own padding, e.g. Qwen's 300 s; the same as "longest" where it pads to the
    longest)."""

    max_samples: int | None  # the longest waveform it takes (None: no limit of its own)

    def __call__(
        self, waveforms: list[np.ndarray], padding: str = "max_length"
    ) -> tuple[np.ndarray, np.ndarray]: ...


def check_padding(padding: str) -> str:
    if padding not in FEATURE_PADDINGS:
        raise ValueError(f"feature padding {padding!r}; choose from {', '.join(FEATURE_PADDINGS)}")
    return padding


class ModelFamily(Protocol):
    """What a family provides. Configs are frozen dataclasses with `.text` (`models.config.TextConfig`),
    `.audio_token_id` and `.family`; parameters are pytrees with `.embed`, `.layers`
    (`DecoderLayerParams`), `.norm` and `.lm_head`, the decoder's weights, next to the family's own
    audio weights."""

    name: str
    tokens_per_second: float  # audio tokens per second of audio (bucketing, length limits)
    end_of_turn: str  # the chat template's end-of-turn token (stops generation; ends scored answers)
    default_system_prompt: str | None

    def config_from_hf(self, hf: dict[str, Any]) -> Any:
        """The config of a Hugging Face `config.json` (`UnsupportedConfig` names a field hr_jax cannot
        run exactly)."""

    def config_from_dict(self, d: dict[str, Any]) -> Any:
        """The config from its `to_dict()` form (as `hr_jax_config.json` stores it)."""

    def param_info(self, cfg: Any) -> Any:
        """Every weight as an `models.params.ArrayInfo` leaf (shape, logical axes, initialiser)."""

    def embed_inputs(
        self,
        params: Any,
        cfg: Any,
        input_ids: jax.Array,
        input_features: jax.Array,
        feature_attention_mask: jax.Array,
    ) -> jax.Array:
        """Token embeddings `[B, L, D]` with the audio encoder's outputs at the audio tokens."""

    def encode_audio(
        self, params: Any, cfg: Any, input_features: jax.Array, num_frames: jax.Array
    ) -> tuple[jax.Array, jax.Array]:
        """The audio encoder alone: tokens `[B, Na_max, D]` and `[B]` valid counts, from features
        `[B, mel, T]` and `[B]` valid frames (`params` is the whole model's)."""

    def num_audio_tokens(self, cfg: Any, num_frames: Any) -> Any:
        """Audio tokens for `num_frames` valid feature frames (int, or elementwise on an array)."""

    def frame_multiple(self, cfg: Any) -> int:
        """Feature frames are padded to a multiple of this (the encoder's own granularity)."""

    def feature_extractor(self, ckpt_dir: str | os.PathLike, cfg: Any) -> FeatureExtractor:
        """The checkpoint's front end: waveforms -> (features `[B, mel, T]`, frame mask `[B, T]`)."""

    def prompt_ids(
        self, tokenizer: Any, cfg: Any, prompt: str, num_audio_tokens: int, system_prompt: str | None
    ) -> list[int]:
        """Token ids of one user turn (audio, then `prompt`) and the generation prompt."""


def get_family(name: str) -> ModelFamily:
    """The family called `name`; ValueError naming the known ones otherwise."""
    if name not in _PACKAGES:
        raise ValueError(f"unknown model family {name!r}; hr_jax implements {', '.join(sorted(_PACKAGES))}")
    return importlib.import_module(_PACKAGES[name]).FAMILY


def family_of(cfg: Any) -> ModelFamily:
    """The family of a config (its `family` attribute)."""
    return get_family(getattr(cfg, "family", DEFAULT_FAMILY))


def family_names() -> tuple[str, ...]:
    return tuple(sorted(_PACKAGES))
