"""Qwen2.5-Omni's thinker (Whisper-style audio encoder, Qwen2 decoder) behind
`models.family.ModelFamily` (`FAMILY`): `config.py`, `params.py`, `audio_encoder.py`, `thinker.py`, its
front end `features.py` and chat prompt `prompt.py`."""

from __future__ import annotations

import os
from typing import Any

import jax

from models.qwen2_5_omni import features, prompt
from models.qwen2_5_omni.audio_encoder import encode_audio
from models.qwen2_5_omni.config import ThinkerConfig, num_audio_tokens
from models.qwen2_5_omni.params import ThinkerParams, param_info
from models.qwen2_5_omni.thinker import embed_inputs


class QwenOmniFamily:
    name = "qwen2_5_omni"
    tokens_per_second = 25.0
    end_of_turn = "<|im_end|>"

    default_system_prompt = prompt.DEFAULT_SYSTEM_PROMPT

    def config_from_hf(self, hf: dict[str, Any]) -> ThinkerConfig:
        from models.qwen2_5_omni.hf_config import config_from_hf

        return config_from_hf(hf)

    def config_from_dict(self, d: dict[str, Any]) -> ThinkerConfig:
        return ThinkerConfig.from_dict(d)

    def param_info(self, cfg: ThinkerConfig) -> ThinkerParams:
        return param_info(cfg)

    def embed_inputs(
        self,
        params: ThinkerParams,
        cfg: ThinkerConfig,
        input_ids: jax.Array,
        input_features: jax.Array,
        feature_attention_mask: jax.Array,
    ) -> jax.Array:
        return embed_inputs(params, cfg, input_ids, input_features, feature_attention_mask)

    def encode_audio(
        self, params: ThinkerParams, cfg: ThinkerConfig, input_features: jax.Array, num_frames: jax.Array
    ) -> tuple[jax.Array, jax.Array]:
        return encode_audio(params.audio, cfg.audio, input_features, num_frames)

    def num_audio_tokens(self, cfg: ThinkerConfig, num_frames: Any) -> Any:
        return num_audio_tokens(num_frames)

    def frame_multiple(self, cfg: ThinkerConfig) -> int:
        return 2 * cfg.audio.window_frames  # two encoder windows, 4 s

    def feature_extractor(self, ckpt_dir: str | os.PathLike, cfg: ThinkerConfig) -> Any:
        return features.LogMelExtractor.for_checkpoint(ckpt_dir, cfg)

    def prompt_ids(
        self, tokenizer: Any, cfg: ThinkerConfig, text: str, num_audio_tokens: int, system_prompt: str | None
    ) -> list[int]:
        return prompt.prompt_ids(tokenizer, text, num_audio_tokens, system_prompt)


FAMILY = QwenOmniFamily()
