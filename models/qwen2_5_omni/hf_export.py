"""Qwen2.5-Omni thinker parameters -> a thinker checkpoint in the Hugging Face layout that transformers
loads (the inverse of `hf_import`, through the same `HF_KEY_MAP`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from models.params import iter_leaves
from models.qwen2_5_omni.config import ThinkerConfig
from models.qwen2_5_omni.hf_config import hf_config_dict
from models.qwen2_5_omni.hf_keymap import hf_key_map, to_hf_layout
from models.qwen2_5_omni.params import ThinkerParams


def to_hf(
    params: ThinkerParams, cfg: ThinkerConfig, base: dict[str, Any]
) -> tuple[Iterator[tuple[str, np.ndarray]], dict[str, Any]]:
    """A thinker-only Hugging Face checkpoint of `params`: its tensors (through the inverse of
    `HF_KEY_MAP`, in the params' dtype, one leaf on the host at a time) and its `config.json`, which
    keeps `base`'s other fields (vision config, token ids, ...; without them, a placeholder vision
    config). The vision tower is not exported (transformers initialises it randomly on load)."""
    leaves = dict(iter_leaves(params))

    def tensors() -> Iterator[tuple[str, np.ndarray]]:
        host: dict[str, np.ndarray] = {}
        for e in hf_key_map(cfg):
            if e.leaf not in host:
                host = {e.leaf: np.asarray(jax.device_get(leaves[e.leaf]))}
            x = host[e.leaf] if e.layer is None else host[e.leaf][e.layer]
            yield e.hf_key, to_hf_layout(x, e.layout)

    return tensors(), hf_config_dict(cfg, base or None, dtype=jnp.dtype(params.embed.dtype).name)
