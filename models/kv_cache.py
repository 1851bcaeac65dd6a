"""The KV cache: one group of layers (`KVCache`) and the two-level form pruning needs (`PrunedKVCache`).

A cache has a static capacity `S` and its own fill length: slots `[0, length)` are written, in time
order, and decoding appends at slot `length`. Rows share the fill length (prompts are left-padded
to one length, pruned rows gathered to one length); `valid` marks which written slots hold a real
token of that row.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct


@struct.dataclass
class KVCache:
    """Keys/values of a contiguous group of layers.

    k, v: `[layers, B, Hkv, S, hd]` (RoPE already applied to k); valid: `[B, S]` slots holding a
    real token; length: `[]` int32, slots written so far (the next token goes to slot `length`).

    Heads before slots: a decode step's attention contracts each (row, KV head)'s `[S, hd]` block,
    and with the heads major that block is contiguous, so XLA reads the cache in place instead of
    transposing a layer's whole cache at every step.
    """

    k: jax.Array
    v: jax.Array
    valid: jax.Array
    length: jax.Array

    @classmethod
    def from_prefill(cls, k: jax.Array, v: jax.Array, valid: jax.Array, free_slots: int) -> KVCache:
        """A cache holding prefill keys/values `[layers, B, L, Hkv, hd]` (`valid [B, L]`) and
        `free_slots` empty slots after them for decoding."""
        pad = ((0, 0), (0, 0), (0, 0), (0, free_slots), (0, 0))
        return cls(
            k=jnp.pad(k.swapaxes(2, 3), pad),
            v=jnp.pad(v.swapaxes(2, 3), pad),
            valid=jnp.pad(valid, ((0, 0), (0, free_slots))),
            length=jnp.int32(valid.shape[1]),
        )

    @property
    def capacity(self) -> int:
        return self.valid.shape[1]

    def layer(self, i: jax.Array | int) -> tuple[jax.Array, jax.Array]:
        """Layer `i`'s keys and values, `[B, Hkv, S, hd]` each."""
        return self.k[i], self.v[i]

    @property
    def num_layers(self) -> int:
        return self.k.shape[0]

    def append(self) -> tuple[KVCache, jax.Array]:
        """Opens slot `length` for one new token in every row; returns the cache and that slot.
        The caller then `write`s each layer's k/v there."""
        slot = self.length
        rows = jnp.ones((self.valid.shape[0], 1), bool)
        valid = jax.lax.dynamic_update_slice(self.valid, rows, (0, slot))
        return self.replace(valid=valid, length=slot + 1), slot

    def write(self, layer: jax.Array | int, slot: jax.Array, k: jax.Array, v: jax.Array) -> KVCache:
        """Stores one token's k, v `[B, 1, Hkv, hd]` of layer `layer` (index within the group) at `slot`."""
        at = (layer, 0, 0, slot, 0)
        return self.replace(
            k=jax.lax.dynamic_update_slice(self.k, k.swapaxes(1, 2)[None].astype(self.k.dtype), at),
            v=jax.lax.dynamic_update_slice(self.v, v.swapaxes(1, 2)[None].astype(self.v.dtype), at),
        )


@struct.dataclass
class PrunedKVCache:
    """The caches of a pruned prefill: layers < M over every prompt token, layers >= M over the
    kept tokens only. Decoding appends each new token to both (and never re-prunes)."""

    lower: KVCache
    upper: KVCache

    @property
    def prune_layer(self) -> int:
        return self.lower.num_layers
