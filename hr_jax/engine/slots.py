"""Decode slots: the device half of continuous batching (`hr_jax.serving`'s scheduler drives it).

A fixed number of rows ("slots") decode together, one program per (slot count, cache capacity). A
request's prefill (`run_prefill`, pruned as it asked) is written into a free slot (`insert_rows`)
while the other slots keep their state; `decode_slots` then advances every slot a few tokens. Each
slot has its own fill length, position, sampling settings and PRNG stream, so what a slot generates
does not depend on what the others hold: a greedy slot yields `generate`'s tokens.

Shapes: `B` slots; the caches are `PrunedKVCache`s of `SlotKVCache` groups (layers < M, layers >= M)
with their own capacities.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from flax import struct

from hr_jax.engine.core import DecodeWeights, PrefillState, decode_step
from hr_jax.engine.sampling import row_keys, sample_rows
from hr_jax.sharding import CacheSharding
from models.family import ModelConfig, ModelParams
from models.kv_cache import PrunedKVCache, SlotKVCache


@struct.dataclass
class SlotState:
    """Every slot's decode state: the caches; last `[B]` the token to feed next and positions `[B]` its
    original position; count `[B]` tokens chosen so far; temperature, top_p `[B]` and seed `[B]`
    (each slot's sampling). A free slot holds stale values: its tokens are ignored."""

    cache: PrunedKVCache
    last: jax.Array
    positions: jax.Array
    count: jax.Array
    temperature: jax.Array
    top_p: jax.Array
    seed: jax.Array

    @property
    def num_slots(self) -> int:
        return self.last.shape[0]

    @property
    def capacities(self) -> tuple[int, int]:
        """(lower, upper) cache slots per row."""
        return self.cache.lower.capacity, self.cache.upper.capacity


def _constrain(cache: PrunedKVCache, sharding: CacheSharding | None) -> PrunedKVCache:
    if sharding is None:
        return cache

    def one(c: SlotKVCache) -> SlotKVCache:
        wsc = jax.lax.with_sharding_constraint
        return c.replace(k=wsc(c.k, sharding.kv), v=wsc(c.v, sharding.kv), valid=wsc(c.valid, sharding.rows))

    return PrunedKVCache(lower=one(cache.lower), upper=one(cache.upper))


@functools.partial(
    jax.jit, static_argnames=("cfg", "slots", "prune_layer", "capacities", "dtype", "sharding")
)
def empty_slots(
    cfg: ModelConfig,
    slots: int,
    prune_layer: int,
    capacities: tuple[int, int],
    dtype: jnp.dtype,
    sharding: CacheSharding | None = None,
) -> SlotState:
    """`slots` free slots, their caches split at layer `prune_layer`, of `capacities` (lower, upper)."""
    text = cfg.text
    shape = (text.num_key_value_heads, text.head_dim)

    def group(layers: int, capacity: int) -> SlotKVCache:
        return SlotKVCache.empty(layers, slots, shape[0], capacity, shape[1], dtype)

    cache = PrunedKVCache(
        lower=group(prune_layer, capacities[0]),
        upper=group(text.num_hidden_layers - prune_layer, capacities[1]),
    )
    zeros = jnp.zeros((slots,), jnp.int32)
    return SlotState(
        cache=_constrain(cache, sharding),
        last=zeros,
        positions=zeros,
        count=zeros,
        temperature=jnp.zeros((slots,), jnp.float32),
        top_p=jnp.ones((slots,), jnp.float32),
        seed=zeros,
    )


@functools.partial(jax.jit, static_argnames=("capacities", "sharding"), donate_argnames=("state",))
def grow_slots(
    state: SlotState, capacities: tuple[int, int], sharding: CacheSharding | None = None
) -> SlotState:
    """The same slots with larger caches (`capacities` >= the current ones), the new room empty."""
    cache = PrunedKVCache(
        lower=state.cache.lower.grown(capacities[0]), upper=state.cache.upper.grown(capacities[1])
    )
    return state.replace(cache=_constrain(cache, sharding))


@jax.jit
def first_tokens(logits: jax.Array, temperature: jax.Array, top_p: jax.Array, seed: jax.Array) -> jax.Array:
    """Each prefilled row's first token `[n]` from its logits `[n, V]` (draw 0 of its own stream)."""
    return sample_rows(logits, row_keys(seed, jnp.zeros_like(seed)), temperature, top_p)


@functools.partial(jax.jit, static_argnames=("sharding",), donate_argnames=("state",))
def insert_rows(
    state: SlotState,
    prefill: PrefillState,
    first: jax.Array,
    slots: jax.Array,
    temperature: jax.Array,
    top_p: jax.Array,
    seed: jax.Array,
    sharding: CacheSharding | None = None,
) -> SlotState:
    """Rows `0..n-1` of a prefill (its caches, next positions) written into slots `slots [n]`, with
    their first tokens `first [n]` and sampling settings `[n]`. The prefill's caches may hold more
    rows (padding to the mesh's data axis); they are not read."""
    cache = state.cache
    for r in range(slots.shape[0]):  # n is static and small: one update per admitted request
        cache = PrunedKVCache(
            lower=cache.lower.insert(slots[r], prefill.cache.lower, r),
            upper=cache.upper.insert(slots[r], prefill.cache.upper, r),
        )
    n = slots.shape[0]
    return state.replace(
        cache=_constrain(cache, sharding),
        last=state.last.at[slots].set(first),
        positions=state.positions.at[slots].set(prefill.next_pos[:n]),
        count=state.count.at[slots].set(1),
        temperature=state.temperature.at[slots].set(temperature),
        top_p=state.top_p.at[slots].set(top_p),
        seed=state.seed.at[slots].set(seed),
    )


def _first_rows(state: SlotState, n: int) -> SlotState:
    cache = PrunedKVCache(lower=state.cache.lower.first_rows(n), upper=state.cache.upper.first_rows(n))
    rows = {f: getattr(state, f)[:n] for f in ("last", "positions", "count", "temperature", "top_p", "seed")}
    return state.replace(cache=cache, **rows)


def _with_first_rows(state: SlotState, rows: SlotState) -> SlotState:
    cache = PrunedKVCache(
        lower=state.cache.lower.with_first_rows(rows.cache.lower),
        upper=state.cache.upper.with_first_rows(rows.cache.upper),
    )
    put = jax.lax.dynamic_update_slice_in_dim
    fields = ("last", "positions", "count", "temperature", "top_p", "seed")
    return state.replace(
        cache=cache, **{f: put(getattr(state, f), getattr(rows, f), 0, axis=0) for f in fields}
    )


@functools.partial(jax.jit, static_argnames=("cfg", "steps", "rows", "sharding"), donate_argnames=("state",))
def decode_slots(
    params: ModelParams,
    cfg: ModelConfig,
    state: SlotState,
    weights: DecodeWeights,
    steps: int,
    rows: int | None = None,
    sharding: CacheSharding | None = None,
) -> tuple[SlotState, jax.Array]:
    """`steps` decode steps of the first `rows` slots (None: all): feeds each slot's last token and
    chooses its next. Returns the state and the chosen tokens `[rows, steps]`. The server keeps its
    requests in the lowest slots and passes the power of two that covers them, so a lightly loaded
    server decodes a few rows, not all of them (one program per such row count). `weights`:
    `decode_weights_core(params, cfg, M, B)`, laid out once."""
    full = state
    if rows is not None and rows < state.num_slots:
        state = _first_rows(state, rows)

    def body(i: int, carry: tuple[SlotState, jax.Array]) -> tuple[SlotState, jax.Array]:
        s, tokens = carry
        logits, cache = decode_step(params, cfg, s.last, s.positions, s.cache, weights, independent_rows=True)
        tok = sample_rows(logits, row_keys(s.seed, s.count), s.temperature, s.top_p)
        cache = _constrain(cache, sharding)
        s = s.replace(cache=cache, last=tok, positions=s.positions + 1, count=s.count + 1)
        return s, tokens.at[:, i].set(tok)

    tokens = jnp.zeros((state.num_slots, steps), jnp.int32)
    state, tokens = jax.lax.fori_loop(0, steps, body, (state, tokens))
    if state.num_slots < full.num_slots:
        state = _with_first_rows(full, state)
    return state, tokens
