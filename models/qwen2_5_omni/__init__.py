"""Qwen2.5-Omni's thinker (Whisper-style audio encoder, Qwen2 decoder) behind
`models.family.ModelFamily` (`FAMILY`): `config.py`, `params.py`, `audio_encoder.py`, `thinker.py`, its
front end `features.py` and chat prompt `prompt.py`."""

from __future__ import annotations

import os
from typing import Any

import jax

from models.qwen2_5_omni import features, hf_import, prompt
from models.qwen2_5_omni.audio_encoder import encode_audio
from models.qwen2_5_omni.config import ThinkerConfig, num_audio_tokens
from models.qwen2_5_omni.hf_config import config_from_hf
from models.qwen2_5_omni.params import ThinkerParams, param_info
from models.qwen2_5_omni.thinker import embed_inputs


class QwenOmniFamily:
    name = "qwen2_5_omni"
    description = "Qwen2.5-Omni (model_type qwen2_5_omni, or its thinker alone: qwen2_5_omni_thinker)"
    tokens_per_second = 25.0
    end_of_turn = "<|im_end|>"
    default_system_prompt = prompt.DEFAULT_SYSTEM_PROMPT
    hf_files: tuple[str, ...] = ()

    # The family's own functions, where their signatures are the interface's.
    matches = staticmethod(hf_import.matches)
    read_hf = staticmethod(hf_import.read_hf)
    config_from_hf = staticmethod(config_from_hf)
    config_from_dict = staticmethod(ThinkerConfig.from_dict)
    param_info = staticmethod(param_info)
    embed_inputs = staticmethod(embed_inputs)

    def to_hf(self, params: Any, cfg: Any, base: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        from models.qwen2_5_omni.hf_export import to_hf

        return to_hf(params, cfg, base)

    def encode_audio(
        self, params: ThinkerParams, cfg: ThinkerConfig, input_features: jax.Array, num_frames: jax.Array
    ) -> tuple[jax.Array, jax.Array]:
        return encode_audio(params.audio, cfg.audio, input_features, num_frames)

    def num_audio_tokens(self, cfg: ThinkerConfig, num_frames: Any) -> Any:
        return num_audio_tokens(num_frames)

    def frame_multiple(self, cfg: ThinkerConfig) -> int:
        return 2 * cfg.audio.window_frames  # two encoder windows, 4 s

    def feature_extractor(self, ckpt_dir: str | os.PathLike | None, cfg: ThinkerConfig) -> Any:
        if ckpt_dir is None:
            return features.LogMelExtractor(features.FeatureConfig(feature_size=cfg.audio.num_mel_bins))
        return features.LogMelExtractor.for_checkpoint(ckpt_dir, cfg)

    def prompt_ids(
        self, tokenizer: Any, cfg: ThinkerConfig, text: str, num_audio_tokens: int, system_prompt: str | None
    ) -> list[int]:
        return prompt.prompt_ids(tokenizer, text, num_audio_tokens, system_prompt)

    def audio_markers(self, cfg: ThinkerConfig) -> tuple[tuple[int, ...], tuple[int, ...]]:
        return (cfg.audio_start_token_id,), (cfg.audio_end_token_id,)

    def sharded_axes(self, cfg: ThinkerConfig) -> dict[str, int | None]:
        return {"audio_heads": cfg.audio.encoder_attention_heads, "audio_mlp": None}

    def feature_frames(self, cfg: ThinkerConfig, num_samples: int) -> int:
        return features.num_feature_frames(num_samples)

    def encoder_cost(self, cfg: ThinkerConfig, frames: int) -> tuple[float, int, int]:
        from models.qwen2_5_omni.flops import encoder_flops, encoder_params

        return encoder_flops(cfg.audio, frames), encoder_params(cfg.audio), cfg.audio.num_mel_bins

    def presets(self) -> dict[str, dict[str, Any]]:
        from models.qwen2_5_omni.presets import presets

        return presets()


FAMILY = QwenOmniFamily()
