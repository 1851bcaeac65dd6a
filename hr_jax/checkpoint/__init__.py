"""Checkpoints, in one place: the Hugging Face key map, import from and export to the Hugging Face
layout, and hr_jax's own orbax format.

- `hf_config`: the Hugging Face `config.json` both ways (`config_from_hf`, `hf_config_dict`);
- `keymap`: `HF_KEY_MAP` (HF tensor name <-> parameter leaf) and the leaf helpers;
- `hub`: checkpoints by Hub name (`hf_snapshot`) and the conversion cache (`converted_from_hub`);
- `hf_import`: `convert`, Hugging Face safetensors -> hr_jax checkpoint (the CLI is `convert.hf_to_jax`);
- `hf_export`: `export_hf`, hr_jax parameters -> a thinker checkpoint transformers loads;
- `store`: `save_leaves` / `save_params` / `load_params` / `load_config` of hr_jax checkpoints.
"""

from hr_jax.checkpoint.hf_export import export_hf
from hr_jax.checkpoint.hf_import import DTYPES, ConversionError, convert
from hr_jax.checkpoint.hub import CheckpointNotFound, cache_root, converted_from_hub, hf_snapshot
from hr_jax.checkpoint.keymap import (
    HF_KEY_MAP,
    KeyEntry,
    from_hf_layout,
    hf_key_map,
    iter_leaves,
    leaf_shapes,
    params_from_leaves,
    to_hf_layout,
)
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
from models.qwen2_5_omni.hf_config import (
    UnsupportedConfig,
    check_hf,
    config_from_hf,
    default_mrope_section,
    hf_config_dict,
)

__all__ = [
    "CONFIG_FILE",
    "CheckpointNotFound",
    "ConversionError",
    "DTYPES",
    "FORMAT",
    "FORMAT_V1",
    "HF_CONFIG_FILE",
    "HF_KEY_MAP",
    "KeyEntry",
    "NotAConvertedCheckpoint",
    "PARAMS_DIR",
    "UnsupportedConfig",
    "cache_root",
    "check_hf",
    "config_from_hf",
    "convert",
    "converted_from_hub",
    "default_mrope_section",
    "export_hf",
    "from_hf_layout",
    "hf_config_dict",
    "hf_key_map",
    "hf_snapshot",
    "iter_leaves",
    "leaf_shapes",
    "load_config",
    "load_params",
    "params_from_leaves",
    "save_leaves",
    "save_params",
    "to_hf_layout",
]
