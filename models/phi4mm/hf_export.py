"""Phi-4-Multimodal parameters -> transformers' native layout (`Phi4MultimodalForCausalLM`): the tensors,
the config, and a checkpoint directory of both.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from models.params import iter_leaves
from models.phi4mm.config import Phi4Config
from models.phi4mm.hf_layout import INVERSE, leaf_sources


def native_state_dict(params: Any, cfg: Phi4Config) -> dict[str, np.ndarray]:
    """The tensors `Phi4MultimodalForCausalLM` loads (native names; LoRA merged, so none of it; no
    vision tower), float32, from hr_jax parameters."""
    leaves = {name: np.asarray(x, np.float32) for name, x in iter_leaves(params)}
    t = cfg.text
    fused_rows = {
        "self_attn.qkv_proj": (t.num_attention_heads + 2 * t.num_key_value_heads) * t.head_dim,
        "mlp.gate_up_proj": 2 * t.intermediate_size,
    }
    out: dict[str, np.ndarray] = {}
    for leaf, (n, source) in leaf_sources(cfg).items():
        for i in range(n) if n is not None else [None]:
            name, layout, rows = source(i or 0)
            x = INVERSE[layout](leaves[leaf] if i is None else leaves[leaf][i])
            if rows is None:
                out[name] = np.ascontiguousarray(x)
                continue
            module = next(k for k in fused_rows if name.endswith(k + ".weight"))
            buf = out.setdefault(name, np.zeros((fused_rows[module], t.hidden_size), np.float32))
            buf[rows] = x
    if t.tie_word_embeddings:
        out["lm_head.weight"] = out["model.embed_tokens.weight"]
    return out


def native_config(cfg: Phi4Config) -> dict[str, Any]:
    """`Phi4MultimodalConfig` keyword arguments of `cfg` (a tiny vision tower: it is never run)."""
    t, a = cfg.text, cfg.audio
    rope: dict[str, Any] = {
        "rope_type": "default",
        "rope_theta": t.rope_theta,
        "partial_rotary_factor": t.partial_rotary_factor,
    }
    extra: dict[str, Any] = {}
    if t.longrope is not None:
        lr = t.longrope
        rope.update(
            rope_type="longrope",
            short_factor=list(lr.short_factor),
            long_factor=list(lr.long_factor),
            attention_factor=lr.attention_factor,
        )
        extra["original_max_position_embeddings"] = lr.original_max_position_embeddings
    return {
        "vocab_size": t.vocab_size,
        "hidden_size": t.hidden_size,
        "intermediate_size": t.intermediate_size,
        "num_hidden_layers": t.num_hidden_layers,
        "num_attention_heads": t.num_attention_heads,
        "num_key_value_heads": t.num_key_value_heads,
        "rms_norm_eps": t.rms_norm_eps,
        "max_position_embeddings": t.max_position_embeddings,
        "tie_word_embeddings": t.tie_word_embeddings,
        "hidden_act": t.hidden_act,
        "rope_parameters": rope,
        "pad_token_id": 0,
        "bos_token_id": None,
        "eos_token_id": None,
        **extra,
        "audio_config": {
            "hidden_size": a.hidden_size,
            "intermediate_size": a.intermediate_size,
            "num_blocks": a.num_blocks,
            "num_attention_heads": a.num_attention_heads,
            "kernel_size": a.kernel_size,
            "input_size": a.input_size,
            "time_reduction": a.time_reduction,
            "nemo_conv_channels": a.nemo_conv_channels,
            "bias_max_distance": a.bias_max_distance,
            "bias_symmetric": a.bias_symmetric,
            "chunk_size": a.chunk_size,
            "left_chunk": a.left_chunk,
            "activation": a.activation,
            "conv_activation": a.conv_activation,
            "conv_glu_type": a.conv_glu_type,
            "nemo_activation": a.nemo_activation,
            "ext_pw_out_channel": a.hidden_size,
            "depthwise_separable_out_channel": a.hidden_size,
            "audio_token_id": cfg.audio_token_id,
        },
        "vision_config": {
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
        },
    }


def to_hf(params: Any, cfg: Phi4Config, base: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """A transformers-native Phi-4-Multimodal checkpoint of `params`: its tensors and `config.json`
    (keeping a native `base`'s other fields). The speech LoRA is merged into the weights, so none is
    written (convert it back with `merge_lora=False`, `--no-lora`); no vision tower (transformers
    initialises it on load)."""
    base = base if base.get("model_type") == "phi4_multimodal" else {}  # the remote layout's differs
    config = {**base, **native_config(cfg), "model_type": "phi4_multimodal",
              "architectures": ["Phi4MultimodalForCausalLM"]}  # fmt: skip
    config["vision_config"] = base.get("vision_config", config["vision_config"])
    return native_state_dict(params, cfg).items(), config
