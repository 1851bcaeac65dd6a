"""The jitted core: prefill (with the pruning step before layer M) and the decode loop, as pure
functions of parameters and device arrays.

Layers < M run over the whole sequence and fill the lower KV cache; `hr_jax.pruning.select_tokens`
keeps the top-k audio tokens of each row (and every non-audio token, in original order, with
original positions); layers >= M run over, and cache, only those. Decoding appends to both caches
and never re-prunes. Compiled programs are keyed by the static `PrefillKey` (see `hr_jax.engine.planning`).
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from hr_jax.engine.planning import PrefillInputs, PrefillKey
from hr_jax.engine.sampling import sample_tokens
from hr_jax.pruning import LayerView, RouterArrays, Selection, select_tokens
from hr_jax.pruning.slots import take_rows
from hr_jax.sharding import CacheSharding
from models.decoder import (
    decode_layers,
    prefill_layers,
    rms_norm,
    rope_tables,
    unstack_layers,
)
from models.family import ModelConfig, ModelParams, family_of
from models.kv_cache import KVCache, PrunedKVCache
from models.language_model import forward_from_embeds, lm_logits, positions_from_mask


@struct.dataclass
class PrefillState:
    """Output of the jitted prefill (device arrays): logits `[B, V]` at each row's last real token,
    the two-level KV cache, next_pos `[B]` (original position of the next token) and the selection
    (kept positions, counts, routing)."""

    logits: jax.Array
    cache: PrunedKVCache
    next_pos: jax.Array
    selection: Selection


@struct.dataclass
class DecodeState:
    """The decode loop's carry: step `[]` (tokens chosen so far), the last token chosen `[B]`, the
    caches, original position of that token `[B]`, tokens so far `[B, max_new]`, rows done `[B]`,
    tokens per row `[B]`."""

    step: jax.Array
    last: jax.Array
    cache: PrunedKVCache
    positions: jax.Array
    tokens: jax.Array
    done: jax.Array
    count: jax.Array


# ----------------------------------------------------------------------------------------------
# Prefill


def unpruned_selection(is_audio: jax.Array, valid: jax.Array, num_heads: int) -> Selection:
    """The `Selection` of an unpruned prefill: every real token survives."""
    bsz, seq = valid.shape
    num_audio = is_audio.sum(1).astype(jnp.int32)
    return Selection(
        kept=jnp.where(valid, jnp.arange(seq, dtype=jnp.int32)[None], -1),
        num_audio=num_audio,
        kept_audio=num_audio,
        spread=jnp.zeros((bsz,), jnp.float32),
        alpha=jnp.zeros((bsz, 3), jnp.float32),
        selectivity=jnp.zeros((bsz, num_heads), jnp.float32),
    )


def prefill_from_embeds(
    params: ModelParams,
    cfg: ModelConfig,
    plan: PrefillKey,
    h: jax.Array,
    input_ids: jax.Array,
    attention_mask: jax.Array,
    keep_k: jax.Array,
    router: RouterArrays,
    key: jax.Array,
) -> PrefillState:
    """The decoder half of `prefill_core` (everything after the audio encoder) on the input
    embeddings `h [B, L, D]`, audio tokens already spliced in. `prefill_embeds_core` is its jitted
    form (the benchmarks time the LLM prefill alone with it)."""
    text = cfg.text
    valid = attention_mask.astype(bool)
    pos = positions_from_mask(attention_mask)
    is_audio = (input_ids == cfg.audio_token_id) & valid
    m = plan.prune_layer

    if plan.selection is None:
        h, k_lo, v_lo = prefill_layers(h, params.layers, text, pos, valid, 0, m, attention=plan.attention)
        selection = unpruned_selection(is_audio, valid, text.num_attention_heads)
        up_pos, up_valid = pos, valid
    else:
        # Layers < M in one scan that also hands back layer M−1's input (the probe's).
        h, k_lo, v_lo, h_in = prefill_layers(
            h, params.layers, text, pos, valid, 0, m, return_last_input=True, attention=plan.attention
        )
        view = LayerView(
            weights=jax.tree.map(lambda w: w[m - 1], params.layers),
            h_in=h_in,
            h_out=h,
            keys=k_lo[m - 1],
            final_norm=params.norm,
        )
        selection = select_tokens(plan.selection, text, view, is_audio, valid, pos, keep_k, router, key)
        h = take_rows(h, selection.kept)
        up_pos, up_valid = take_rows(pos, selection.kept), selection.kept >= 0

    h, k_up, v_up = prefill_layers(
        h, params.layers, text, up_pos, up_valid, m, text.num_hidden_layers, attention=plan.attention
    )
    last = up_valid.shape[1] - 1 - jnp.argmax(up_valid[:, ::-1], axis=1)
    cache = PrunedKVCache(
        lower=KVCache.from_prefill(k_lo, v_lo, valid, plan.cache_extra),
        upper=KVCache.from_prefill(k_up, v_up, up_valid, plan.cache_extra),
    )
    if plan.cache_sharding is not None:
        cache = constrain_cache(cache, plan.cache_sharding)
    return PrefillState(
        logits=lm_logits(params, cfg, h[jnp.arange(h.shape[0]), last]),
        cache=cache,
        next_pos=valid.sum(1).astype(jnp.int32),
        selection=selection,
    )


def constrain_cache(cache: PrunedKVCache, sharding: CacheSharding) -> PrunedKVCache:
    """Both caches laid out as `sharding` says: rows on "data", KV heads on "model"."""

    def one(c: KVCache) -> KVCache:
        wsc = jax.lax.with_sharding_constraint
        return c.replace(k=wsc(c.k, sharding.kv), v=wsc(c.v, sharding.kv), valid=wsc(c.valid, sharding.rows))

    return PrunedKVCache(lower=one(cache.lower), upper=one(cache.upper))


@functools.partial(jax.jit, static_argnames=("cfg", "plan"))
def prefill_core(
    params: ModelParams,
    cfg: ModelConfig,
    plan: PrefillKey,
    inputs: PrefillInputs,
    router: RouterArrays,
    key: jax.Array,
) -> PrefillState:
    """Jitted prefill of the bucket-padded batch `inputs` (see `PrefillInputs` for the shapes)."""
    x = inputs
    h = family_of(cfg).embed_inputs(params, cfg, x.input_ids, x.input_features, x.feature_attention_mask)
    return prefill_from_embeds(params, cfg, plan, h, x.input_ids, x.attention_mask, x.keep_k, router, key)


prefill_embeds_core = jax.jit(prefill_from_embeds, static_argnames=("cfg", "plan"))


@functools.partial(jax.jit, static_argnames=("cfg", "attention"))
def forward_core(
    params: ModelParams,
    cfg: ModelConfig,
    input_ids: jax.Array,
    attention_mask: jax.Array,
    input_features: jax.Array,
    feature_attention_mask: jax.Array,
    attention: str = "streaming",
) -> jax.Array:
    """Unpruned logits at every position `[B, L, V]` (float32; parity checks), for any family;
    `attention`: a concrete kernel of `models.attention`."""
    h = family_of(cfg).embed_inputs(params, cfg, input_ids, input_features, feature_attention_mask)
    return forward_from_embeds(params, cfg, h, attention_mask, attention)


# ----------------------------------------------------------------------------------------------
# Decode


def _slice_layers(params: ModelParams, start: int, stop: int) -> Any:
    return jax.tree.map(lambda x: x[start:stop], params.layers)


WEIGHT_MAJOR_MIN_ROWS = 2  # from this batch size decode's matrices are stored [out, in]


@struct.dataclass
class DecodeWeights:
    """Decode's weights, laid out once per loop (outside it): the two cache groups' layers (layers < M,
    layers >= M) in a layout of `models.decoder.resolve_decode_layout`, and the LM head `[D, V]`.

    weight_major: the matrices are stored `[out, in]` (the head `[V, D]`) and applied with
    `models.decoder.matmul_weight_major`: chosen for batches of `WEIGHT_MAJOR_MIN_ROWS` rows or more,
    where XLA:CPU's GEMM would otherwise repack every `[in, out]` weight at every step."""

    lower: Any
    upper: Any
    head: jax.Array
    weight_major: bool = struct.field(pytree_node=False, default=False)


def decode_weights(
    params: ModelParams, cfg: ModelConfig, prune_layer: int, batch_size: int = 1, layout: str = "unrolled"
) -> DecodeWeights:
    """The weights a decode loop of `batch_size` rows reads (see `DecodeWeights`). Call it once per
    loop, outside the loop; for a weight-major layout, outside the loop's program
    (`decode_weights_core`): inside it, XLA turns the transposes into layout changes and the loop's
    GEMMs read the `[in, out]` storage after all. `layout`: `models.decoder.resolve_decode_layout`'s."""
    n = cfg.text.num_hidden_layers
    head = params.embed.T if params.lm_head is None else params.lm_head
    if layout == "scan":
        return DecodeWeights(
            _slice_layers(params, 0, prune_layer), _slice_layers(params, prune_layer, n), head
        )
    major = batch_size >= WEIGHT_MAJOR_MIN_ROWS
    return DecodeWeights(
        lower=unstack_layers(params.layers, 0, prune_layer, major),
        upper=unstack_layers(params.layers, prune_layer, n, major),
        head=head.T if major else head,
        weight_major=major,
    )


def decode_step(
    params: ModelParams,
    cfg: ModelConfig,
    tok: jax.Array,
    positions: jax.Array,
    cache: PrunedKVCache,
    weights: DecodeWeights | None = None,
    independent_rows: bool = False,
) -> tuple[jax.Array, PrunedKVCache]:
    """Feeds tokens `[B]` at original positions `[B]`, appending them to both caches. Returns the
    next-token logits `[B, V]` (float32) and the caches. `weights`: `decode_weights(...)`, hoisted out
    of a loop by the caller. `independent_rows`: the rows are separate requests (a server's slots), so
    LongRoPE's factors follow each row's own position, not the batch's largest."""
    text = cfg.text
    w = decode_weights(params, cfg, cache.prune_layer, tok.shape[0]) if weights is None else weights
    h = params.embed[tok][:, None]
    cos, sin = rope_tables(positions[:, None], text, per_row=independent_rows)
    h, lower = decode_layers(h, w.lower, text, cache.lower, cos, sin, w.weight_major)
    h, upper = decode_layers(h, w.upper, text, cache.upper, cos, sin, w.weight_major)
    x = rms_norm(h[:, 0], params.norm, text.rms_norm_eps)
    if w.weight_major:  # as `lm_logits`, float32 out
        logits = jax.lax.optimization_barrier(
            jnp.einsum("vd,bd->vb", w.head, x, preferred_element_type=jnp.float32)
        ).T
    else:
        logits = jnp.einsum("bd,dv->bv", x, w.head, preferred_element_type=jnp.float32)
    return logits, PrunedKVCache(lower=lower, upper=upper)


decode_weights_core = jax.jit(decode_weights, static_argnames=("cfg", "prune_layer", "batch_size", "layout"))


def run_decode(
    params: ModelParams,
    cfg: ModelConfig,
    state: PrefillState,
    key: jax.Array,
    layout: str = "unrolled",
    **sampling: Any,
) -> tuple[jax.Array, jax.Array]:
    """The decode loop (`decode_core`, donating `state`) with its weights laid out by their own program
    first (`decode_weights_core`, in `layout`). `sampling`: `decode_core`'s keyword arguments."""
    weights = decode_weights_core(params, cfg, state.cache.prune_layer, state.logits.shape[0], layout)
    return decode_core(params, cfg, state, key, weights, **sampling)


@functools.partial(
    jax.jit,
    static_argnames=("cfg", "max_new", "temperature", "top_p", "stop_ids", "pad_id"),
    donate_argnames=("state",),
)
def decode_core(
    params: ModelParams,
    cfg: ModelConfig,
    state: PrefillState,
    key: jax.Array,
    weights: DecodeWeights,
    *,
    max_new: int,
    temperature: float,
    top_p: float,
    stop_ids: tuple[int, ...],
    pad_id: int,
) -> tuple[jax.Array, jax.Array]:
    """One compiled decode loop (`lax.while_loop`) over both caches; the prefill state is donated.
    `weights`: `decode_weights_core(params, cfg, prune_layer, B)` (`run_decode` calls both).

    Returns tokens `[B, max_new]` (pad after a row stops) and `[B]` generated counts (including the
    stop token). Both caches need `max_new - 1` free slots.
    """
    bsz = state.logits.shape[0]
    stops = jnp.asarray(stop_ids, jnp.int32)

    def choose(s: DecodeState, logits: jax.Array) -> DecodeState:
        """Samples step `s.step`'s token from `logits [B, V]` and records it."""
        tok = sample_tokens(logits, jax.random.fold_in(key, s.step), temperature, top_p)
        tok = jnp.where(s.done, pad_id, tok)
        return s.replace(
            step=s.step + 1,
            last=tok,
            tokens=s.tokens.at[:, s.step].set(tok),
            count=s.count + (~s.done).astype(jnp.int32),
            done=s.done | jnp.isin(tok, stops),
        )

    def cond(s: DecodeState) -> jax.Array:
        return (s.step < max_new) & ~jnp.all(s.done)

    # Each iteration feeds the last token and chooses the next, so the forward pass is never behind
    # a `lax.cond`: a conditional that carries the caches makes XLA copy each group's whole cache at
    # every layer's write (measured: 16 cache-sized copies per step at batch 4).
    def body(s: DecodeState) -> DecodeState:
        logits, cache = decode_step(params, cfg, s.last, s.positions, s.cache, weights)
        return choose(s.replace(cache=cache, positions=s.positions + 1), logits)

    init = DecodeState(
        step=jnp.int32(0),
        last=jnp.full((bsz,), pad_id, jnp.int32),
        cache=state.cache,
        positions=state.next_pos,
        tokens=jnp.full((bsz, max_new), pad_id, jnp.int32),
        done=jnp.zeros((bsz,), bool),
        count=jnp.zeros((bsz,), jnp.int32),
    )
    init = choose(init, state.logits)  # the first token, from the prefill's logits
    final = jax.lax.while_loop(cond, body, init)
    return final.tokens, final.count
