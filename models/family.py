"""The one interface between a model family and everything that runs it.

A family is a package under `models/` (`models.qwen2_5_omni`, `models.phi4mm`) exposing one object that
satisfies `ModelFamily`, registered here by name. The converter, the engine, the pruning step,
calibration, evaluation, sharding, the checkpoint store, the benchmarks and the CLI reach a model only
through it (and through the decoder every family shares, `models.decoder`, driven by `cfg.text`), so
adding a family means adding a package and one line in `_PACKAGES` (checklist: `models/README.md`).
`register_family` adds one at run time (a test's toy family).

Every config class names its family (`cfg.family`), so `family_of(cfg)` works inside `jax.jit`, where
the config is a static argument.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any, Protocol

import jax
import numpy as np

from models.config import TextConfig

# family name -> the module whose `FAMILY` implements it (imported on first use), or the family itself.
_PACKAGES: dict[str, Any] = {"qwen2_5_omni": "models.qwen2_5_omni", "phi4mm": "models.phi4mm"}
DEFAULT_FAMILY = "qwen2_5_omni"  # checkpoints written before families existed


class ModelConfig(Protocol):
    """What generic code reads of any family's config (a frozen, hashable dataclass)."""

    family: str
    text: TextConfig  # the shared decoder's shape
    audio_token_id: int

    def to_dict(self) -> dict[str, Any]: ...


class ModelParams(Protocol):
    """What generic code reads of any family's parameters (a pytree): the shared decoder's weights
    (`models.params.DecoderLayerParams` stacked on `[layers]`), beside the family's own audio weights."""

    embed: jax.Array  # [vocab, D]
    layers: Any  # DecoderLayerParams, each leaf [layers, ...]
    norm: jax.Array  # [D]
    lm_head: jax.Array | None  # [D, vocab]; None when tied to `embed`

    def replace(self, **kw: Any) -> Any: ...


class UnsupportedConfig(ValueError):
    """A config field whose value would change the numerics in a way hr_jax does not implement."""


FEATURE_PADDINGS = ("longest", "max_length")


class FeatureExtractor(Protocol):
    """A family's front end: waveforms -> (features `[B, mel, T]`, frame mask `[B, T]`).

    padding: "longest" (T = the longest clip's frames: all the engine reads) or "max_length" (T = the
    family processor's own padding, e.g. Qwen's 300 s; the same as "longest" where it pads to the
    longest). truncation: True refuses audio over `max_samples` (which the processor would cut);
    False takes it whole (the processor's `truncation=False`)."""

    max_samples: int | None  # the longest waveform it takes with truncation (None: no limit of its own)

    def __call__(
        self, waveforms: list[np.ndarray], padding: str = "max_length", truncation: bool = True
    ) -> tuple[np.ndarray, np.ndarray]: ...


def check_padding(padding: str) -> str:
    if padding not in FEATURE_PADDINGS:
        raise ValueError(f"feature padding {padding!r}; choose from {', '.join(FEATURE_PADDINGS)}")
    return padding


class ModelFamily(Protocol):
    """What a family provides, for configs satisfying `ModelConfig` and parameters `ModelParams`."""

    name: str
    description: str  # how a refusal names it: "Qwen2.5-Omni (model_type qwen2_5_omni, ...)"
    tokens_per_second: float  # audio tokens per second of audio (bucketing, length limits)
    end_of_turn: str  # the chat template's end-of-turn token (stops generation; ends scored answers)
    default_system_prompt: str | None
    hf_files: tuple[str, ...]  # files of its own a Hub download fetches beyond weights, config, tokenizer

    # -- checkpoints
    def matches(self, hf: dict[str, Any]) -> bool:
        """Whether a Hugging Face `config.json` is this family's."""

    def read_hf(self, hf_dir: Path, hf: dict[str, Any], merge_lora: bool = True) -> Any:
        """A checked `models.hf_checkpoint.HFCheckpoint` of a Hugging Face directory (headers only);
        `ConversionError` naming the tensor or field otherwise."""

    def to_hf(self, params: Any, cfg: Any, base: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        """The Hugging Face checkpoint of `params` that transformers loads: its `(name, array)`
        tensors and its `config.json` (keeping `base`'s other fields); or a clear refusal."""

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

    def feature_extractor(self, ckpt_dir: str | os.PathLike | None, cfg: Any) -> FeatureExtractor:
        """The checkpoint's front end: waveforms -> (features `[B, mel, T]`, frame mask `[B, T]`);
        `ckpt_dir` None: the family's released front end for `cfg` (benchmarks)."""

    def prompt_ids(
        self, tokenizer: Any, cfg: Any, prompt: str, num_audio_tokens: int, system_prompt: str | None
    ) -> list[int]:
        """Token ids of one user turn (audio, then `prompt`) and the generation prompt."""

    def audio_markers(self, cfg: Any) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Token ids the prompt puts right before and right after the run of audio tokens."""

    # -- sharding, cost, benchmark shapes
    def sharded_axes(self, cfg: Any) -> dict[str, int | None]:
        """The encoder's logical axes (`param_info`) split over the tensor-parallel mesh axis, each with
        its indivisible units (heads: the head count, so a head is never split; None: elements)."""

    def feature_frames(self, cfg: Any, num_samples: int) -> int:
        """Feature frames of a clip of `num_samples` samples at 16 kHz."""

    def encoder_cost(self, cfg: Any, frames: int) -> tuple[float, int, int]:
        """(FLOPs of the audio encoder and projection on one clip of `frames` feature frames, their
        parameter count, feature bins per frame): the benchmark's FLOP model (a multiply-add is 2)."""

    def presets(self) -> dict[str, dict[str, Any]]:
        """Named shapes for the benchmarks, as Hugging Face `config.json` dicts (`config_from_hf`)."""


def get_family(name: str) -> ModelFamily:
    """The family called `name`; ValueError naming the known ones otherwise."""
    if name not in _PACKAGES:
        raise ValueError(f"unknown model family {name!r}; hr_jax implements {', '.join(sorted(_PACKAGES))}")
    entry = _PACKAGES[name]
    return importlib.import_module(entry).FAMILY if isinstance(entry, str) else entry


def register_family(family: ModelFamily) -> None:
    """Adds a family at run time under `family.name` (a shipped family is one line in `_PACKAGES`)."""
    _PACKAGES[family.name] = family


def unregister_family(name: str) -> None:
    """Removes a family `register_family` added."""
    if isinstance(_PACKAGES.get(name), str):
        raise ValueError(f"{name!r} is a shipped family")
    _PACKAGES.pop(name, None)


def family_of(cfg: Any) -> ModelFamily:
    """The family of a config (its `family` attribute)."""
    return get_family(getattr(cfg, "family", DEFAULT_FAMILY))


def family_names() -> tuple[str, ...]:
    return tuple(sorted(_PACKAGES))


def families() -> tuple[ModelFamily, ...]:
    return tuple(get_family(n) for n in _PACKAGES)  # registration order: the default family first


def family_for_hf_config(hf: dict[str, Any]) -> ModelFamily | None:
    """The family whose `matches` takes a Hugging Face `config.json` (None: no family does)."""
    return next((f for f in families() if f.matches(hf)), None)


def family_descriptions() -> str:
    """Every family as a refusal names it, e.g. for an unknown `model_type`."""
    return "; ".join(f.description for f in families())


def family_hf_files() -> tuple[str, ...]:
    """Every family's own files a Hub download fetches."""
    return tuple(dict.fromkeys(f for fam in families() for f in fam.hf_files))
