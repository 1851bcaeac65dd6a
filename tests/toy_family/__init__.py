"""A third model family that lives in the tests alone: the proof that `models.family.ModelFamily` carries
everything a family needs (`models/README.md`'s checklist). Nothing outside this package knows it; a test
registers it (`models.family.register_family(FAMILY)`) and removes it again.

The model: a toy audio encoder (each `stride` log-mel frames, flattened, through one linear layer to the
decoder width: one audio token per `stride` frames) before the shared decoder (`models.decoder`). Its
Hugging Face layout (`model_type` "toy_audio_lm") stores each parameter leaf under its own dotted name,
stacked layers included, so the converter's whole job here is the checks and the dtype.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from models.config import DictConfig, TextConfig
from models.hf_checkpoint import (
    HFCheckpoint,
    SafetensorsFiles,
    check_shapes,
    check_tensor_names,
    safetensors_files,
    scan_headers,
)
from models.language_model import splice_audio
from models.params import (
    ArrayInfo,
    DecoderLayerParams,
    decoder_layer_info,
    iter_leaves,
    leaf_shapes,
    ones,
    zeros,
)
from models.qwen2_5_omni.features import FeatureConfig, LogMelExtractor, num_feature_frames

MODEL_TYPE = "toy_audio_lm"
HOP_SECONDS = 0.01  # one log-mel frame every 10 ms


@dataclasses.dataclass(frozen=True)
class ToyAudioConfig:
    num_mel_bins: int = 16
    stride: int = 4  # frames per audio token: 25 tokens a second


@dataclasses.dataclass(frozen=True)
class ToyConfig(DictConfig):
    family: ClassVar[str] = "toy"
    audio: ToyAudioConfig
    text: TextConfig
    audio_token_id: int


@struct.dataclass
class ToyEncoderParams:
    proj_w: jax.Array  # [stride * mel, D]
    proj_b: jax.Array  # [D]


@struct.dataclass
class ToyParams:
    audio: ToyEncoderParams
    embed: jax.Array  # [V, D]
    layers: DecoderLayerParams
    norm: jax.Array  # [D]
    lm_head: jax.Array | None  # [D, V]


def param_info(cfg: ToyConfig) -> ToyParams:
    t, a = cfg.text, cfg.audio
    head = ArrayInfo((t.hidden_size, t.vocab_size), ("embed", "vocab"))
    return ToyParams(
        audio=ToyEncoderParams(
            proj_w=ArrayInfo((a.stride * a.num_mel_bins, t.hidden_size), ("toy_in", "embed")),
            proj_b=ArrayInfo((t.hidden_size,), ("embed",), zeros),
        ),
        embed=ArrayInfo((t.vocab_size, t.hidden_size), ("vocab", "embed")),
        layers=decoder_layer_info(t),
        norm=ArrayInfo((t.hidden_size,), ("embed",), ones),
        lm_head=None if t.tie_word_embeddings else head,
    )


def encode_audio(p: ToyEncoderParams, a: ToyAudioConfig, feats: jax.Array, num_frames: jax.Array):
    """feats `[B, mel, T]` (T a multiple of `stride`) -> tokens `[B, T / stride, D]`, valid counts `[B]`."""
    b, mel, t = feats.shape
    x = feats.transpose(0, 2, 1).reshape(b, t // a.stride, a.stride * mel)
    return x @ p.proj_w + p.proj_b, num_frames // a.stride


class ToyFamily:
    name = "toy"
    description = "the tests' toy audio LM (model_type toy_audio_lm)"
    tokens_per_second = 1.0 / (HOP_SECONDS * ToyAudioConfig.stride)
    end_of_turn = "<|im_end|>"
    default_system_prompt = None
    hf_files: tuple[str, ...] = ()

    def matches(self, hf: dict[str, Any]) -> bool:
        return hf.get("model_type") == MODEL_TYPE

    def config_from_hf(self, hf: dict[str, Any]) -> ToyConfig:
        audio, text = ToyAudioConfig(**hf["audio_config"]), TextConfig(**hf["text_config"])
        return ToyConfig(audio, text, hf["audio_token_id"])

    config_from_dict = staticmethod(ToyConfig.from_dict)

    def read_hf(self, hf_dir: Path, hf: dict[str, Any], merge_lora: bool = True) -> HFCheckpoint:
        cfg = self.config_from_hf(hf)
        found = scan_headers(safetensors_files(hf_dir), lambda key: key)
        expected = leaf_shapes(cfg)
        check_tensor_names(found, expected)
        check_shapes(found, expected)
        files = SafetensorsFiles()

        def leaves(np_dtype: Any):
            for name in expected:
                yield name, np.asarray(files.read(found[name]), np_dtype)

        return HFCheckpoint(cfg, leaves, source=str(hf_dir))

    def to_hf(self, params: ToyParams, cfg: ToyConfig, base: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        return ((n, np.asarray(x)) for n, x in iter_leaves(params)), hf_config(cfg)

    def param_info(self, cfg: ToyConfig) -> ToyParams:
        return param_info(cfg)

    def embed_inputs(self, params, cfg, input_ids, input_features, feature_attention_mask) -> jax.Array:
        num_frames = feature_attention_mask.astype(jnp.int32).sum(-1)
        tokens, _ = encode_audio(params.audio, cfg.audio, input_features, num_frames)
        return splice_audio(params, cfg, input_ids, tokens)

    def encode_audio(self, params, cfg, input_features, num_frames):
        return encode_audio(params.audio, cfg.audio, input_features, num_frames)

    def num_audio_tokens(self, cfg: ToyConfig, num_frames: Any) -> Any:
        return num_frames // cfg.audio.stride

    def frame_multiple(self, cfg: ToyConfig) -> int:
        return 16 * cfg.audio.stride

    def feature_extractor(self, ckpt_dir: str | os.PathLike | None, cfg: ToyConfig) -> LogMelExtractor:
        return LogMelExtractor(FeatureConfig(feature_size=cfg.audio.num_mel_bins))

    def prompt_ids(self, tokenizer, cfg, prompt: str, num_audio_tokens: int, system_prompt) -> list[int]:
        start, end = tokenizer.convert_tokens_to_ids(["<|im_start|>", "<|im_end|>"])
        text = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        return [start, *[cfg.audio_token_id] * num_audio_tokens, *text, end, start]

    def audio_markers(self, cfg: ToyConfig) -> tuple[tuple[int, ...], tuple[int, ...]]:
        return (), ()

    def sharded_axes(self, cfg: ToyConfig) -> dict[str, int | None]:
        return {}  # the toy encoder is replicated

    def feature_frames(self, cfg: ToyConfig, num_samples: int) -> int:
        return num_feature_frames(num_samples)

    def encoder_cost(self, cfg: ToyConfig, frames: int) -> tuple[float, int, int]:
        a, d = cfg.audio, cfg.text.hidden_size
        inputs = (frames // a.stride) * a.stride * a.num_mel_bins  # what the projection reads
        return 2.0 * inputs * d, (a.stride * a.num_mel_bins + 1) * d, a.num_mel_bins

    def presets(self) -> dict[str, dict[str, Any]]:
        return {"toy-small": hf_config(small_config())}


def small_config(vocab_size: int = 512, audio_token_id: int = 500) -> ToyConfig:
    text = TextConfig(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                      num_attention_heads=4, num_key_value_heads=2, head_dim=8, rope_theta=10000.0,
                      max_position_embeddings=4096)  # fmt: skip
    return ToyConfig(ToyAudioConfig(), text, audio_token_id)


def hf_config(cfg: ToyConfig) -> dict[str, Any]:
    """The toy's `config.json`."""
    return {"model_type": MODEL_TYPE, "audio_config": dataclasses.asdict(cfg.audio),
            "text_config": dataclasses.asdict(cfg.text), "audio_token_id": cfg.audio_token_id}  # fmt: skip


FAMILY = ToyFamily()
