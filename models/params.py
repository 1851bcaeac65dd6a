"""Weight declarations (`ArrayInfo`), the decoder's parameters both families share, and what is read
from any family's declaration.

Every container is a `flax.struct.dataclass`, so the arrays are pytree leaves. Linear weights are
stored `[in, out]` (the transpose of PyTorch's `[out, in]`); conv kernels `[kernel, in, out]`.
Per-layer weights are stacked on a leading `[layers]` axis so the layer loop is a `lax.scan`.

`param_info(cfg)` is the one declaration of every weight: a `ThinkerParams` whose leaves are
`ArrayInfo` (shape, logical axes, initialiser). Random initialisation (`init_params`), restore
targets (`abstract_params`), the checkpoint key map's shapes and sharding specs over a device mesh
(`partition_specs`) are all read from it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct
from jax.sharding import PartitionSpec

from models.config import TextConfig

Initializer = Callable[[jax.Array, tuple[int, ...], jnp.dtype], jax.Array]

WEIGHT_STD = 0.02  # std of random matrices (benchmarks, tests, training from scratch)
normal = jax.nn.initializers.normal(WEIGHT_STD)
ones = jax.nn.initializers.ones
zeros = jax.nn.initializers.zeros


@dataclasses.dataclass(frozen=True)
class ArrayInfo:
    """One weight: its shape, a logical name per axis (for sharding rules) and its initialiser."""

    shape: tuple[int, ...]
    logical_axes: tuple[str, ...]
    init: Initializer = normal

    def __post_init__(self) -> None:
        if len(self.shape) != len(self.logical_axes):
            raise ValueError(f"shape {self.shape} and logical axes {self.logical_axes} differ in rank")


@struct.dataclass
class DecoderLayerParams:
    """One (stacked: leading `[layers]`) Qwen2 decoder layer; D = hidden, F = intermediate."""

    attn_norm: jax.Array  # [D]
    q_w: jax.Array  # [D, Hq * hd]
    q_b: jax.Array | None  # [Hq * hd]; None without attention biases (Phi-3)
    k_w: jax.Array  # [D, Hkv * hd]
    k_b: jax.Array | None  # [Hkv * hd]
    v_w: jax.Array  # [D, Hkv * hd]
    v_b: jax.Array | None  # [Hkv * hd]
    o_w: jax.Array  # [Hq * hd, D]
    mlp_norm: jax.Array  # [D]
    gate_w: jax.Array  # [D, F]
    up_w: jax.Array  # [D, F]
    down_w: jax.Array  # [F, D]


# ------------------------------------------------------------------------------------------------
# The declaration


def decoder_layer_info(c: TextConfig) -> DecoderLayerParams:
    """`ArrayInfo` of the stacked decoder-layer weights."""
    n, d, f = c.num_hidden_layers, c.hidden_size, c.intermediate_size
    q, kv = c.num_attention_heads * c.head_dim, c.num_key_value_heads * c.head_dim

    def stacked(shape: tuple[int, ...], axes: tuple[str, ...], init: Initializer = normal) -> ArrayInfo:
        return ArrayInfo((n, *shape), ("layers", *axes), init)

    def bias(size: int, axis: str) -> ArrayInfo | None:
        return stacked((size,), (axis,), zeros) if c.attention_bias else None

    return DecoderLayerParams(
        attn_norm=stacked((d,), ("embed",), ones),
        q_w=stacked((d, q), ("embed", "q_heads")), q_b=bias(q, "q_heads"),
        k_w=stacked((d, kv), ("embed", "kv_heads")), k_b=bias(kv, "kv_heads"),
        v_w=stacked((d, kv), ("embed", "kv_heads")), v_b=bias(kv, "kv_heads"),
        o_w=stacked((q, d), ("q_heads", "embed")),
        mlp_norm=stacked((d,), ("embed",), ones),
        gate_w=stacked((d, f), ("embed", "mlp")), up_w=stacked((d, f), ("embed", "mlp")),
        down_w=stacked((f, d), ("mlp", "embed")),
    )  # fmt: skip


# ------------------------------------------------------------------------------------------------
# Everything else is read from the declaration


def thinker_shapes(cfg) -> Any:
    """The family's parameter pytree (`ThinkerParams` for Qwen) whose leaves are the expected shape
    tuples (see `is_shape`)."""
    from models.family import family_of

    return jax.tree.map(lambda i: i.shape, family_of(cfg).param_info(cfg))


def is_shape(x: object) -> bool:
    """Whether `x` is a shape tuple (the leaves of `thinker_shapes`)."""
    return isinstance(x, tuple) and all(isinstance(i, int) for i in x)


def leaf_name(path: Any) -> str:
    """A pytree path as a dotted leaf name ("audio.layers.q_w", "embed")."""
    return ".".join(getattr(k, "name", None) or str(getattr(k, "key", k)) for k in path)


def leaf_shapes(cfg: Any) -> dict[str, tuple[int, ...]]:
    """{leaf name: shape} of any family's parameters for `cfg`."""
    flat, _ = jax.tree_util.tree_flatten_with_path(thinker_shapes(cfg), is_leaf=is_shape)
    return {leaf_name(p): s for p, s in flat}


def params_from_leaves(cfg: Any, leaves: Mapping[str, Any]) -> Any:
    """The family's parameter pytree for `cfg` from {leaf name: array}."""
    flat, treedef = jax.tree_util.tree_flatten_with_path(thinker_shapes(cfg), is_leaf=is_shape)
    return jax.tree_util.tree_unflatten(treedef, [leaves[leaf_name(p)] for p, _ in flat])


def iter_leaves(params: Any) -> Iterator[tuple[str, Any]]:
    """(leaf name, array) of a parameter pytree, in its flattening order."""
    flat, _ = jax.tree_util.tree_flatten_with_path(params)
    for p, x in flat:
        yield leaf_name(p), x


def init_params(cfg, key: jax.Array, dtype: jnp.dtype = jnp.float32) -> Any:
    """Random parameters of any family's config from each weight's initialiser (normal std 0.02;
    norms at 1, biases at 0)."""
    from models.family import family_of

    info = family_of(cfg).param_info(cfg)
    leaves, treedef = jax.tree.flatten(info)
    keys = jax.random.split(key, len(leaves))
    out = [i.init(k, i.shape, jnp.float32).astype(dtype) for i, k in zip(leaves, keys, strict=True)]
    return jax.tree.unflatten(treedef, out)


def abstract_params(cfg, dtype: jnp.dtype, shardings: object = None) -> Any:
    """`jax.ShapeDtypeStruct` leaves (restore targets, AOT compilation). `shardings`: None, one
    `Sharding` for every leaf, or a ThinkerParams-shaped pytree of them."""
    from models.family import family_of

    info = family_of(cfg).param_info(cfg)
    if shardings is None or isinstance(shardings, jax.sharding.Sharding):
        return jax.tree.map(lambda i: jax.ShapeDtypeStruct(i.shape, dtype, sharding=shardings), info)
    return jax.tree.map(lambda i, s: jax.ShapeDtypeStruct(i.shape, dtype, sharding=s), info, shardings)


def partition_specs(cfg: Any, rules: Mapping[str, str | None]) -> Any:
    """A `PartitionSpec` per weight from logical-axis rules, e.g. `{"mlp": "model", "q_heads": "model"}`
    (axes without a rule are replicated)."""
    from models.family import family_of

    info = family_of(cfg).param_info(cfg)
    return jax.tree.map(lambda i: PartitionSpec(*(rules.get(a) for a in i.logical_axes)), info)
