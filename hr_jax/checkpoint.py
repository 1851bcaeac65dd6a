"""hr_jax checkpoints: orbax parameters + config, and the Hugging Face <-> ThinkerParams key map.

A converted checkpoint directory holds
  params/<leaf>/          one orbax (StandardCheckpointHandler) checkpoint per `ThinkerParams` leaf
  hr_jax_config.json      `ThinkerConfig.to_dict()` plus "dtype", "source" and "format"
  hf_config.json          the source `config.json` (kept for `export_hf`), when converted from HF
  tokenizer / chat template / preprocessor / generation_config files copied from the source.

`HF_KEY_MAP` is the single table mapping Hugging Face tensor names (thinker-only naming, as written
by `save_pretrained` and the released checkpoints without their `thinker.` prefix) to parameter
leaves; `convert.hf_to_jax` reads through it and `export_hf` writes through it.
"""

from __future__ import annotations

import ctypes
import dataclasses
import json
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from models.config import ThinkerConfig
from models.params import ThinkerParams, thinker_shapes

FORMAT = "hr_jax-thinker-v2"  # params/<leaf>/: one orbax checkpoint per leaf
FORMAT_V1 = "hr_jax-thinker-v1"  # params/: one orbax checkpoint of the whole tree (still read)
CONFIG_FILE = "hr_jax_config.json"
PARAMS_DIR = "params"
HF_CONFIG_FILE = "hf_config.json"

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


def _is_shape(x: object) -> bool:
    return isinstance(x, tuple) and all(isinstance(i, int) for i in x)


def _path_name(path) -> str:
    return ".".join(getattr(k, "name", None) or str(getattr(k, "key", k)) for k in path)


def leaf_shapes(cfg: ThinkerConfig) -> dict[str, tuple[int, ...]]:
    """{leaf name ("audio.layers.q_w", "embed", ...): shape} of the parameters for `cfg`."""
    flat, _ = jax.tree_util.tree_flatten_with_path(thinker_shapes(cfg), is_leaf=_is_shape)
    return {_path_name(p): s for p, s in flat}


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


def params_from_leaves(cfg: ThinkerConfig, leaves: dict[str, Any]) -> ThinkerParams:
    """Builds ThinkerParams from {leaf name: array}."""
    flat, treedef = jax.tree_util.tree_flatten_with_path(thinker_shapes(cfg), is_leaf=_is_shape)
    return jax.tree_util.tree_unflatten(treedef, [leaves[_path_name(p)] for p, _ in flat])


def iter_leaves(params: ThinkerParams) -> Iterator[tuple[str, Any]]:
    flat, _ = jax.tree_util.tree_flatten_with_path(params)
    for p, x in flat:
        yield _path_name(p), x


# --------------------------------------------------------------------------------------------------
# orbax save / load
#
# Format v2 keeps one orbax checkpoint per parameter leaf, `params/<leaf name>/`, so that a writer holds
# one leaf at a time (orbax copies what it saves: a whole-model save needs twice the model in memory)
# and a reader restores each leaf straight into its target dtype and sharding. Format v1, one orbax
# checkpoint of the whole tree, is still read.


_CHUNK_BYTES = 32 << 20  # tensorstore chunk size of a saved leaf


class NotAConvertedCheckpoint(FileNotFoundError):
    pass


def _check_leaf(name: str, x: Any, want: dict[str, tuple[int, ...]]) -> None:
    if name not in want:
        raise ValueError(f"param {name} is not a parameter of this config")
    if tuple(x.shape) != want[name]:
        raise ValueError(f"param {name}: shape {tuple(x.shape)}, config expects {want[name]}")


def save_leaves(
    leaves: Iterable[tuple[str, Any]],
    cfg: ThinkerConfig,
    out_dir: str | Path,
    *,
    dtype: str,
    source: str | None = None,
) -> Path:
    """Writes `out_dir/params/<leaf>/` (orbax, one leaf at a time) and `out_dir/hr_jax_config.json`.

    `leaves` yields (leaf name, array) pairs, each array NumPy (incl. ml_dtypes bfloat16) or JAX; it
    may build each array only when asked for it, so at most one leaf needs to be in memory. Every leaf
    of `cfg` must come exactly once with the shape `cfg` implies. `dtype` is recorded; `source` is free
    text (e.g. the HF directory converted from). `out_dir` must not hold a checkpoint already.
    """
    import orbax.checkpoint as ocp

    out = Path(out_dir).absolute()
    out.mkdir(parents=True, exist_ok=True)
    if (out / PARAMS_DIR).exists() or (out / CONFIG_FILE).exists():
        raise FileExistsError(f"{out} already holds an hr_jax checkpoint")
    want = leaf_shapes(cfg)
    done: set[str] = set()
    # Synchronous, so the leaf is freed on return. Without OCDBT and with small chunks: OCDBT buffers a
    # whole leaf's compressed chunks (for random weights, a second copy of the leaf) before writing.
    ckptr = ocp.Checkpointer(ocp.PyTreeCheckpointHandler(use_ocdbt=False))
    save_args = ocp.SaveArgs(chunk_byte_size=_CHUNK_BYTES)
    absl_log = logging.getLogger("absl")
    level = absl_log.level
    absl_log.setLevel(logging.ERROR)  # orbax warns at every non-OCDBT save that it has nothing to merge
    try:
        for name, x in leaves:
            _check_leaf(name, x, want)
            if name in done:
                raise ValueError(f"param {name} given twice")
            ckptr.save(out / PARAMS_DIR / name, args=ocp.args.PyTreeSave(x, save_args=save_args))
            done.add(name)
            del x
    finally:
        absl_log.setLevel(level)
    if done != set(want):
        raise ValueError(f"params do not match the config: missing leaves {sorted(set(want) - done)}")
    meta = {**cfg.to_dict(), "dtype": dtype, "source": source, "format": FORMAT}
    (out / CONFIG_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    return out


def save_params(
    params: ThinkerParams,
    cfg: ThinkerConfig,
    out_dir: str | Path,
    *,
    dtype: str | None = None,
    source: str | None = None,
) -> Path:
    """Writes a `ThinkerParams` pytree as a checkpoint (see `save_leaves`); `dtype` defaults to the
    embedding's."""
    got = dict(iter_leaves(params))
    want = leaf_shapes(cfg)
    if set(got) != set(want):
        raise ValueError(f"params do not match the config: leaves {sorted(set(got) ^ set(want))}")
    dtype = dtype or jnp.dtype(params.embed.dtype).name
    return save_leaves(iter_leaves(params), cfg, out_dir, dtype=dtype, source=source)


def load_config(ckpt_dir: str | Path) -> tuple[ThinkerConfig, dict[str, Any]]:
    """(ThinkerConfig, raw hr_jax_config.json dict) of a converted checkpoint; clear error otherwise."""
    d = Path(ckpt_dir)
    cfg_file = d / CONFIG_FILE
    if not d.is_dir() or not cfg_file.is_file() or not (d / PARAMS_DIR).is_dir():
        hint = ""
        if (d / "config.json").is_file() and (
            any(d.glob("*.safetensors")) or (d / "model.safetensors.index.json").is_file()
        ):
            hint = " It looks like a Hugging Face checkpoint; convert it first:"
        else:
            hint = " Create one with:"
        raise NotAConvertedCheckpoint(
            f"{d} is not a converted hr_jax checkpoint (expected {CONFIG_FILE} and {PARAMS_DIR}/).{hint} "
            f"python -m convert.hf_to_jax --hf-dir HF_DIR --out {d}"
        )
    meta = json.loads(cfg_file.read_text())
    if meta.get("format") not in (FORMAT, FORMAT_V1):
        raise NotAConvertedCheckpoint(
            f"{cfg_file}: unknown format {meta.get('format')!r}, expected {FORMAT!r}"
        )
    return ThinkerConfig.from_dict(meta), meta


def _sharding_tree(shapes: ThinkerParams, sharding) -> Any:
    if sharding is None:
        sharding = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    if isinstance(sharding, jax.sharding.Sharding):
        return jax.tree_util.tree_map(lambda _: sharding, shapes, is_leaf=_is_shape)
    return sharding  # a pytree of shardings matching ThinkerParams


def load_params(
    ckpt_dir: str | Path, dtype: Any = None, sharding: Any = None
) -> tuple[ThinkerConfig, ThinkerParams]:
    """Restores a converted checkpoint onto the default backend (or `sharding`).

    `dtype`: cast every leaf (e.g. jnp.float32 for CPU parity tests); default: the stored dtype.
    `sharding`: None (first default device), one `jax.sharding.Sharding` for every leaf, or a
    ThinkerParams-shaped pytree of shardings. The restore is driven entirely by target
    shapes/dtypes/shardings built from the config, never by device info stored in the checkpoint, and
    goes leaf by leaf straight into the target dtype and devices (peak host memory: about one leaf
    beyond the restored parameters).
    """
    import orbax.checkpoint as ocp

    cfg, meta = load_config(ckpt_dir)
    path = Path(ckpt_dir).absolute() / PARAMS_DIR
    dtype = jnp.dtype(dtype if dtype is not None else meta["dtype"])
    shapes = thinker_shapes(cfg)
    shardings = _sharding_tree(shapes, sharding)
    target = jax.tree_util.tree_map(
        lambda s, sh: jax.ShapeDtypeStruct(s, dtype, sharding=sh), shapes, shardings, is_leaf=_is_shape
    )
    want = leaf_shapes(cfg)
    ckptr = ocp.Checkpointer(ocp.StandardCheckpointHandler())
    if meta["format"] == FORMAT_V1:
        _check_stored(dict(_walk(ckptr.metadata(path).item_metadata.tree, "")), want, path)
        return cfg, ckptr.restore(path, args=ocp.args.StandardRestore(target))
    stored = {p.name: p for p in path.iterdir() if p.is_dir()}
    _check_stored(
        {k: tuple(ckptr.metadata(p).item_metadata.tree.shape) for k, p in stored.items()}, want, path
    )
    leaves = {}
    for name, t in iter_leaves(target):
        leaves[name] = ckptr.restore(stored[name], args=ocp.args.StandardRestore(t))
        _release_freed_memory()  # tensorstore's read buffers, before the next leaf's
    return cfg, params_from_leaves(cfg, leaves)


def _release_freed_memory() -> None:
    """Hands memory freed by the allocator back to the OS (glibc keeps large freed blocks otherwise)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to do
        pass


def _walk(node: Any, prefix: str) -> Iterator[tuple[str, tuple[int, ...]]]:
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _walk(v, f"{prefix}.{k}" if prefix else k)
    elif node is not None:
        yield prefix, tuple(node.shape)


def _check_stored(got: dict[str, tuple[int, ...]], want: dict[str, tuple[int, ...]], path: Path) -> None:
    if set(got) != set(want):
        raise ValueError(
            f"{path}: stored leaves do not match hr_jax_config.json (extra {sorted(set(got) - set(want))}, "
            f"missing {sorted(set(want) - set(got))})"
        )
    for k, s in want.items():
        if got[k] != s:
            raise ValueError(f"{path}: stored {k} has shape {got[k]}, config expects {s}")


# --------------------------------------------------------------------------------------------------
# export to Hugging Face


def default_mrope_section(head_dim: int) -> list[int]:
    """(temporal, height, width) split of the head_dim/2 rotary frequencies, [16, 24, 24] for 128."""
    half = head_dim // 2
    t = half // 4
    h = (half - t) // 2
    return [t, h, half - t - h]


_PLACEHOLDER_VISION = {
    # hr_jax has no vision tower; a tiny placeholder keeps transformers from allocating the default
    # ~670M-parameter random one when it loads an exported thinker.
    "depth": 1, "hidden_size": 16, "intermediate_size": 32, "num_heads": 2, "fullatt_block_indexes": [0],
    "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2, "window_size": 112,
}  # fmt: skip


def hf_config_dict(cfg: ThinkerConfig, base: dict[str, Any] | None = None, dtype: str = "float32") -> dict:
    """A thinker-only HF `config.json` for `cfg`, starting from `base` (HF thinker or full-Omni config)."""
    base = json.loads(json.dumps(base or {}))
    base = base.get("thinker_config", base)
    a, t = cfg.audio, cfg.text
    audio = base.setdefault("audio_config", {})
    audio.update(
        num_mel_bins=a.num_mel_bins, d_model=a.d_model, encoder_layers=a.encoder_layers,
        encoder_attention_heads=a.encoder_attention_heads, encoder_ffn_dim=a.encoder_ffn_dim,
        n_window=a.n_window, output_dim=a.output_dim, max_source_positions=a.max_source_positions,
    )  # fmt: skip
    audio.setdefault("model_type", "qwen2_5_omni_audio_encoder")
    text = base.setdefault("text_config", {})
    text.update(
        vocab_size=t.vocab_size, hidden_size=t.hidden_size, intermediate_size=t.intermediate_size,
        num_hidden_layers=t.num_hidden_layers, num_attention_heads=t.num_attention_heads,
        num_key_value_heads=t.num_key_value_heads, head_dim=t.head_dim, rms_norm_eps=t.rms_norm_eps,
        max_position_embeddings=t.max_position_embeddings, tie_word_embeddings=t.tie_word_embeddings,
    )  # fmt: skip
    text.setdefault("model_type", "qwen2_5_omni_text")
    text.setdefault("hidden_act", "silu")
    text.setdefault("use_sliding_window", False)
    text.pop("layer_types", None)
    if isinstance(text.get("rope_parameters"), dict):
        text["rope_parameters"]["rope_theta"] = t.rope_theta
    else:  # the released checkpoints' (legacy) spelling, read by every transformers version
        half, sec = t.head_dim // 2, default_mrope_section(t.head_dim)
        text["rope_theta"] = t.rope_theta
        text.setdefault("rope_scaling", {"mrope_section": sec, "rope_type": "default", "type": "default"})
        if text["rope_scaling"].get("mrope_section") and sum(text["rope_scaling"]["mrope_section"]) != half:
            text["rope_scaling"]["mrope_section"] = sec
    base.setdefault("vision_config", dict(_PLACEHOLDER_VISION, out_hidden_size=t.hidden_size))
    base.update(
        architectures=["Qwen2_5OmniThinkerForConditionalGeneration"],
        model_type="qwen2_5_omni_thinker",
        audio_token_index=cfg.audio_token_id,
        audio_start_token_id=cfg.audio_start_token_id,
        audio_end_token_id=cfg.audio_end_token_id,
        tie_word_embeddings=t.tie_word_embeddings,
        torch_dtype=dtype,
    )
    base.pop("dtype", None)
    return base


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
