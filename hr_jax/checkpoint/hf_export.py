"""hr_jax parameters -> a thinker checkpoint in the Hugging Face layout that transformers loads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from hr_jax.checkpoint.keymap import hf_key_map, iter_leaves, to_hf_layout
from models.config import ThinkerConfig
from models.params import ThinkerParams

# --------------------------------------------------------------------------------------------------
# export to Hugging Face


def default_mrope_section(head_dim: int) -> list[int]:
    """(temporal, height, width) split of the head_dim/2 rotary frequencies, [16, 24, 24] for 128."""
    half = head_dim // 2
    t = half // 4
    h = (half - t) // 2
    return [t, h, half - t - h]


_PLACEHOLDER_VISION = {
    # hr_jax has no vision tower; a tiny placeholder keeps transformers from allocating the default
    # ~670M-parameter random one when it loads an exported thinker.
    "depth": 1, "hidden_size": 16, "intermediate_size": 32, "num_heads": 2, "fullatt_block_indexes": [0],
    "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2, "window_size": 112,
}  # fmt: skip


def hf_config_dict(cfg: ThinkerConfig, base: dict[str, Any] | None = None, dtype: str = "float32") -> dict:
    """A thinker-only HF `config.json` for `cfg`, starting from `base` (HF thinker or full-Omni config)."""
    base = json.loads(json.dumps(base or {}))
    base = base.get("thinker_config", base)
    a, t = cfg.audio, cfg.text
    audio = base.setdefault("audio_config", {})
    audio.update(
        num_mel_bins=a.num_mel_bins, d_model=a.d_model, encoder_layers=a.encoder_layers,
        encoder_attention_heads=a.encoder_attention_heads, encoder_ffn_dim=a.encoder_ffn_dim,
        n_window=a.n_window, output_dim=a.output_dim, max_source_positions=a.max_source_positions,
    )  # fmt: skip
    audio.setdefault("model_type", "qwen2_5_omni_audio_encoder")
    text = base.setdefault("text_config", {})
    text.update(
        vocab_size=t.vocab_size, hidden_size=t.hidden_size, intermediate_size=t.intermediate_size,
        num_hidden_layers=t.num_hidden_layers, num_attention_heads=t.num_attention_heads,
        num_key_value_heads=t.num_key_value_heads, head_dim=t.head_dim, rms_norm_eps=t.rms_norm_eps,
        max_position_embeddings=t.max_position_embeddings, tie_word_embeddings=t.tie_word_embeddings,
    )  # fmt: skip
    text.setdefault("model_type", "qwen2_5_omni_text")
    text.setdefault("hidden_act", "silu")
    text.setdefault("use_sliding_window", False)
    text.pop("layer_types", None)
    if isinstance(text.get("rope_parameters"), dict):
        text["rope_parameters"]["rope_theta"] = t.rope_theta
    else:  # the released checkpoints' (legacy) spelling, read by every transformers version
        half, sec = t.head_dim // 2, default_mrope_section(t.head_dim)
        text["rope_theta"] = t.rope_theta
        text.setdefault("rope_scaling", {"mrope_section": sec, "rope_type": "default", "type": "default"})
        if text["rope_scaling"].get("mrope_section") and sum(text["rope_scaling"]["mrope_section"]) != half:
            text["rope_scaling"]["mrope_section"] = sec
    base.setdefault("vision_config", dict(_PLACEHOLDER_VISION, out_hidden_size=t.hidden_size))
    base.update(
        architectures=["Qwen2_5OmniThinkerForConditionalGeneration"],
        model_type="qwen2_5_omni_thinker",
        audio_token_index=cfg.audio_token_id,
        audio_start_token_id=cfg.audio_start_token_id,
        audio_end_token_id=cfg.audio_end_token_id,
        tie_word_embeddings=t.tie_word_embeddings,
        torch_dtype=dtype,
    )
    base.pop("dtype", None)
    return base


def export_hf(
    params: ThinkerParams,
    cfg: ThinkerConfig,
    out_dir: str | Path,
    *,
    base_config: dict[str, Any] | str | Path | None = None,
    max_shard_bytes: int = 4 << 30,
) -> Path:
    """Writes a thinker-only Hugging Face checkpoint (safetensors + config.json) of `params`.

    Uses the inverse of `HF_KEY_MAP`; tensors keep the params' dtype. `base_config`: a HF config dict
    or a path to one (e.g. a converted checkpoint's `hf_config.json`) whose extra fields (vision
    config, token ids, ...) are kept; without it a minimal config with a placeholder vision config is
    written. Files above `max_shard_bytes` are split into shards with `model.safetensors.index.json`.
    The vision tower is not exported (transformers initialises it randomly on load).
    """
    from safetensors.numpy import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if isinstance(base_config, (str, Path)):
        base_config = json.loads(Path(base_config).read_text())
    leaves = {k: v for k, v in iter_leaves(params)}
    host: dict[str, np.ndarray] = {}
    shards: list[dict[str, np.ndarray]] = [{}]
    size = 0
    for e in hf_key_map(cfg):
        if e.leaf not in host:
            host[e.leaf] = np.asarray(jax.device_get(leaves[e.leaf]))
        x = host[e.leaf] if e.layer is None else host[e.leaf][e.layer]
        x = np.ascontiguousarray(to_hf_layout(x, e.layout))
        if size and size + x.nbytes > max_shard_bytes:
            shards.append({})
            size = 0
        shards[-1][e.hf_key] = x
        size += x.nbytes
    meta = {"format": "pt"}
    if len(shards) == 1:
        save_file(shards[0], str(out / "model.safetensors"), metadata=meta)
    else:
        weight_map, total = {}, 0
        for s, part in enumerate(shards):
            name = f"model-{s + 1:05d}-of-{len(shards):05d}.safetensors"
            save_file(part, str(out / name), metadata=meta)
            for k, x in part.items():
                weight_map[k] = name
                total += x.nbytes
        index = {"metadata": {"total_size": total}, "weight_map": weight_map}
        (out / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
    dtype = jnp.dtype(params.embed.dtype).name
    config = hf_config_dict(cfg, base_config, dtype=dtype)
    (out / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    return out
