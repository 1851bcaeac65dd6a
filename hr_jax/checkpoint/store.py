"""hr_jax's own checkpoint format on disk: orbax parameters, one checkpoint per leaf, and the config.

A converted checkpoint directory holds
  params/<leaf>/          one orbax (PyTreeCheckpointHandler) checkpoint per parameter leaf
  hr_jax_config.json      the config's `to_dict()` plus "family" (`models.family`; absent: Qwen2.5-Omni),
                          "dtype", "source" and "format"
  hf_config.json          the source `config.json` (kept for `export_hf`), when converted from HF
  tokenizer / chat template / preprocessor / generation_config files copied from the source.
"""

from __future__ import annotations

import ctypes
import json
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp

from models.family import DEFAULT_FAMILY, ModelConfig, ModelParams, get_family
from models.params import is_shape, iter_leaves, leaf_shapes, params_from_leaves, thinker_shapes

FORMAT = "hr_jax-thinker-v2"  # params/<leaf>/: one orbax checkpoint per leaf
FORMAT_V1 = "hr_jax-thinker-v1"  # params/: one orbax checkpoint of the whole tree (still read)
CONFIG_FILE = "hr_jax_config.json"
PARAMS_DIR = "params"
HF_CONFIG_FILE = "hf_config.json"

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
    cfg: ModelConfig,
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
    meta = {**cfg.to_dict(), "family": cfg.family, "dtype": dtype, "source": source, "format": FORMAT}
    (out / CONFIG_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    return out


def save_params(
    params: ModelParams,
    cfg: ModelConfig,
    out_dir: str | Path,
    *,
    dtype: str | None = None,
    source: str | None = None,
) -> Path:
    """Writes a `ModelParams` pytree as a checkpoint (see `save_leaves`); `dtype` defaults to the
    embedding's."""
    got = dict(iter_leaves(params))
    want = leaf_shapes(cfg)
    if set(got) != set(want):
        raise ValueError(f"params do not match the config: leaves {sorted(set(got) ^ set(want))}")
    dtype = dtype or jnp.dtype(params.embed.dtype).name
    return save_leaves(iter_leaves(params), cfg, out_dir, dtype=dtype, source=source)


def load_config(ckpt_dir: str | Path) -> tuple[ModelConfig, dict[str, Any]]:
    """(config, raw hr_jax_config.json dict) of a converted checkpoint; clear error otherwise."""
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
    return get_family(meta.get("family", DEFAULT_FAMILY)).config_from_dict(meta), meta


def _sharding_tree(shapes: ModelParams, sharding) -> Any:
    if sharding is None:
        sharding = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    if isinstance(sharding, jax.sharding.Sharding):
        return jax.tree_util.tree_map(lambda _: sharding, shapes, is_leaf=is_shape)
    return sharding  # a pytree of shardings matching ModelParams


def load_params(
    ckpt_dir: str | Path, dtype: Any = None, sharding: Any = None
) -> tuple[ModelConfig, ModelParams]:
    """Restores a converted checkpoint onto the default backend (or `sharding`).

    `dtype`: cast every leaf (e.g. jnp.float32 for CPU parity tests); default: the stored dtype.
    `sharding`: None (first default device), one `jax.sharding.Sharding` for every leaf, or a
    parameter-shaped pytree of shardings. The restore is driven entirely by target
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
        lambda s, sh: jax.ShapeDtypeStruct(s, dtype, sharding=sh), shapes, shardings, is_leaf=is_shape
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
