"""Phi-4-Multimodal (audio + text): the Conformer audio encoder, the speech projection and the Phi-3
decoder, behind `models.family.ModelFamily` (`FAMILY`)."""

from __future__ import annotations

import os
from typing import Any

import jax

from models.language_model import splice_audio
from models.phi4mm import features, hf_import, prompt
from models.phi4mm.audio_encoder import encode_audio
from models.phi4mm.config import Phi4Config, num_audio_tokens
from models.phi4mm.hf_config import phi4_config_from_hf
from models.phi4mm.params import Phi4Params, param_info


class Phi4Family:
    name = "phi4mm"
    description = "Phi-4-Multimodal (model_type phi4mm, phi4_multimodal)"
    tokens_per_second = features.SAMPLE_RATE / (features.HOP_LENGTH * 8)  # 12.5
    end_of_turn = prompt.END
    default_system_prompt = None
    hf_files = tuple(
        f"{hf_import.SPEECH_LORA_DIR}/{f}" for f in ("adapter_config.json", "adapter_model.safetensors")
    )

    # The family's own functions, where their signatures are the interface's.
    matches = staticmethod(hf_import.matches)
    read_hf = staticmethod(hf_import.read_hf)
    config_from_hf = staticmethod(phi4_config_from_hf)
    config_from_dict = staticmethod(Phi4Config.from_dict)
    param_info = staticmethod(param_info)

    def to_hf(self, params: Any, cfg: Any, base: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        from models.phi4mm.hf_export import to_hf

        return to_hf(params, cfg, base)

    def embed_inputs(
        self,
        params: Phi4Params,
        cfg: Phi4Config,
        input_ids: jax.Array,
        input_features: jax.Array,
        feature_attention_mask: jax.Array,
    ) -> jax.Array:
        num_frames = feature_attention_mask.astype("int32").sum(-1)
        tokens, _ = encode_audio(params.audio, cfg.audio, input_features, num_frames)
        return splice_audio(params, cfg, input_ids, tokens)

    def encode_audio(
        self, params: Phi4Params, cfg: Phi4Config, input_features: jax.Array, num_frames: jax.Array
    ) -> tuple[jax.Array, jax.Array]:
        return encode_audio(params.audio, cfg.audio, input_features, num_frames)

    def num_audio_tokens(self, cfg: Phi4Config, num_frames: Any) -> Any:
        return num_audio_tokens(num_frames, cfg.audio.time_reduction)

    def frame_multiple(self, cfg: Phi4Config) -> int:
        return 50 * cfg.audio.time_reduction  # 4 s of frames, whole subsampled frames

    def feature_extractor(self, ckpt_dir: str | os.PathLike | None, cfg: Phi4Config) -> features.Phi4LogMel:
        fe = features.Phi4FeatureConfig.from_dir(ckpt_dir) if ckpt_dir is not None else None
        fe = fe or features.Phi4FeatureConfig(cfg.audio.input_size)
        if fe.feature_size != cfg.audio.input_size:
            raise ValueError(
                f"{ckpt_dir}: preprocessor_config.json feature_size={fe.feature_size} but the audio encoder "
                f"takes input_size={cfg.audio.input_size}"
            )
        if fe.audio_compression_rate != cfg.audio.time_reduction:
            raise ValueError(
                f"{ckpt_dir}: preprocessor_config.json audio_compression_rate="
                f"{fe.audio_compression_rate} but "
                f"the encoder reduces time by {cfg.audio.time_reduction}"
            )
        return features.Phi4LogMel(fe)

    def prompt_ids(
        self, tokenizer: Any, cfg: Phi4Config, text: str, num_audio_tokens: int, system_prompt: str | None
    ) -> list[int]:
        return prompt.prompt_ids(tokenizer, cfg.audio_token_id, text, num_audio_tokens, system_prompt)

    def audio_markers(self, cfg: Phi4Config) -> tuple[tuple[int, ...], tuple[int, ...]]:
        return (), ()  # the prompt holds the run of audio tokens alone

    def sharded_axes(self, cfg: Phi4Config) -> dict[str, int | None]:
        return {"audio_heads": cfg.audio.num_attention_heads, "audio_mlp": None}

    def feature_frames(self, cfg: Phi4Config, num_samples: int) -> int:
        return features.num_frames(num_samples)

    def encoder_cost(self, cfg: Phi4Config, frames: int) -> tuple[float, int, int]:
        from models.phi4mm.flops import conformer_flops, conformer_params

        d = cfg.text.hidden_size
        return conformer_flops(cfg.audio, d, frames), conformer_params(cfg.audio, d), cfg.audio.input_size

    def presets(self) -> dict[str, dict[str, Any]]:
        from models.phi4mm.presets import presets

        return presets()


FAMILY = Phi4Family()
