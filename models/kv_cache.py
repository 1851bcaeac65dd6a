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

    k: `[layers, B, Hkv, S, hd]` (RoPE applied), v: `[layers, B, Hkv, hd, S]`; valid: `[B, S]` slots
    holding a real token; length: `[]` int32, slots written so far (the next token goes to slot
    `length`).

    The layouts are decode attention's: per (row, KV head), scores are `K [S, hd] @ q` and outputs
    `Vᵀ [hd, S] @ p`, each contracting its operand's minor axis, so XLA:CPU reads the cache in place
    (with slots before heads it transposed a layer's whole cache at every step).
    """

    k: jax.Array
    v: jax.Array
    valid: jax.Array
    length: jax.Array

    @classmethod
    def from_prefill(cls, k: jax.Array, v: jax.Array, valid: jax.Array, free_slots: int) -> KVCache:
        """A cache holding prefill keys/values `[layers, B, L, Hkv, hd]` (`valid [B, L]`, laid out as
        the class says) and `free_slots` empty slots after them for decoding."""
        pad = ((0, 0), (0, 0), (0, 0), (0, free_slots), (0, 0))
        return cls(
            k=jnp.pad(k.swapaxes(2, 3), pad),
            v=jnp.pad(v.transpose(0, 1, 3, 4, 2), ((0, 0), (0, 0), (0, 0), (0, 0), (0, free_slots))),
            valid=jnp.pad(valid, ((0, 0), (0, free_slots))),
            length=jnp.int32(valid.shape[1]),
        )

    @property
    def capacity(self) -> int:
        return self.valid.shape[1]

    def layer(self, i: jax.Array | int) -> tuple[jax.Array, jax.Array]:
        """Layer `i`'s keys `[B, Hkv, S, hd]` and values `[B, Hkv, hd, S]`."""
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
            v=jax.lax.dynamic_update_slice(
                self.v, v.transpose(0, 2, 3, 1)[None].astype(self.v.dtype), (layer, 0, 0, 0, slot)
            ),
        )


@struct.dataclass
class PrunedKVCache:
    """The caches of a pruned prefill: layers < M over every prompt token, layers >= M over the
    kept tokens only. Decoding appends each new token to both (and never re-prunes). A server's decode
    slots hold a `SlotKVCache` in each group instead."""

    lower: KVCache | SlotKVCache
    upper: KVCache | SlotKVCache

    @property
    def prune_layer(self) -> int:
        return self.lower.num_layers


@struct.dataclass
class SlotKVCache:
    """A `KVCache` whose rows are independent decode slots (a server's): each row has its own fill
    length, so a request's prefill can be written into a free row while the others keep decoding.

    k: `[layers, B, Hkv, S, hd]`, v: `[layers, B, Hkv, hd, S]`, valid: `[B, S]` (as `KVCache`);
    length: `[B]` int32, slots written in each row. `decode_layers` reads and writes it as it does a
    `KVCache` (`append`, `write`, `layer`, `valid`); a row that reaches the capacity stops writing
    (its writes are dropped: the server frees it before then).
    """

    k: jax.Array
    v: jax.Array
    valid: jax.Array
    length: jax.Array

    @classmethod
    def empty(cls, layers: int, rows: int, kv_heads: int, capacity: int, head_dim: int, dtype) -> SlotKVCache:
        return cls(
            k=jnp.zeros((layers, rows, kv_heads, capacity, head_dim), dtype),
            v=jnp.zeros((layers, rows, kv_heads, head_dim, capacity), dtype),
            valid=jnp.zeros((rows, capacity), bool),
            length=jnp.zeros((rows,), jnp.int32),
        )

    @property
    def capacity(self) -> int:
        return self.valid.shape[1]

    @property
    def num_layers(self) -> int:
        return self.k.shape[0]

    def layer(self, i: jax.Array | int) -> tuple[jax.Array, jax.Array]:
        return self.k[i], self.v[i]

    def append(self) -> tuple[SlotKVCache, jax.Array]:
        """Opens slot `length[b]` of every row b; returns the cache and those slots `[B]`."""
        rows = jnp.arange(self.valid.shape[0])
        slot = self.length
        valid = self.valid.at[rows, slot].set(True, mode="drop")
        return self.replace(valid=valid, length=jnp.minimum(slot + 1, self.capacity)), slot

    def write(self, layer: jax.Array | int, slot: jax.Array, k: jax.Array, v: jax.Array) -> SlotKVCache:
        """Stores each row's new k, v `[B, 1, Hkv, hd]` of layer `layer` at its own slot `slot [B]`."""
        rows = jnp.arange(self.valid.shape[0])
        return self.replace(
            k=self.k.at[layer, rows, :, slot, :].set(k[:, 0].astype(self.k.dtype), mode="drop"),
            v=self.v.at[layer, rows, :, :, slot].set(v[:, 0].astype(self.v.dtype), mode="drop"),
        )

    def insert(self, row: jax.Array, cache: KVCache, source_row: jax.Array) -> SlotKVCache:
        """Row `row` replaced by row `source_row` of a prefill's `cache` (its written slots, at the
        start; the rest of the row emptied). `cache`'s capacity must not exceed this one's."""
        n = cache.capacity
        k = jax.lax.dynamic_slice_in_dim(cache.k, source_row, 1, axis=1)
        v = jax.lax.dynamic_slice_in_dim(cache.v, source_row, 1, axis=1)
        valid = jax.lax.dynamic_slice_in_dim(cache.valid, source_row, 1, axis=0)
        valid = jnp.pad(valid, ((0, 0), (0, self.capacity - n)))
        return self.replace(
            k=jax.lax.dynamic_update_slice(self.k, k.astype(self.k.dtype), (0, row, 0, 0, 0)),
            v=jax.lax.dynamic_update_slice(self.v, v.astype(self.v.dtype), (0, row, 0, 0, 0)),
            valid=jax.lax.dynamic_update_slice(self.valid, valid, (row, 0)),
            length=self.length.at[row].set(cache.length),
        )

    def first_rows(self, n: int) -> SlotKVCache:
        """Rows `[0, n)` (a copy)."""
        return self.replace(k=self.k[:, :n], v=self.v[:, :n], valid=self.valid[:n], length=self.length[:n])

    def with_first_rows(self, rows: SlotKVCache) -> SlotKVCache:
        """This cache with rows `[0, n)` replaced by `rows` (`n` rows)."""
        put = jax.lax.dynamic_update_slice_in_dim
        return self.replace(
            k=put(self.k, rows.k, 0, axis=1),
            v=put(self.v, rows.v, 0, axis=1),
            valid=put(self.valid, rows.valid, 0, axis=0),
            length=put(self.length, rows.length, 0, axis=0),
        )

    def grown(self, capacity: int) -> SlotKVCache:
        """The same rows with `capacity` slots (>= the current one), the new slots empty."""
        extra = capacity - self.capacity
        return self.replace(
            k=jnp.pad(self.k, ((0, 0), (0, 0), (0, 0), (0, extra), (0, 0))),
            v=jnp.pad(self.v, ((0, 0), (0, 0), (0, 0), (0, 0), (0, extra))),
            valid=jnp.pad(self.valid, ((0, 0), (0, extra))),
        )
