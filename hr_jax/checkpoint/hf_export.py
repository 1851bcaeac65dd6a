"""hr_jax parameters -> a thinker checkpoint in the Hugging Face layout that transformers loads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from hr_jax.checkpoint.keymap import hf_key_map, iter_leaves, to_hf_layout
from models.qwen2_5_omni.config import ThinkerConfig
from models.qwen2_5_omni.hf_config import hf_config_dict
from models.qwen2_5_omni.params import ThinkerParams


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

    if not isinstance(cfg, ThinkerConfig):
        raise ValueError(
            f"export_hf writes Qwen2.5-Omni thinkers; this is a {cfg.family} model (Phi-4-Multimodal: "
            "hr_jax.checkpoint.phi4_import.native_state_dict / native_config give transformers' layout)"
        )
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
