"""Phi-4-Multimodal (audio + text) safetensors -> hr_jax checkpoint, from either released layout.

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

import dataclasses
import json
import re
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from hr_jax.checkpoint.hf_import import (
    DTYPES,
    ConversionError,
    SafetensorsFiles,
    TensorRef,
    atomic_dir,
    check_tensor_names,
    safetensors_files,
)
from hr_jax.checkpoint.hub import AUX_FILES, SPEECH_LORA_DIR
from hr_jax.checkpoint.keymap import iter_leaves, leaf_shapes
from hr_jax.checkpoint.store import HF_CONFIG_FILE, save_leaves
from models.phi4mm.config import Phi4Config
from models.phi4mm.features import Phi4FeatureConfig
from models.phi4mm.hf_config import phi4_config_from_hf, speech_lora_from_config

AUDIO = "model.embed_tokens_extend.audio_embed."
VISION_PREFIXES = ("model.embed_tokens_extend.image_embed.", "model.vision_embed_tokens.")
LORA_TARGETS = ("self_attn.qkv_proj", "self_attn.o_proj", "mlp.gate_up_proj", "mlp.down_proj")

# Remote-code names -> transformers-native names (the layouts differ only here and in the LoRA).
_RENAMES = (
    (r"^(.*\.encoders\.\d+\.feed_forward_(?:in|out))\.net\.0\.linear\.", r"\1.gate_up_proj."),
    (r"^(.*\.encoders\.\d+\.feed_forward_(?:in|out))\.net\.2\.", r"\1.down_proj."),
    (r"^(.*\.encoders\.\d+\.self_attn)\.linear_(q|k|v)\.", r"\1.\2_proj."),
    (r"^(.*\.encoders\.\d+\.self_attn)\.linear_out\.", r"\1.o_proj."),
    (r"^(.*audio_embed)\.audio_projection\.speech\.0\.", r"\1.up_proj_for_speech."),
    (r"^(.*audio_embed)\.audio_projection\.speech\.2\.", r"\1.down_proj_for_speech."),
    (r"^(.*audio_embed)\.audio_projection\.vision\.0\.", r"\1.up_proj_for_vision_speech."),
    (r"^(.*audio_embed)\.audio_projection\.vision\.2\.", r"\1.down_proj_for_vision_speech."),
)
_LORA = re.compile(r"^(?P<module>.+)\.lora_(?P<ab>[AB])\.(?P<name>\w+)\.weight$")


def native_name(key: str) -> str:
    key = key.replace(".base_layer.", ".")
    for pattern, repl in _RENAMES:
        key = re.sub(pattern, repl, key)
    return key


def is_vision(name: str) -> bool:
    return name.startswith(VISION_PREFIXES) or "_for_vision_speech." in name


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
    from safetensors import safe_open

    found: dict[str, TensorRef] = {}
    lora: dict[str, dict[str, dict[str, TensorRef]]] = {}
    skipped = 0
    for file in safetensors_files(hf_dir):
        with safe_open(str(file), framework="numpy") as f:
            for key in f.keys():
                sl = f.get_slice(key)
                ref = TensorRef(file, key, tuple(sl.get_shape()), sl.get_dtype())
                m = _LORA.match(key)
                if m is not None:
                    lora.setdefault(m["name"], {}).setdefault(m["module"], {})[m["ab"]] = ref
                    continue
                name = native_name(key)
                if is_vision(name):
                    skipped += 1
                    continue
                if name in found:
                    raise ConversionError(
                        f"tensor {key!r} appears twice ({found[name].file.name}, {file.name})"
                    )
                found[name] = ref
    return found, lora, skipped


# ------------------------------------------------------------------------------------------------
# Leaves: how each parameter leaf is read (torch layout -> ours)


def _linear(x: np.ndarray) -> np.ndarray:
    return x.T


def _conv2d(x: np.ndarray) -> np.ndarray:  # [out, in, kh, kw] -> [kh, kw, in, out]
    return x.transpose(2, 3, 1, 0)


def _pointwise(x: np.ndarray) -> np.ndarray:  # Conv1d/2d kernel 1: [out, in, 1(, 1)] -> [in, out]
    return x.reshape(x.shape[0], x.shape[1]).T


def _pointwise2d(x: np.ndarray) -> np.ndarray:  # Conv2d kernel 1x1: [out, in, 1, 1] -> [in, out]
    return x.reshape(x.shape[0], x.shape[1]).T


def _depthwise1d(x: np.ndarray) -> np.ndarray:  # [d, 1, k] -> [k, d]
    return x[:, 0, :].T


def _squeeze(x: np.ndarray) -> np.ndarray:  # [1, d, 1] -> [d]
    return x.reshape(-1)


def _plain(x: np.ndarray) -> np.ndarray:
    return x


Source = tuple[str, Callable[[np.ndarray], np.ndarray], slice | None]  # native name, layout, rows to take


def leaf_sources(cfg: Phi4Config) -> dict[str, tuple[int | None, Callable[[int], Source]]]:
    """{leaf: (layers or None, layer -> (native tensor name, layout, row slice of a fused tensor))}."""
    e, a, t = AUDIO + "encoder.", cfg.audio, cfg.text
    q, kv, f = t.num_attention_heads * t.head_dim, t.num_key_value_heads * t.head_dim, t.intermediate_size
    fused = {
        "q_w": ("self_attn.qkv_proj", slice(0, q)),
        "k_w": ("self_attn.qkv_proj", slice(q, q + kv)),
        "v_w": ("self_attn.qkv_proj", slice(q + kv, q + 2 * kv)),
        "gate_w": ("mlp.gate_up_proj", slice(0, f)),
        "up_w": ("mlp.gate_up_proj", slice(f, 2 * f)),
    }
    out: dict[str, tuple[int | None, Callable[[int], Source]]] = {}

    def one(leaf: str, name: str, layout=_plain) -> None:
        out[leaf] = (None, lambda i, name=name, layout=layout: (name, layout, None))

    def per(leaf: str, n: int, fmt: str, layout=_plain, rows: slice | None = None) -> None:
        out[leaf] = (n, lambda i, fmt=fmt, layout=layout, rows=rows: (fmt.format(i=i), layout, rows))

    one("audio.global_mean", e + "encoder_embedding.global_mean")
    one("audio.global_invstd", e + "encoder_embedding.global_invstd")
    one("audio.subsampling.conv0_w", e + "embed.conv.0.weight", _conv2d)
    one("audio.subsampling.conv0_b", e + "embed.conv.0.bias")
    pairs = a.num_subsampling_convs - 1
    out["audio.subsampling.dw_w"] = (pairs, lambda j: (e + f"embed.conv.{2 + 3 * j}.weight", _conv2d, None))
    out["audio.subsampling.dw_b"] = (pairs, lambda j: (e + f"embed.conv.{2 + 3 * j}.bias", _plain, None))
    out["audio.subsampling.pw_w"] = (
        pairs,
        lambda j: (e + f"embed.conv.{3 + 3 * j}.weight", _pointwise2d, None),
    )
    out["audio.subsampling.pw_b"] = (pairs, lambda j: (e + f"embed.conv.{3 + 3 * j}.bias", _plain, None))
    one("audio.subsampling.out_w", e + "embed.out.weight", _linear)
    one("audio.subsampling.out_b", e + "embed.out.bias")
    one("audio.rel_bias", e + "relative_attention_bias_layer.bias_values.weight")
    n, L = a.num_blocks, e + "encoders.{i}."
    for ours, theirs in (("ffn_in", "feed_forward_in"), ("ffn_out", "feed_forward_out")):
        per(f"audio.layers.{ours}.norm_w", n, L + theirs + ".layer_norm.weight")
        per(f"audio.layers.{ours}.norm_b", n, L + theirs + ".layer_norm.bias")
        per(f"audio.layers.{ours}.up_w", n, L + theirs + ".gate_up_proj.weight", _linear)
        per(f"audio.layers.{ours}.up_b", n, L + theirs + ".gate_up_proj.bias")
        per(f"audio.layers.{ours}.down_w", n, L + theirs + ".down_proj.weight", _linear)
        per(f"audio.layers.{ours}.down_b", n, L + theirs + ".down_proj.bias")
    for ours, theirs in (
        ("attn_norm", "layer_norm_att"),
        ("final_norm", "layer_norm"),
        ("conv_norm", "conv.layer_norm"),
    ):
        per(f"audio.layers.{ours}_w", n, L + theirs + ".weight")
        per(f"audio.layers.{ours}_b", n, L + theirs + ".bias")
    for p in ("q", "k", "v", "o"):
        per(f"audio.layers.{p}_w", n, L + f"self_attn.{p}_proj.weight", _linear)
        per(f"audio.layers.{p}_b", n, L + f"self_attn.{p}_proj.bias")
    for ours, theirs, layout in (
        ("glu", "conv.glu.ext_pw_conv_1d", _pointwise),
        ("dw", "conv.dw_sep_conv_1d.dw_conv", _depthwise1d),
        ("pw", "conv.dw_sep_conv_1d.pw_conv", _pointwise),
        ("out", "conv.ext_pw_conv_1d", _pointwise),
    ):
        per(f"audio.layers.{ours}_w", n, L + theirs + ".weight", layout)
        per(f"audio.layers.{ours}_b", n, L + theirs + ".bias")
    per("audio.layers.glu_b1", n, L + "conv.glu.b1", _squeeze)
    per("audio.layers.glu_b2", n, L + "conv.glu.b2", _squeeze)
    one("audio.proj_up_w", AUDIO + "up_proj_for_speech.weight", _linear)
    one("audio.proj_up_b", AUDIO + "up_proj_for_speech.bias")
    one("audio.proj_down_w", AUDIO + "down_proj_for_speech.weight", _linear)
    one("audio.proj_down_b", AUDIO + "down_proj_for_speech.bias")
    one("embed", "model.embed_tokens.weight")
    m, D = t.num_hidden_layers, "model.layers.{i}."
    per("layers.attn_norm", m, D + "input_layernorm.weight")
    per("layers.mlp_norm", m, D + "post_attention_layernorm.weight")
    for leaf, (module, rows) in fused.items():
        per(f"layers.{leaf}", m, D + module + ".weight", _linear, rows)
    per("layers.o_w", m, D + "self_attn.o_proj.weight", _linear)
    per("layers.down_w", m, D + "mlp.down_proj.weight", _linear)
    one("norm", "model.norm.weight")
    if not t.tie_word_embeddings:
        one("lm_head", "lm_head.weight", _linear)
    return out


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
                hf_shape = _torch_shape(layout, want)
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


def _torch_shape(layout: Callable[[np.ndarray], np.ndarray], ours: tuple[int, ...]) -> tuple[int, ...]:
    """The source shape whose `layout` is `ours`."""
    if layout is _linear:
        return tuple(reversed(ours))
    if layout is _conv2d:
        kh, kw, cin, cout = ours
        return (cout, cin, kh, kw)
    if layout is _pointwise:
        return (ours[1], ours[0], 1)
    if layout is _pointwise2d:
        return (ours[1], ours[0], 1, 1)
    if layout is _depthwise1d:
        return (ours[1], 1, ours[0])
    if layout is _squeeze:
        return (1, ours[0], 1)
    return tuple(ours)


def _tie_head(cfg: Phi4Config, found: dict[str, TensorRef], files: SafetensorsFiles) -> Phi4Config:
    """transformers' tie rule for a stored `lm_head.weight` when the config ties the head: equal to the
    embedding, it is the embedding (dropped, nothing lost); different, it is kept untied, with a warning,
    never silently dropped."""
    head, embed = found.get("lm_head.weight"), found.get("model.embed_tokens.weight")
    if not cfg.text.tie_word_embeddings or head is None:
        return cfg
    if embed is not None and head.shape == embed.shape:
        a, b = files.read(head), files.read(embed)
        if all(np.array_equal(a[i : i + 4096], b[i : i + 4096]) for i in range(0, a.shape[0], 4096)):
            del found["lm_head.weight"]
            return cfg
    print(
        "warning: config.json ties the output head but lm_head.weight differs from "
        "model.embed_tokens.weight; keeping the stored head untied, as transformers does",
        file=sys.stderr,
    )
    return dataclasses.replace(cfg, text=dataclasses.replace(cfg.text, tie_word_embeddings=False))


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


def convert_phi4(
    hf_dir: Path, out: Path, hf: dict[str, Any], dtype: str, overwrite: bool, merge_lora: bool = True
) -> Path:
    """Converts a Phi-4-Multimodal directory (either layout; see the module docstring)."""
    cfg = phi4_config_from_hf(hf)
    fe = Phi4FeatureConfig.from_dir(hf_dir)  # refuses, by field, a front end hr_jax does not implement
    if fe is not None and fe.feature_size != cfg.audio.input_size:
        raise ConversionError(
            f"preprocessor_config.json feature_size={fe.feature_size} but the audio encoder takes "
            f"input_size={cfg.audio.input_size}"
        )
    with atomic_dir(out, overwrite) as tmp:
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
        cfg = _tie_head(cfg, found, files)
        _check(cfg, found, lora)
        merged = "not merged (--no-lora)" if lora is None else f"merged from {lora.source}"
        save_leaves(
            _leaves(cfg, found, lora, DTYPES[dtype], files),
            cfg,
            tmp,
            dtype=dtype,
            source=f"{hf_dir}; speech LoRA {merged}",
        )
        (tmp / HF_CONFIG_FILE).write_text(json.dumps(hf, indent=2) + "\n")
        for name in AUX_FILES:
            if (hf_dir / name).is_file():
                shutil.copyfile(hf_dir / name, tmp / name)
    print(
        f"skipped {skipped} vision tensors and {lora_skipped} LoRA tensors not merged; speech LoRA {merged}",
        file=sys.stderr,
    )
    return out


# ------------------------------------------------------------------------------------------------
# The way back: hr_jax parameters -> transformers' native layout (the benchmark's transformers side)

_INVERSE: dict[Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], np.ndarray]] = {
    _linear: lambda x: x.T,
    _conv2d: lambda x: x.transpose(3, 2, 0, 1),
    _pointwise: lambda x: x.T[:, :, None],
    _pointwise2d: lambda x: x.T[:, :, None, None],
    _depthwise1d: lambda x: x.T[:, None, :],
    _squeeze: lambda x: x.reshape(1, -1, 1),
    _plain: lambda x: x,
}


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
            x = _INVERSE[layout](leaves[leaf] if i is None else leaves[leaf][i])
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
