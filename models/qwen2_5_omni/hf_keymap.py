"""The one table between Qwen2.5-Omni thinker's Hugging Face tensor names and its parameter leaves.

`HF_KEY_MAP` maps the thinker's Hugging Face tensor names (thinker-only naming, as written by
`save_pretrained` and the released checkpoints without their `thinker.` prefix) to `ThinkerParams`
leaves; the importer (`hf_import`) reads through it and the exporter (`hf_export`) writes through it.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from models.params import leaf_shapes
from models.qwen2_5_omni.config import ThinkerConfig

# (HF name, ThinkerParams leaf, layout). `{i}` is the layer index; such leaves are stacked on a leading
# [layers] axis. Layouts: "linear" = torch [out, in] <-> ours [in, out]; "conv" = torch Conv1d
# [out, in, k] <-> ours [k, in, out]; "plain" = same layout.
HF_KEY_MAP: tuple[tuple[str, str, str], ...] = (
    ("audio_tower.conv1.weight", "audio.conv1_w", "conv"),
    ("audio_tower.conv1.bias", "audio.conv1_b", "plain"),
    ("audio_tower.conv2.weight", "audio.conv2_w", "conv"),
    ("audio_tower.conv2.bias", "audio.conv2_b", "plain"),
    ("audio_tower.layers.{i}.self_attn_layer_norm.weight", "audio.layers.attn_norm_w", "plain"),
    ("audio_tower.layers.{i}.self_attn_layer_norm.bias", "audio.layers.attn_norm_b", "plain"),
    ("audio_tower.layers.{i}.self_attn.q_proj.weight", "audio.layers.q_w", "linear"),
    ("audio_tower.layers.{i}.self_attn.q_proj.bias", "audio.layers.q_b", "plain"),
    ("audio_tower.layers.{i}.self_attn.k_proj.weight", "audio.layers.k_w", "linear"),
    ("audio_tower.layers.{i}.self_attn.v_proj.weight", "audio.layers.v_w", "linear"),
    ("audio_tower.layers.{i}.self_attn.v_proj.bias", "audio.layers.v_b", "plain"),
    ("audio_tower.layers.{i}.self_attn.out_proj.weight", "audio.layers.o_w", "linear"),
    ("audio_tower.layers.{i}.self_attn.out_proj.bias", "audio.layers.o_b", "plain"),
    ("audio_tower.layers.{i}.final_layer_norm.weight", "audio.layers.mlp_norm_w", "plain"),
    ("audio_tower.layers.{i}.final_layer_norm.bias", "audio.layers.mlp_norm_b", "plain"),
    ("audio_tower.layers.{i}.fc1.weight", "audio.layers.fc1_w", "linear"),
    ("audio_tower.layers.{i}.fc1.bias", "audio.layers.fc1_b", "plain"),
    ("audio_tower.layers.{i}.fc2.weight", "audio.layers.fc2_w", "linear"),
    ("audio_tower.layers.{i}.fc2.bias", "audio.layers.fc2_b", "plain"),
    ("audio_tower.ln_post.weight", "audio.ln_post_w", "plain"),
    ("audio_tower.ln_post.bias", "audio.ln_post_b", "plain"),
    ("audio_tower.proj.weight", "audio.proj_w", "linear"),
    ("audio_tower.proj.bias", "audio.proj_b", "plain"),
    ("audio_tower.audio_bos_eos_token.weight", "audio.bos_eos_embedding", "plain"),
    ("model.embed_tokens.weight", "embed", "plain"),
    ("model.layers.{i}.input_layernorm.weight", "layers.attn_norm", "plain"),
    ("model.layers.{i}.self_attn.q_proj.weight", "layers.q_w", "linear"),
    ("model.layers.{i}.self_attn.q_proj.bias", "layers.q_b", "plain"),
    ("model.layers.{i}.self_attn.k_proj.weight", "layers.k_w", "linear"),
    ("model.layers.{i}.self_attn.k_proj.bias", "layers.k_b", "plain"),
    ("model.layers.{i}.self_attn.v_proj.weight", "layers.v_w", "linear"),
    ("model.layers.{i}.self_attn.v_proj.bias", "layers.v_b", "plain"),
    ("model.layers.{i}.self_attn.o_proj.weight", "layers.o_w", "linear"),
    ("model.layers.{i}.post_attention_layernorm.weight", "layers.mlp_norm", "plain"),
    ("model.layers.{i}.mlp.gate_proj.weight", "layers.gate_w", "linear"),
    ("model.layers.{i}.mlp.up_proj.weight", "layers.up_w", "linear"),
    ("model.layers.{i}.mlp.down_proj.weight", "layers.down_w", "linear"),
    ("model.norm.weight", "norm", "plain"),
    ("lm_head.weight", "lm_head", "linear"),  # absent with tied embeddings
)


@dataclasses.dataclass(frozen=True)
class KeyEntry:
    """One HF tensor: which leaf it fills, at which layer (None = unstacked), in which layout."""

    hf_key: str
    leaf: str
    layer: int | None
    layout: str
    hf_shape: tuple[int, ...]


def to_hf_layout(x: np.ndarray, layout: str) -> np.ndarray:
    """Our layout -> PyTorch layout (both transforms are their own inverse)."""
    if layout == "linear":
        return x.T
    if layout == "conv":
        return x.transpose(2, 1, 0)
    return x


from_hf_layout = to_hf_layout


def hf_key_map(cfg: ThinkerConfig) -> list[KeyEntry]:
    """Every HF tensor a thinker with config `cfg` has (thinker-only names), with expected HF shapes."""
    shapes = leaf_shapes(cfg)
    entries: list[KeyEntry] = []
    covered = set()
    for template, leaf, layout in HF_KEY_MAP:
        if leaf not in shapes:  # lm_head with tied embeddings
            continue
        covered.add(leaf)
        shape = shapes[leaf]
        if "{i}" in template:
            n = cfg.audio.encoder_layers if leaf.startswith("audio.") else cfg.text.num_hidden_layers
            if shape[0] != n:  # pragma: no cover - table / params.py invariant
                raise AssertionError(f"{leaf}: stacked axis {shape[0]} != {n} layers")
            hf_shape = to_hf_layout(np.empty(shape[1:], np.uint8), layout).shape
            entries += [KeyEntry(template.format(i=i), leaf, i, layout, hf_shape) for i in range(n)]
        else:
            hf_shape = to_hf_layout(np.empty(shape, np.uint8), layout).shape
            entries.append(KeyEntry(template, leaf, None, layout, hf_shape))
    if covered != set(shapes):  # pragma: no cover - guards edits of params.py
        raise AssertionError(f"HF_KEY_MAP does not cover parameter leaves {sorted(set(shapes) - covered)}")
    return entries
