"""Checkpoints, in one place: import from and export to the Hugging Face layout for every family, and
hr_jax's own orbax format.

- `hub`: checkpoints by Hub name (`hf_snapshot`) and the cache directory;
- `hf_import`: `convert`, a Hugging Face checkpoint of any family -> hr_jax checkpoint (the CLI is
  `convert.hf_to_jax`), and `converted_from_hub`, the conversion cache; each family reads its own
  layout (`ModelFamily.read_hf`, over `models.hf_checkpoint`);
- `export_hf`: hr_jax parameters -> the Hugging Face layout transformers loads (`ModelFamily.export_hf`);
- `store`: `save_leaves` / `save_params` / `load_params` / `load_config` of hr_jax checkpoints.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from hr_jax.checkpoint.hf_import import DTYPES, convert, converted_from_hub
from hr_jax.checkpoint.hub import CheckpointNotFound, cache_root, hf_snapshot
from hr_jax.checkpoint.store import (
    CONFIG_FILE,
    FORMAT,
    FORMAT_V1,
    HF_CONFIG_FILE,
    PARAMS_DIR,
    NotAConvertedCheckpoint,
    load_config,
    load_params,
    save_leaves,
    save_params,
)
from models.family import ModelConfig, ModelParams, UnsupportedConfig, family_of
from models.hf_checkpoint import ConversionError, write_safetensors
from models.params import iter_leaves, leaf_shapes, params_from_leaves


def export_hf(
    params: ModelParams,
    cfg: ModelConfig,
    out_dir: str | os.PathLike,
    *,
    base_config: dict[str, Any] | str | os.PathLike | None = None,
    max_shard_bytes: int = 4 << 30,
) -> Path:
    """Writes `params` as a Hugging Face checkpoint of their family that transformers loads
    (`ModelFamily.to_hf`): safetensors (sharded with an index above `max_shard_bytes`) and
    `config.json`. `base_config`: a config dict, or a path to one (e.g. a converted checkpoint's
    `hf_config.json`), whose other fields are kept."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if base_config is not None and not isinstance(base_config, dict):
        base_config = json.loads(Path(base_config).read_text())
    tensors, config = family_of(cfg).to_hf(params, cfg, dict(base_config or {}))
    write_safetensors(tensors, out, max_shard_bytes)
    (out / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    return out


__all__ = [
    "CONFIG_FILE",
    "CheckpointNotFound",
    "ConversionError",
    "DTYPES",
    "FORMAT",
    "FORMAT_V1",
    "HF_CONFIG_FILE",
    "NotAConvertedCheckpoint",
    "PARAMS_DIR",
    "UnsupportedConfig",
    "cache_root",
    "convert",
    "converted_from_hub",
    "export_hf",
    "hf_snapshot",
    "iter_leaves",
    "leaf_shapes",
    "load_config",
    "load_params",
    "params_from_leaves",
    "save_leaves",
    "save_params",
]
