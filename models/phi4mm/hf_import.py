"""Phi-4-Multimodal (audio + text) safetensors -> its parameter leaves, from either released layout
(`hf_layout`).

- Remote code (`microsoft/Phi-4-multimodal-instruct` main): LoRA'd linears stored as
  `….base_layer.weight` with `….lora_A.{speech,vision}.weight` / `lora_B` beside them (rank and alpha in
  `config.json` `speech_lora`), the encoder's `feed_forward_*.net.{0.linear,2}` and
  `self_attn.linear_{q,k,v,out}`, the projection as `audio_projection.speech.{0,2}`.
- transformers-native (`refs/pr/70`): plain weights with transformers' module names, the speech LoRA as
  a PEFT adapter in `speech-lora/` (`adapter_config.json`, `adapter_model.safetensors`).

The speech LoRA is merged, W + (alpha / r) B A, unless `merge_lora=False`: without it the released model
refuses audio questions. Fused `qkv_proj` and `gate_up_proj` are split after the merge. Vision tensors
(the image encoder, the vision-speech projection, the vision LoRA) are skipped by name and counted;
every other tensor must be used and every parameter filled with the shape the config implies, checked
from the headers before any data is read. Leaves are written one at a time from memory maps.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from models.hf_checkpoint import (
    ConversionError,
    HFCheckpoint,
    SafetensorsFiles,
    TensorRef,
    add_unique,
    check_feature_size,
    check_tensor_names,
    headers,
    safetensors_files,
    tie_head,
)
from models.params import leaf_shapes
from models.phi4mm.config import Phi4Config
from models.phi4mm.features import Phi4FeatureConfig
from models.phi4mm.hf_config import is_phi4, phi4_config_from_hf, speech_lora_from_config
from models.phi4mm.hf_layout import LORA_TARGETS, is_vision, leaf_sources, native_name, torch_shape

SPEECH_LORA_DIR = "speech-lora"  # the PEFT speech adapter of the transformers-native revision
matches = is_phi4
_LORA = re.compile(r"^(?P<module>.+)\.lora_(?P<ab>[AB])\.(?P<name>\w+)\.weight$")


class Lora:
    """One adapter: {module name: (A tensor, B tensor)} and its scale alpha / r."""

    def __init__(self, pairs: dict[str, tuple[TensorRef, TensorRef]], scale: float, source: str):
        self.pairs, self.scale, self.source = pairs, scale, source


def _check_targets(modules: list[str], source: str) -> None:
    for m in modules:
        if not (re.fullmatch(r"model\.layers\.\d+\.(?:" + "|".join(map(re.escape, LORA_TARGETS)) + ")", m)):
            raise ConversionError(
                f"{source}: LoRA on {m!r} is not merged by hr_jax (it merges {', '.join(LORA_TARGETS)} of "
                f"the decoder layers)"
            )


def _peft_adapter(directory: Path) -> Lora:
    """The PEFT speech adapter of the transformers-native revision."""
    from safetensors import safe_open

    cfg_file, weights = directory / "adapter_config.json", directory / "adapter_model.safetensors"
    if not cfg_file.is_file() or not weights.is_file():
        raise ConversionError(f"{directory} needs adapter_config.json and adapter_model.safetensors")
    cfg = json.loads(cfg_file.read_text())
    for field, want in (
        ("use_dora", False),
        ("bias", "none"),
        ("rank_pattern", {}),
        ("alpha_pattern", {}),
        ("modules_to_save", None),
    ):
        if (cfg.get(field) or want) != want:
            raise ConversionError(
                f"{cfg_file}: {field}={cfg.get(field)!r} is not implemented ({want!r} only)"
            )
    r, alpha = int(cfg["r"]), float(cfg["lora_alpha"])
    scale = alpha / (r**0.5) if cfg.get("use_rslora") else alpha / r
    pairs: dict[str, dict[str, TensorRef]] = {}
    with safe_open(str(weights), framework="numpy") as f:
        for key in f.keys():
            m = re.fullmatch(
                r"(?:base_model\.model\.)?(?P<module>.+)\.lora_(?P<ab>[AB])(?:\.\w+)?\.weight", key
            )
            if m is None:
                raise ConversionError(f"{weights.name}: tensor {key!r} is not a LoRA A/B weight")
            sl = f.get_slice(key)
            pairs.setdefault(m["module"], {})[m["ab"]] = TensorRef(
                weights, key, tuple(sl.get_shape()), sl.get_dtype()
            )
    _check_targets(sorted(pairs), str(weights))
    return Lora(
        {k: (v["A"], v["B"]) for k, v in pairs.items()}, scale, f"{directory} (r={r}, alpha={alpha:g})"
    )


def _scan(hf_dir: Path) -> tuple[dict[str, TensorRef], dict[str, dict[str, dict[str, TensorRef]]], int]:
    """(base tensors by native name, in-file LoRA {adapter: {module: {A|B: tensor}}}, vision tensors
    skipped), from the safetensors headers."""
    found: dict[str, TensorRef] = {}
    lora: dict[str, dict[str, dict[str, TensorRef]]] = {}
    skipped = 0
    for ref in headers(safetensors_files(hf_dir)):
        m = _LORA.match(ref.key)
        if m is not None:
            lora.setdefault(m["name"], {}).setdefault(m["module"], {})[m["ab"]] = ref
            continue
        name = native_name(ref.key)
        if is_vision(name):
            skipped += 1
            continue
        add_unique(found, name, ref)
    return found, lora, skipped


def _leaves(
    cfg: Phi4Config, found: dict[str, TensorRef], lora: Lora | None, np_dtype, files: SafetensorsFiles
) -> Iterator[tuple[str, np.ndarray]]:
    from tqdm.auto import tqdm

    shapes = leaf_shapes(cfg)
    sources = leaf_sources(cfg)
    with tqdm(total=len(sources), desc="converting", unit="leaf", disable=None) as bar:
        for leaf, (n, source) in sources.items():
            bar.set_postfix_str(leaf)
            buf = np.empty(shapes[leaf], np_dtype)
            for i in range(n) if n is not None else [None]:
                name, layout, rows = source(i or 0)
                w = files.read(found[name])
                module = name.removesuffix(".weight")
                if lora is not None and module in lora.pairs:
                    a_ref, b_ref = lora.pairs[module]
                    w = w.astype(np.float32) + np.float32(lora.scale) * (
                        files.read(b_ref).astype(np.float32) @ files.read(a_ref).astype(np.float32)
                    )
                if rows is not None:
                    w = w[rows]
                (buf if i is None else buf[i])[...] = layout(w)
            bar.update()
            yield leaf, buf
            del buf


def _check(cfg: Phi4Config, found: dict[str, TensorRef], lora: Lora | None) -> None:
    """Unknown, missing and misshapen tensors (headers only)."""
    shapes = leaf_shapes(cfg)
    expected: dict[str, tuple[int, ...]] = {}
    for leaf, (n, source) in leaf_sources(cfg).items():
        for i in range(n) if n is not None else [None]:
            name, layout, rows = source(i or 0)
            want = shapes[leaf] if i is None else shapes[leaf][1:]
            if rows is None:
                hf_shape = torch_shape(layout, want)
            else:  # a slice of a fused [out, in] tensor: check the whole tensor once
                hf_shape = None
            expected.setdefault(name, hf_shape)
    check_tensor_names(found, expected)
    t = cfg.text
    fused = {
        "self_attn.qkv_proj": (
            (t.num_attention_heads + 2 * t.num_key_value_heads) * t.head_dim,
            t.hidden_size,
        ),
        "mlp.gate_up_proj": (2 * t.intermediate_size, t.hidden_size),
    }
    for name, shape in expected.items():
        if shape is None:
            shape = next(s for k, s in fused.items() if name.endswith(k + ".weight"))
        if found[name].shape != tuple(shape):
            raise ConversionError(
                f"tensor {found[name].key!r} has shape {list(found[name].shape)}, expected {list(shape)} "
                "from config.json"
            )
        module = name.removesuffix(".weight")
        if lora is not None and module in lora.pairs:
            a_ref, b_ref = lora.pairs[module]
            out_dim, in_dim = shape
            if a_ref.shape[1:] != (in_dim,) or b_ref.shape[0] != out_dim or a_ref.shape[0] != b_ref.shape[1]:
                raise ConversionError(
                    f"LoRA of {module!r} ({lora.source}): A {list(a_ref.shape)} and B {list(b_ref.shape)} "
                    "do not "
                    f"fit the weight {list(shape)}"
                )
    if lora is not None:
        stray = sorted(set(lora.pairs) - {k.removesuffix(".weight") for k in expected})
        if stray:
            raise ConversionError(f"LoRA for {stray[0]!r} ({lora.source}) matches no weight of the model")


def _in_file_lora(
    hf: dict[str, Any], lora: dict[str, dict[str, dict[str, TensorRef]]], merge: bool
) -> tuple[Lora | None, int]:
    """The remote layout's speech LoRA (when merging), and the count of LoRA tensors skipped."""
    skipped = sum(2 * len(mods) for name, mods in lora.items() if name != "speech" or not merge)
    unknown = sorted(set(lora) - {"speech", "vision"})
    if unknown:
        raise ConversionError(f"LoRA adapter {unknown[0]!r} in the weights is neither speech nor vision")
    if not merge or "speech" not in lora:
        return None, skipped
    rank_alpha = speech_lora_from_config(hf)
    if rank_alpha is None:
        raise ConversionError(
            "the weights carry lora_*.speech tensors but config.json has no speech_lora block"
        )
    r, alpha = rank_alpha
    mods = {native_name(m): ab for m, ab in lora["speech"].items()}
    for m, ab in mods.items():
        if set(ab) != {"A", "B"}:
            raise ConversionError(f"speech LoRA of {m!r} lacks lora_{'A' if 'A' not in ab else 'B'}")
    _check_targets(sorted(mods), "config.json speech_lora")
    return Lora(
        {m: (ab["A"], ab["B"]) for m, ab in mods.items()},
        alpha / r,
        f"config.json speech_lora (r={r}, alpha={alpha:g})",
    ), skipped


def read_hf(hf_dir: Path, hf: dict[str, Any], merge_lora: bool = True) -> HFCheckpoint:
    """Reads and checks a Phi-4-Multimodal directory (either layout; headers only). `merge_lora`: merge
    the speech LoRA (without it the released model refuses audio questions); False reads the base
    weights alone."""
    cfg = phi4_config_from_hf(hf)
    fe = Phi4FeatureConfig.from_dir(hf_dir)  # refuses, by field, a front end hr_jax does not implement
    check_feature_size(fe and fe.feature_size, cfg.audio.input_size, "input_size")
    found, in_file, skipped = _scan(hf_dir)
    lora, lora_skipped = _in_file_lora(hf, in_file, merge_lora)
    adapter_dir = hf_dir / SPEECH_LORA_DIR
    if merge_lora and lora is None and adapter_dir.is_dir():
        lora = _peft_adapter(adapter_dir)
    if merge_lora and lora is None:
        raise ConversionError(
            f"{hf_dir}: no speech LoRA (neither lora_*.speech tensors nor {SPEECH_LORA_DIR}/): the model "
            f"would refuse audio questions; pass --no-lora to convert the base weights alone"
        )
    files = SafetensorsFiles()
    cfg = tie_head(cfg, found, files)
    _check(cfg, found, lora)
    merged = "not merged (--no-lora)" if lora is None else f"merged from {lora.source}"
    return HFCheckpoint(
        cfg,
        lambda np_dtype: _leaves(cfg, found, lora, np_dtype, files),
        source=f"{hf_dir}; speech LoRA {merged}",
        note=f"skipped {skipped} vision tensors and {lora_skipped} LoRA tensors not merged; "
        f"speech LoRA {merged}",
    )
