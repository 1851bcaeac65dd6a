"""Hugging Face Qwen2.5-Omni (thinker) safetensors -> the thinker's parameter leaves.

Accepts full Omni checkpoints (tensors under `thinker.`; `talker.*` and `token2wav.*` skipped) and
thinker-only ones; the vision tower (`visual.*`) is skipped as well. Every other tensor must map to a
parameter through `HF_KEY_MAP` and every parameter must be filled, with the shape the config implies;
otherwise a `ConversionError` names the key. All of that is checked from the safetensors headers
before any tensor data is read. Then each parameter leaf in turn is filled from short-lived memory maps
of blocks of its tensors' rows, cast to the target dtype, so peak memory is about two copies of the
largest leaf plus one block, whatever the model's size.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from models.hf_checkpoint import (
    ConversionError,
    HFCheckpoint,
    SafetensorsFiles,
    TensorRef,
    check_feature_size,
    check_shapes,
    check_tensor_names,
    safetensors_files,
    scan_headers,
    tie_head,
)
from models.params import leaf_shapes
from models.qwen2_5_omni.config import ThinkerConfig
from models.qwen2_5_omni.features import FeatureConfig
from models.qwen2_5_omni.hf_config import config_from_hf
from models.qwen2_5_omni.hf_keymap import KeyEntry, hf_key_map, to_hf_layout

SKIP_PREFIXES = ("talker.", "token2wav.", "visual.")
THINKER_MODEL_TYPES = ("qwen2_5_omni", "qwen2_5_omni_thinker")


def matches(hf: dict[str, Any]) -> bool:
    """A Qwen2.5-Omni config: the full model (`thinker_config`) or its thinker alone. Judged by
    `model_type` where the file has one, so Qwen2-Audio (also a `text_config` + `audio_config`) is not
    taken for it."""
    model_type = hf.get("model_type")
    if model_type is not None:
        return model_type in THINKER_MODEL_TYPES
    return "thinker_config" in hf or ("text_config" in hf and "audio_config" in hf)


def _normalize(key: str, omni: bool) -> str | None:
    """HF tensor name -> thinker-only name, or None for tensors the thinker does not use."""
    if key.startswith("thinker."):
        key = key[len("thinker.") :]
    elif omni and key.startswith(("talker.", "token2wav.")):
        return None
    # transformers>=5 in-memory names, in case a checkpoint was saved with them
    for new, old in (("model.language_model.", "model."), ("model.audio_tower.", "audio_tower."),
                     ("model.visual.", "visual.")):  # fmt: skip
        if key.startswith(new):
            key = old + key[len(new) :]
    if key.startswith(SKIP_PREFIXES):
        return None
    return key


def _leaves(
    found: dict[str, TensorRef],
    entries: list[KeyEntry],
    cfg: ThinkerConfig,
    np_dtype: Any,
    files: SafetensorsFiles,
) -> Iterator[tuple[str, np.ndarray]]:
    """Yields (leaf name, array in the target dtype) one leaf at a time, each built from memory maps of
    its tensors (a stacked leaf from its layers), so one leaf is in memory at once."""
    from tqdm.auto import tqdm

    by_leaf: dict[str, list[KeyEntry]] = {}
    for e in entries:
        by_leaf.setdefault(e.leaf, []).append(e)
    shapes = leaf_shapes(cfg)
    with tqdm(total=len(entries), desc="converting", unit="tensor", disable=None) as bar:
        for leaf, leaf_entries in by_leaf.items():
            bar.set_postfix_str(leaf)
            buf = np.empty(shapes[leaf], np_dtype)
            for e in leaf_entries:
                dst = buf if e.layer is None else buf[e.layer]
                files.copy_into(found[e.hf_key], to_hf_layout(dst, e.layout))  # a view in the HF layout
                bar.update()
            yield leaf, buf
            del buf


def read_hf(hf_dir: Path, hf: dict[str, Any], merge_lora: bool = True) -> HFCheckpoint:
    """Reads and checks a Qwen2.5-Omni checkpoint directory (headers only; see the module docstring).
    `merge_lora` does not apply: the released thinkers carry no adapter."""
    cfg = config_from_hf(hf)
    feature_config = FeatureConfig.from_dir(hf_dir)  # refuses a preprocessor config we cannot follow
    check_feature_size(feature_config and feature_config.feature_size, cfg.audio.num_mel_bins, "num_mel_bins")
    files = safetensors_files(hf_dir)
    omni = "thinker_config" in hf
    found = scan_headers(files, lambda k: _normalize(k, omni))
    if not omni and any(t.key.startswith("thinker.") for t in found.values()):
        # thinker.-prefixed keys with a thinker-only config: the Omni layout
        found = scan_headers(files, lambda k: _normalize(k, True))
    reader = SafetensorsFiles()
    cfg = tie_head(cfg, found, reader)
    entries = hf_key_map(cfg)
    expected = {e.hf_key: e.hf_shape for e in entries}
    check_tensor_names(found, expected)
    check_shapes(found, expected)
    return HFCheckpoint(
        cfg, lambda np_dtype: _leaves(found, entries, cfg, np_dtype, reader), source=str(hf_dir)
    )


__all__ = ["ConversionError", "matches", "read_hf"]
