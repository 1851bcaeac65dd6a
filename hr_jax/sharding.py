"""Device meshes, and where every weight, input and cache lives on them.

A mesh has two axes: `"data"` (rows of a batch) and `"model"` (tensor parallelism). Every weight is
declared once with logical axes (each family's `param_info`, `models.family`); `LOGICAL_AXIS_RULES`
maps those to mesh axes, so query heads, KV heads and MLP are column-parallel in their in-projections
and row-parallel in their out-projections (the same logical axis is the output of one weight and the
input of the next), the embedding and output head are sharded over the vocabulary, and the audio
encoder's heads and MLP likewise. XLA's SPMD partitioner inserts the collectives.

A dimension the model axis does not divide (in whole heads for head axes: the released 3B model's two
KV heads on 4-way TP) is replicated for that weight and reported once, never an error.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from models.family import ModelConfig, ModelParams, family_of
from models.params import ArrayInfo

DATA, MODEL = "data", "model"

# The shared decoder's logical axes (models.params) -> mesh axis; each family adds its encoder's
# (`ModelFamily.sharded_axes`); axes not listed are replicated.
LOGICAL_AXIS_RULES: dict[str, str] = {"q_heads": MODEL, "kv_heads": MODEL, "mlp": MODEL, "vocab": MODEL}


class ReplicatedAxisWarning(UserWarning):
    """A logical axis that the model axis does not divide is replicated instead of sharded."""


def make_mesh(model: int = 1, devices: Sequence[Any] | None = None) -> Mesh:
    """A `("data", "model")` mesh over `devices` (default: this process's local devices), `model`-way
    tensor parallel and `len(devices) / model`-way data parallel."""
    devs = list(devices) if devices is not None else list(jax.local_devices())
    if model < 1 or len(devs) % model:
        raise ValueError(f"model parallelism {model} does not divide the {len(devs)} devices")
    return Mesh(np.array(devs).reshape(len(devs) // model, model), (DATA, MODEL))


def axis_size(mesh: Mesh | None, axis: str) -> int:
    """Devices along `axis` of `mesh` (1 when the mesh is None or has no such axis)."""
    return 1 if mesh is None else int(dict(mesh.shape).get(axis, 1))


def axis_rules(cfg: ModelConfig) -> dict[str, str]:
    """Logical axis -> mesh axis for `cfg`'s family: the decoder's rules and its encoder's axes."""
    return {**LOGICAL_AXIS_RULES, **{a: MODEL for a in family_of(cfg).sharded_axes(cfg)}}


def _head_units(cfg: ModelConfig) -> dict[str, int]:
    """Indivisible units of the head axes: a head is never split across devices."""
    family = {a: n for a, n in family_of(cfg).sharded_axes(cfg).items() if n is not None}
    return {"q_heads": cfg.text.num_attention_heads, "kv_heads": cfg.text.num_key_value_heads, **family}


@dataclasses.dataclass(frozen=True)
class Replicated:
    """A logical axis replicated although a rule shards it: `units` (heads or elements) on `ways` devices."""

    axis: str
    units: int
    ways: int


def _spec(
    info: ArrayInfo, mesh: Mesh, rules: dict[str, str], units: dict[str, int], replicated: set[Replicated]
) -> PartitionSpec:
    out = []
    for name, size in zip(info.logical_axes, info.shape, strict=True):
        target = rules.get(name)
        ways = axis_size(mesh, target) if target else 1
        if ways == 1:
            out.append(None)
            continue
        n = units.get(name, size)
        if n % ways:
            replicated.add(Replicated(name, n, ways))
            out.append(None)
        else:
            out.append(target)
    return PartitionSpec(*out)


def param_specs(cfg: ModelConfig, mesh: Mesh) -> tuple[ModelParams, frozenset[Replicated]]:
    """A `PartitionSpec` per weight on `mesh`, and the sharded axes that had to be replicated."""
    rules, units, replicated = axis_rules(cfg), _head_units(cfg), set()
    specs = jax.tree.map(lambda i: _spec(i, mesh, rules, units, replicated), family_of(cfg).param_info(cfg))
    return specs, frozenset(replicated)


def param_shardings(cfg: ModelConfig, mesh: Mesh) -> ModelParams:
    """A `NamedSharding` per weight on `mesh` (`param_specs`); replicated axes are reported once."""
    specs, replicated = param_specs(cfg, mesh)
    for r in sorted(replicated, key=lambda r: r.axis):
        warnings.warn(
            f"{r.axis}: {r.units} do not divide over {r.ways} model-parallel devices; those weights are "
            "replicated",
            ReplicatedAxisWarning,
            stacklevel=2,
        )
    return jax.tree.map(lambda s: NamedSharding(mesh, s), specs)


def shard_params(params: ModelParams, cfg: ModelConfig, mesh: Mesh) -> ModelParams:
    """`params` placed on `mesh` by the rules (a no-op for leaves already there)."""
    return jax.device_put(params, param_shardings(cfg, mesh))


@dataclasses.dataclass(frozen=True)
class CacheSharding:
    """Where a KV cache lives: k/v `[layers, B, Hkv, S, hd]` over rows on "data" and KV heads on "model"
    (replicated when the model axis does not divide them); `valid [B, S]` over rows."""

    kv: NamedSharding
    rows: NamedSharding

    @classmethod
    def for_mesh(cls, mesh: Mesh, num_kv_heads: int) -> CacheSharding:
        divides = MODEL in mesh.axis_names and num_kv_heads % axis_size(mesh, MODEL) == 0
        heads = MODEL if divides else None  # a data-only mesh (the older API) has no model axis
        data = DATA if DATA in mesh.axis_names else None
        return cls(
            kv=NamedSharding(mesh, PartitionSpec(None, data, heads, None, None)),
            rows=NamedSharding(mesh, PartitionSpec(data, None)),
        )


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Inputs `[B, ...]` split over rows on "data", replicated over "model"."""
    return NamedSharding(mesh, PartitionSpec(DATA if DATA in mesh.axis_names else None))


def pad_rows(arrays: Sequence[np.ndarray], multiple: int) -> list[np.ndarray]:
    """Host arrays `[B, ...]` padded to a multiple of `multiple` rows by repeating the last row (so a
    batch the data axis does not divide still splits evenly; callers drop the padded rows)."""
    rows = arrays[0].shape[0]
    extra = -rows % multiple
    if not extra:
        return list(arrays)
    return [np.concatenate([a, np.repeat(a[-1:], extra, axis=0)]) for a in arrays]
