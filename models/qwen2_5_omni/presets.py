"""Named Qwen2.5-Omni thinker shapes, as Hugging Face `config.json` dicts: the tests' tiny thinker
(`tiny_config`), the released 3B and 7B widths with the depth cut (`released_config`), and the
benchmark presets (`PRESETS`).

- `tiny`: text hidden 64, 3 layers, audio d_model 32 with n_window 10. Only useful as a smoke test.
- `small`: a CPU-friendly thinker with the real structure: text hidden 512, 8 layers, 8 query / 2 KV
  heads of 64, SwiGLU 1536, vocab 8192; audio encoder d_model 256, 4 layers of 4 heads, ffn 1024,
  the real n_window 100 (25 audio tokens per second, like the released models).
- `qwen2.5-omni-3b` / `qwen2.5-omni-7b`: the released thinker shapes (config.json of
  Qwen/Qwen2.5-Omni-3B / -7B). 3B: hidden 2048, 36 layers, 16 q / 2 kv heads of 128, intermediate
  11008, vocab 151936. 7B: hidden 3584, 28 layers, 28 q / 4 kv heads of 128, intermediate 18944,
  vocab 152064 (transformers' `Qwen2_5OmniThinkerConfig` defaults are the 7B). Both: audio encoder
  d_model 1280, 32 layers, 20 heads, ffn 5120, n_window 100, output_dim = text hidden; rope_theta 1e6.
  The 3B's numbers were cross-checked against a public transcription of its config.json; untied LM
  head assumed for both.
"""

from __future__ import annotations

from typing import Any

from models.qwen2_5_omni.hf_config import default_mrope_section
from models.qwen2_5_omni.prompt import special_token_ids

TINY_VOCAB_SIZE = 512

_TEXT_KEYS = {
    "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
    "num_key_value_heads", "head_dim", "max_position_embeddings", "rms_norm_eps", "rope_theta",
    "mrope_section", "hidden_act",
}  # fmt: skip
_AUDIO_KEYS = {
    "num_mel_bins", "d_model", "encoder_layers", "encoder_attention_heads", "encoder_ffn_dim", "n_window",
    "output_dim", "max_source_positions",
}  # fmt: skip


# The released models' widths, head counts, vocabularies, RoPE and token ids (depth is the caller's).
RELEASED_WIDTHS: dict[str, dict[str, Any]] = {
    "3B": {"hidden_size": 2048, "intermediate_size": 11008, "num_attention_heads": 16,
           "num_key_value_heads": 2, "head_dim": 128, "vocab_size": 151936},
    "7B": {"hidden_size": 3584, "intermediate_size": 18944, "num_attention_heads": 28,
           "num_key_value_heads": 4, "head_dim": 128, "vocab_size": 152064},
}  # fmt: skip
RELEASED_AUDIO = {"d_model": 1280, "encoder_attention_heads": 20, "encoder_ffn_dim": 5120, "n_window": 100,
                  "num_mel_bins": 128, "max_source_positions": 1500}  # fmt: skip
RELEASED_FIRST_SPECIAL_ID = (
    151643  # <|endoftext|>; <|AUDIO|> 151646, <|audio_bos|> 151647, <|audio_eos|> 151648
)


def released_config(size: str, text_layers: int, audio_layers: int) -> dict[str, Any]:
    """Overrides for `tiny_config` / `build_tiny_checkpoint`: the released Qwen2.5-Omni-`size` thinker
    ("3B" or "7B") with its depth cut to `text_layers` decoder and `audio_layers` encoder layers."""
    return {
        **RELEASED_WIDTHS[size],
        "rope_theta": 1000000.0,
        "max_position_embeddings": 32768,
        "num_hidden_layers": text_layers,
        "audio_config": {**RELEASED_AUDIO, "encoder_layers": audio_layers},
        "first_special_id": RELEASED_FIRST_SPECIAL_ID,
    }


def tiny_config(**overrides: Any) -> dict[str, Any]:
    """A small Qwen2.5-Omni *thinker* config dict (`Qwen2_5OmniThinkerConfig(**d)` accepts it).

    Defaults: audio d_model 32, 2 layers, 4 heads, ffn 64, n_window 10 (20 mel frames per window),
    output_dim = text hidden; text hidden 64, 3 layers, 4 q / 2 kv heads, head_dim 16, intermediate
    128, vocab 512 (the last 14 ids are the special tokens of `hr_jax.tokenizer`), rope_theta 1e4.

    Overrides: text keys (`num_attention_heads`, `num_key_value_heads`, `head_dim`, `hidden_size`,
    `num_hidden_layers`, `vocab_size`, `rope_theta`, `mrope_section`, ...) and audio keys (`d_model`,
    `encoder_layers`, `encoder_attention_heads`, `n_window`, ...) by name; `tie_word_embeddings`;
    `audio_config=` / `text_config=` / `vision_config=` dicts merged into the sub-configs; any other
    key is set at the top level. `output_dim` follows `hidden_size` and `mrope_section` follows
    `head_dim` unless given; the special token ids follow `vocab_size`, or start at `first_special_id`.
    """
    ov = dict(overrides)
    first_special = ov.pop("first_special_id", None)
    text: dict[str, Any] = {
        "vocab_size": TINY_VOCAB_SIZE,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 3,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 16,
        "hidden_act": "silu",
        "max_position_embeddings": 4096,
        "rms_norm_eps": 1e-6,
        "rope_theta": 10000.0,
        "mrope_section": None,
        "use_sliding_window": False,
        "tie_word_embeddings": False,
    }
    audio: dict[str, Any] = {
        "num_mel_bins": 128,
        "d_model": 32,
        "encoder_layers": 2,
        "encoder_attention_heads": 4,
        "encoder_ffn_dim": 64,
        "n_window": 10,
        "output_dim": None,
        "max_source_positions": 1500,
    }
    vision: dict[str, Any] = {
        "depth": 1,
        "hidden_size": 16,
        "intermediate_size": 32,
        "num_heads": 2,
        "out_hidden_size": None,
        "fullatt_block_indexes": [0],
        "patch_size": 14,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
        "window_size": 112,
    }
    tie = bool(ov.pop("tie_word_embeddings", False))
    text.update(ov.pop("text_config", {}) or {})
    audio.update(ov.pop("audio_config", {}) or {})
    vision.update(ov.pop("vision_config", {}) or {})
    for k in list(ov):
        if k in _TEXT_KEYS:
            text[k] = ov.pop(k)
        elif k in _AUDIO_KEYS:
            audio[k] = ov.pop(k)
    text["tie_word_embeddings"] = tie
    if audio["output_dim"] is None:
        audio["output_dim"] = text["hidden_size"]
    if vision["out_hidden_size"] is None:
        vision["out_hidden_size"] = text["hidden_size"]
    mrope = text.pop("mrope_section") or default_mrope_section(text["head_dim"])
    text["rope_parameters"] = {
        "rope_type": "default",
        "rope_theta": float(text.pop("rope_theta")),
        "mrope_section": list(mrope),
    }
    ids = special_token_ids(text["vocab_size"] if first_special is None else first_special + 14)
    text.setdefault("bos_token_id", ids["<|endoftext|>"])
    text.setdefault("eos_token_id", ids["<|im_end|>"])
    text.setdefault("pad_token_id", ids["<|endoftext|>"])
    cfg: dict[str, Any] = {
        "architectures": ["Qwen2_5OmniThinkerForConditionalGeneration"],
        "model_type": "qwen2_5_omni_thinker",
        "audio_config": audio,
        "vision_config": vision,
        "text_config": text,
        "audio_token_index": ids["<|AUDIO|>"],
        "image_token_index": ids["<|IMAGE|>"],
        "video_token_index": ids["<|VIDEO|>"],
        "audio_start_token_id": ids["<|audio_bos|>"],
        "audio_end_token_id": ids["<|audio_eos|>"],
        "vision_start_token_id": ids["<|vision_bos|>"],
        "vision_end_token_id": ids["<|vision_eos|>"],
        "position_id_per_seconds": 25,
        "seconds_per_chunk": 2,
        "tie_word_embeddings": tie,
    }
    cfg.update(ov)
    return cfg


_SMALL = dict(
    vocab_size=8192, hidden_size=512, intermediate_size=1536, num_hidden_layers=8, num_attention_heads=8,
    num_key_value_heads=2, head_dim=64, rope_theta=1000000.0, max_position_embeddings=32768,
    audio_config=dict(d_model=256, encoder_layers=4, encoder_attention_heads=4, encoder_ffn_dim=1024,
                      n_window=100),
)  # fmt: skip


def presets() -> dict[str, dict[str, Any]]:
    """The benchmark presets (see the module docstring)."""
    return {
        "tiny": tiny_config(),
        "small": tiny_config(**_SMALL),
        "qwen2.5-omni-3b": tiny_config(**released_config("3B", text_layers=36, audio_layers=32)),
        "qwen2.5-omni-7b": tiny_config(**released_config("7B", text_layers=28, audio_layers=32)),
    }
