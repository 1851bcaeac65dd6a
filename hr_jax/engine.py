"""Prefill, decode and generate: two jitted pure functions plus a thin host-side API.

Pruning happens once, in prefill, before decoder layer M: layers < M run over the whole sequence
and keep a full KV cache; a shape-static selection step keeps the top-k audio tokens of each row
(plus every non-audio token, in original order, with original positions) and layers >= M run
over, and cache, only those. Decoding appends to both caches and never re-prunes.

Compiled programs are keyed by the static `Plan` and the bucketed shapes (see `hr_jax.buckets`).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
import warnings
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from hr_jax import buckets
from hr_jax.batch import AudioInput, Batch, make_batch
from hr_jax.methods import PRUNING_METHODS
from hr_jax.model import Model
from hr_jax.prompt import DEFAULT_PROMPT, DEFAULT_SYSTEM_PROMPT
from hr_jax.sampling import sample_tokens
from hr_jax.selection import ROUTE_MODES, RouterArrays, SelectionInputs, select_audio, take_rows
from models.config import ThinkerConfig
from models.decoder import (
    KVCache,
    alloc_cache,
    decode_layers,
    decode_layout,
    prefill_layers,
    rope_tables,
    unstack_layers,
)
from models.params import ThinkerParams
from models.thinker import embed_inputs, lm_logits, positions_from_mask
from models.thinker import forward as thinker_forward

DEFAULT_PRUNE_LAYER = 2
METHODS = PRUNING_METHODS  # every method but the unpruned one (hr_jax.methods)


@dataclasses.dataclass(frozen=True)
class Plan:
    """Everything static about one prefill: the method and the bucketed shapes."""

    method: str  # "none" (unpruned) or one of METHODS
    ratio: float
    prune_layer: int
    audio_cap: int  # audio-token slots per row
    text_cap: int  # text-after-audio slots per row (HeadRouter probe queries)
    keep_len: int  # sequence slots after pruning (L')
    keep_cap: int  # max kept audio tokens per row: floor(audio_cap * (1 - ratio))
    cache_extra: int  # free cache slots for decoding
    prefilter: float | None  # HeadRouter frame pre-filter λ; None disables


@struct.dataclass
class PrefillState:
    """Output of the jitted prefill (device arrays).

    logits `[B, V]` at each row's last real token; lower/upper: KV caches of layers < M and >= M;
    next_pos `[B]` original position of the next token; kept_positions `[B, L']` (-1 = unused);
    spread `[B]`, alpha `[B, 3]`, selectivity `[B, Hq]` (HeadRouter; zeros otherwise);
    num_audio, kept_audio `[B]`.
    """

    logits: jax.Array
    lower: KVCache
    upper: KVCache
    next_pos: jax.Array
    kept_positions: jax.Array
    spread: jax.Array
    alpha: jax.Array
    selectivity: jax.Array
    num_audio: jax.Array
    kept_audio: jax.Array


@dataclasses.dataclass(frozen=True)
class Prefill:
    """Host view of a prefill: logits `[B, V]` at the last real token of each row,
    kept_positions `[B, L']` (indices into the row of `batch.input_ids`, ascending, -1 unused),
    spread `[B]`, alpha `[B, 3]` (semantic, uniform, acoustic) and per-head selectivity `[B, Hq]`
    for HeadRouter methods, else None."""

    logits: np.ndarray
    kept_positions: np.ndarray
    spread: np.ndarray | None
    alpha: np.ndarray | None
    selectivity: np.ndarray | None
    num_audio: np.ndarray
    kept_audio: np.ndarray


@dataclasses.dataclass(frozen=True)
class GenerateOutput:
    texts: list[str]
    token_ids: list[list[int]]
    num_generated: np.ndarray
    num_audio: np.ndarray
    kept_audio: np.ndarray
    kept_positions: np.ndarray
    alpha: np.ndarray | None
    spread: np.ndarray | None
    prefill_s: float
    decode_s: float


# ----------------------------------------------------------------------------------------------
# Jitted core


def _split_layers(params: ThinkerParams, start: int, stop: int):
    return jax.tree.map(lambda x: x[start:stop], params.layers)


def _first_true(mask: jax.Array, size: int) -> tuple[jax.Array, jax.Array]:
    """Indices of the first `size` True entries of each row (ascending; -1 past the count) and counts."""
    order = jnp.argsort(~mask, axis=1, stable=True)[:, :size].astype(jnp.int32)
    count = mask.sum(axis=1).astype(jnp.int32)
    return jnp.where(jnp.arange(size)[None] < count[:, None], order, -1), count


def selection_slots(is_audio: jax.Array, valid: jax.Array, plan: Plan) -> tuple[jax.Array, ...]:
    """Where the selection step reads, from `is_audio`/`valid` `[B, L]`: the audio slots `[B, audio_cap]`
    and the probe's text slots (real tokens after the audio span) `[B, text_cap]`, both -1 past their
    count, and each row's last real slot `[B]`."""
    seq = valid.shape[1]
    audio_pos, _ = _first_true(is_audio, plan.audio_cap)
    last_audio = jnp.max(jnp.where(is_audio, jnp.arange(seq)[None], -1), axis=1)
    is_text = valid & ~is_audio & (jnp.arange(seq)[None] > last_audio[:, None])
    text_pos, _ = _first_true(is_text, plan.text_cap)
    last_real = seq - 1 - jnp.argmax(valid[:, ::-1], axis=1)
    return audio_pos, text_pos, last_real


@functools.partial(jax.jit, static_argnames=("cfg", "plan"))
def prefill_core(
    params: ThinkerParams,
    cfg: ThinkerConfig,
    plan: Plan,
    input_ids: jax.Array,
    attention_mask: jax.Array,
    input_features: jax.Array,
    feature_attention_mask: jax.Array,
    keep_k: jax.Array,
    router: RouterArrays,
    key: jax.Array,
) -> PrefillState:
    """Jitted prefill. Shapes: input_ids/attention_mask `[B, L]`, input_features `[B, mel, T]`,
    feature_attention_mask `[B, T]`, keep_k `[B]` audio tokens to keep per row."""
    h = embed_inputs(params, cfg, input_ids, input_features, feature_attention_mask)
    return prefill_from_embeds(params, cfg, plan, h, input_ids, attention_mask, keep_k, router, key)


def prefill_from_embeds(
    params: ThinkerParams,
    cfg: ThinkerConfig,
    plan: Plan,
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
    bsz, seq = input_ids.shape
    valid = attention_mask.astype(bool)
    pos = positions_from_mask(attention_mask)
    is_audio = (input_ids == cfg.audio_token_id) & valid
    num_audio = is_audio.sum(1).astype(jnp.int32)
    m = plan.prune_layer
    zeros_b = jnp.zeros((bsz,), jnp.float32)
    spread, alpha = zeros_b, jnp.zeros((bsz, 3), jnp.float32)
    sel = jnp.zeros((bsz, text.num_attention_heads), jnp.float32)

    if plan.method == "none":
        h, k_lo, v_lo = prefill_layers(h, params.layers, text, pos, valid, 0, m)
        up_idx = jnp.where(valid, jnp.arange(seq, dtype=jnp.int32)[None], -1)
        up_pos, up_valid, kept_audio = pos, valid, num_audio
    else:
        # Layers < M in one scan that also hands back layer M−1's input (the probe's).
        h, k_lo, v_lo, h_in = prefill_layers(h, params.layers, text, pos, valid, 0, m, return_last_input=True)
        x_probe = jax.tree.map(lambda w: w[m - 1], params.layers)
        audio_pos, text_pos, last_real = selection_slots(is_audio, valid, plan)
        cos, sin = rope_tables(pos, text.head_dim, text.rope_theta)
        inputs = SelectionInputs(
            layer=x_probe,
            h_in=h_in,
            h_out=h,
            keys_rope=k_lo[m - 1],
            final_norm=params.norm,
            cos=cos,
            sin=sin,
            valid=valid,
            audio_pos=audio_pos,
            num_audio=num_audio,
            text_pos=text_pos,
            last_real=last_real,
            keep_k=keep_k,
        )
        keep_audio, spread, alpha, sel = select_audio(inputs, text, plan, router, key)
        keep_seq = (
            jnp.zeros((bsz, seq), bool)
            .at[jnp.arange(bsz)[:, None], jnp.maximum(audio_pos, 0)]
            .max(keep_audio & (audio_pos >= 0))
        )
        keep_seq = valid & (~is_audio | keep_seq)
        up_idx, _ = _first_true(keep_seq, plan.keep_len)
        h = take_rows(h, up_idx)
        up_pos, up_valid = take_rows(pos, up_idx), up_idx >= 0
        kept_audio = (keep_seq & is_audio).sum(1).astype(jnp.int32)

    h, k_up, v_up = prefill_layers(h, params.layers, text, up_pos, up_valid, m, text.num_hidden_layers)
    up_len = up_valid.shape[1]
    last = up_len - 1 - jnp.argmax(up_valid[:, ::-1], axis=1)
    logits = lm_logits(params, cfg, h[jnp.arange(bsz), last])
    return PrefillState(
        logits=logits,
        lower=alloc_cache(k_lo, v_lo, valid, plan.cache_extra),
        upper=alloc_cache(k_up, v_up, up_valid, plan.cache_extra),
        next_pos=valid.sum(1).astype(jnp.int32),
        kept_positions=up_idx,
        spread=spread,
        alpha=alpha,
        selectivity=sel,
        num_audio=num_audio,
        kept_audio=kept_audio,
    )


def decode_weights(params: ThinkerParams, cfg: ThinkerConfig, prune_layer: int) -> tuple[Any, Any]:
    """The layer weights of decode's two cache groups (layers < M, layers >= M), in the layout of
    `models.decoder.decode_layout`. Call it once per decode loop, outside the loop."""
    n = cfg.text.num_hidden_layers
    if decode_layout() == "scan":
        return _split_layers(params, 0, prune_layer), _split_layers(params, prune_layer, n)
    return unstack_layers(params.layers, 0, prune_layer), unstack_layers(params.layers, prune_layer, n)


def decode_step(
    params: ThinkerParams,
    cfg: ThinkerConfig,
    prune_layer: int,
    pos: jax.Array,
    tok: jax.Array,
    lower: KVCache,
    upper: KVCache,
    lo_slot: jax.Array,
    up_slot: jax.Array,
    weights: tuple[Any, Any] | None = None,
) -> tuple[jax.Array, KVCache, KVCache]:
    """Feeds tokens `[B]` at original positions `pos` `[B]`; their k/v go to cache slots `lo_slot`
    (layers < M) and `up_slot` (layers >= M). Returns next-token logits `[B, V]` and the caches.
    `weights`: `decode_weights(params, cfg, prune_layer)`, hoisted out of a loop by the caller."""
    text = cfg.text
    lower_w, upper_w = decode_weights(params, cfg, prune_layer) if weights is None else weights
    h = params.embed[tok][:, None]
    cos, sin = rope_tables(pos[:, None], text.head_dim, text.rope_theta)
    h, lower = decode_layers(h, lower_w, text, lower, lo_slot, cos, sin)
    h, upper = decode_layers(h, upper_w, text, upper, up_slot, cos, sin)
    return lm_logits(params, cfg, h[:, 0]), lower, upper


prefill_embeds_core = jax.jit(prefill_from_embeds, static_argnames=("cfg", "plan"))


@functools.partial(
    jax.jit,
    static_argnames=("cfg", "prune_layer", "lo_len", "up_len", "max_new", "temperature", "top_p", "stop_ids",
                     "pad_id"),
    donate_argnames=("state",),
)  # fmt: skip
def decode_core(
    params: ThinkerParams,
    cfg: ThinkerConfig,
    state: PrefillState,
    key: jax.Array,
    *,
    prune_layer: int,
    lo_len: int,
    up_len: int,
    max_new: int,
    temperature: float,
    top_p: float,
    stop_ids: tuple[int, ...],
    pad_id: int,
) -> tuple[jax.Array, jax.Array]:
    """One compiled decode loop (`lax.while_loop`) over both caches; the prefill state is donated.

    Returns tokens `[B, max_new]` (pad after a row stops) and `[B]` generated counts (including the
    stop token). `lo_len`/`up_len` are the prefill lengths of the two caches; both caches need
    `max_new` free slots after them.
    """
    bsz = state.logits.shape[0]
    lo_off, up_off = lo_len, up_len
    stops = jnp.asarray(stop_ids, jnp.int32)

    def step(t, logits, lower, upper, tokens, done, count):
        tok = sample_tokens(logits, jax.random.fold_in(key, t), temperature, top_p)
        tok = jnp.where(done, pad_id, tok)
        tokens = tokens.at[:, t].set(tok)
        count = count + (~done).astype(jnp.int32)
        done = done | jnp.isin(tok, stops)
        return tok, tokens, done, count

    weights = decode_weights(params, cfg, prune_layer)  # loop-invariant: split once, not per step

    def advance(tok, t, lower, upper):
        return decode_step(
            params, cfg, prune_layer, state.next_pos + t, tok, lower, upper, lo_off + t, up_off + t, weights
        )

    def cond(carry):
        t, _, _, _, _, done, _ = carry
        return (t < max_new) & ~jnp.all(done)

    def body(carry):
        t, logits, lower, upper, tokens, done, count = carry
        tok, tokens, done, count = step(t, logits, lower, upper, tokens, done, count)
        go_on = (t + 1 < max_new) & ~jnp.all(done)
        logits, lower, upper = jax.lax.cond(
            go_on, lambda: advance(tok, t, lower, upper), lambda: (logits, lower, upper)
        )
        return t + 1, logits, lower, upper, tokens, done, count

    carry = (
        jnp.int32(0),
        state.logits,
        state.lower,
        state.upper,
        jnp.full((bsz, max_new), pad_id, jnp.int32),
        jnp.zeros((bsz,), bool),
        jnp.zeros((bsz,), jnp.int32),
    )
    _, _, _, _, tokens, _, count = jax.lax.while_loop(cond, body, carry)
    return tokens, count


@functools.partial(jax.jit, static_argnames=("cfg",))
def _forward_jit(params, cfg, input_ids, attention_mask, input_features, feature_attention_mask):
    return thinker_forward(params, cfg, input_ids, attention_mask, input_features, feature_attention_mask)


# ----------------------------------------------------------------------------------------------
# Host side: plans, buckets, device placement


_warned_uniform = False


def resolve_router(model: Model, method: str, router, prune_layer: int | None, warn: bool = True):
    """(Router, prune_layer) for a HeadRouter method; loads paths, defaults to uniform profiles."""
    from hr_jax.router import Router

    global _warned_uniform
    heads = model.config.text.num_attention_heads
    if router is None:
        m = DEFAULT_PRUNE_LAYER if prune_layer is None else prune_layer
        if method in ROUTE_MODES and warn and not _warned_uniform:
            warnings.warn(
                "HeadRouter without a router file: using uniform head profiles. Calibrate one with "
                "`hr-jax calibrate` for real semantic/acoustic profiles.",
                stacklevel=3,
            )
            _warned_uniform = True
        return Router.uniform(model.name or "unknown", m, heads), m
    if not isinstance(router, Router):
        router = Router.load(router)
    if router.num_heads != heads:
        raise ValueError(f"router has {router.num_heads} heads, the model has {heads}")
    return router, router.prune_layer if prune_layer is None else prune_layer


def keep_counts(num_audio: np.ndarray, ratio: float) -> np.ndarray:
    """k = floor(Na · (1 − r)) per row (Eq. 4)."""
    return np.array([math.floor(int(n) * (1.0 - ratio)) for n in num_audio], np.int32)


def check_ratio(ratio: float) -> float:
    ratio = float(ratio)
    if not (0.0 <= ratio < 1.0) or math.isnan(ratio):
        raise ValueError(f"ratio must be in [0, 1), got {ratio}")
    return ratio


def pad_to_buckets(model: Model, batch: Batch) -> Batch:
    """Left-pads tokens to the sequence bucket and trims/pads mel frames to the frame bucket."""
    cfg = model.config
    seq = buckets.round_up(batch.input_ids.shape[1], buckets.SEQ_MULTIPLE)
    pad = seq - batch.input_ids.shape[1]
    ids = np.pad(batch.input_ids, ((0, 0), (pad, 0)), constant_values=model.pad_token_id)
    mask = np.pad(batch.attention_mask, ((0, 0), (pad, 0)))
    frames = buckets.round_up(
        int(batch.feature_attention_mask.sum(1).max()), buckets.frame_multiple(cfg.audio.window_frames)
    )
    feats, fmask = batch.input_features, batch.feature_attention_mask
    if feats.shape[2] >= frames:
        feats, fmask = feats[:, :, :frames], fmask[:, :frames]
    else:
        extra = frames - feats.shape[2]
        feats = np.pad(feats, ((0, 0), (0, 0), (0, extra)))
        fmask = np.pad(fmask, ((0, 0), (0, extra)))
    return Batch(
        ids.astype(np.int32), mask.astype(np.int32), feats.astype(np.float32), fmask.astype(np.int32)
    )


def _check_batch(model: Model, batch: Batch) -> np.ndarray:
    """Validates audio-token counts against the features; returns `[B]` audio tokens per row."""
    from models.config import num_audio_tokens

    valid = batch.attention_mask.astype(bool)
    na = ((batch.input_ids == model.config.audio_token_id) & valid).sum(1)
    expected = np.array(
        [num_audio_tokens(int(f)) if f > 0 else 0 for f in batch.feature_attention_mask.sum(1)]
    )
    if not np.array_equal(na, expected):
        raise ValueError(f"audio tokens per row {na.tolist()} do not match the features' {expected.tolist()}")
    return na


def make_plan(
    model: Model,
    batch: Batch,
    ratio: float,
    method: str,
    prune_layer: int,
    prefilter: float | None,
    cache_extra: int,
) -> tuple[Plan, np.ndarray]:
    """The static plan for a (bucket-padded) batch, and keep counts `[B]`."""
    if method != "none" and method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    ratio = check_ratio(ratio)
    seq = batch.input_ids.shape[1]
    n_layers = model.config.text.num_hidden_layers
    if ratio == 0.0:
        method = "none"
        # Nothing is pruned, so M only splits the caches: any split gives the same numerics, and a
        # model with at most M layers simply keeps every layer below it.
        prune_layer = min(prune_layer, n_layers)
    elif not 1 <= prune_layer < n_layers:
        raise ValueError(f"prune layer must be in [1, {n_layers}), got {prune_layer}")
    na = _check_batch(model, batch)
    keep = keep_counts(na, ratio)
    if method != "none" and np.any((na > 0) & (keep == 0)):
        bad = int(np.flatnonzero((na > 0) & (keep == 0))[0])
        raise ValueError(f"ratio {ratio} leaves no audio token in row {bad} ({na[bad]} audio tokens)")
    valid = batch.attention_mask.astype(bool)
    is_audio = (batch.input_ids == model.config.audio_token_id) & valid
    last_audio = np.where(is_audio.any(1), seq - 1 - np.argmax(is_audio[:, ::-1], axis=1), -1)
    after = valid & ~is_audio & (np.arange(seq)[None] > last_audio[:, None])
    audio_cap = min(seq, buckets.round_up(int(na.max()), buckets.AUDIO_MULTIPLE))
    text_cap = min(seq, buckets.round_up(int(after.sum(1).max()), buckets.TEXT_MULTIPLE))
    non_audio_cap = min(seq, buckets.round_up(int((valid.sum(1) - na).max()), buckets.TEXT_MULTIPLE))
    keep_cap = math.floor(audio_cap * (1.0 - ratio))
    keep_len = seq if method == "none" else min(seq, non_audio_cap + keep_cap)
    plan = Plan(
        method=method,
        ratio=ratio,
        prune_layer=prune_layer,
        audio_cap=audio_cap,
        text_cap=text_cap,
        keep_len=keep_len,
        keep_cap=keep_cap,
        cache_extra=cache_extra,
        prefilter=prefilter,
    )
    return plan, keep


def replicate(params: ThinkerParams, mesh: Mesh) -> ThinkerParams:
    """Parameters on every device of `mesh` (a no-op when they already are)."""
    devices = set(mesh.devices.flat)
    if all(getattr(x, "sharding", None) is not None and x.sharding.device_set == devices
           for x in jax.tree.leaves(params)):  # fmt: skip
        return params
    return jax.device_put(params, NamedSharding(mesh, PartitionSpec()))


def _place(arrays: Sequence[np.ndarray], mesh: Mesh | None) -> list[jax.Array]:
    if mesh is None:
        return [jnp.asarray(a) for a in arrays]
    n = mesh.devices.size
    if arrays[0].shape[0] % n:
        raise ValueError(f"batch of {arrays[0].shape[0]} rows is not a multiple of the mesh's {n} devices")
    sharding = NamedSharding(mesh, PartitionSpec("data"))
    return [jax.device_put(a, sharding) for a in arrays]


def run_prefill(
    model: Model,
    batch: Batch,
    ratio: float,
    method: str,
    router,
    prune_layer: int | None,
    seed: int,
    cache_extra: int,
    mesh: Mesh | None,
) -> tuple[PrefillState, Plan, int]:
    """Returns the device state, the plan and the left-padding added for the bucket."""
    check_ratio(ratio)
    if method == "vanilla":
        if ratio != 0.0:
            raise ValueError(f"method 'vanilla' is the unpruned model; got ratio {ratio}")
        method = "frame"
    router_obj, m = resolve_router(model, method, router, prune_layer, warn=ratio > 0)
    prefilter = router_obj.prefilter_for(method) if method in ROUTE_MODES else None
    padded = pad_to_buckets(model, batch)
    plan, keep = make_plan(model, padded, ratio, method, m, prefilter, cache_extra)
    arrays = _place(
        [padded.input_ids, padded.attention_mask, padded.input_features, padded.feature_attention_mask, keep],
        mesh,
    )
    router_arrays = RouterArrays.from_router(router_obj)
    params = model.params if mesh is None else replicate(model.params, mesh)
    state = prefill_core(params, model.config, plan, *arrays, router_arrays, jax.random.key(seed))
    return state, plan, padded.input_ids.shape[1] - batch.input_ids.shape[1]


# ----------------------------------------------------------------------------------------------
# Public API


def forward(model: Model, batch: Batch) -> np.ndarray:
    """Unpruned logits at every position `[B, L, V]` (float32) — for parity checks."""
    out = _forward_jit(
        model.params,
        model.config,
        jnp.asarray(batch.input_ids),
        jnp.asarray(batch.attention_mask),
        jnp.asarray(batch.input_features),
        jnp.asarray(batch.feature_attention_mask),
    )
    return np.asarray(out)


def prefill(
    model: Model,
    batch: Batch,
    ratio: float = 0.0,
    method: str = "headrouter",
    router=None,
    prune_layer: int | None = None,
    seed: int = 0,
) -> Prefill:
    """Runs the (pruned) prefill. See `Prefill` for the outputs."""
    state, plan, shift = run_prefill(model, batch, ratio, method, router, prune_layer, seed, 0, None)
    kept = np.asarray(state.kept_positions)
    kept = np.where(kept >= 0, kept - shift, -1)
    routed = plan.method in ROUTE_MODES
    return Prefill(
        logits=np.asarray(state.logits),
        kept_positions=kept,
        spread=np.asarray(state.spread) if routed else None,
        alpha=np.asarray(state.alpha) if routed else None,
        selectivity=np.asarray(state.selectivity) if routed else None,
        num_audio=np.asarray(state.num_audio),
        kept_audio=np.asarray(state.kept_audio),
    )


def generate_batch(
    model: Model,
    batch: Batch,
    ratio: float = 0.0,
    method: str = "headrouter",
    router=None,
    max_new_tokens: int = 128,
    temperature: float = 0.0,
    top_p: float = 1.0,
    seed: int = 0,
    prune_layer: int | None = None,
    mesh: Mesh | None = None,
) -> GenerateOutput:
    """Generates for every row of `batch`; with `mesh` (axis "data") the batch is split over devices."""
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    if temperature < 0 or not 0 < top_p <= 1:
        raise ValueError(f"need temperature >= 0 and 0 < top_p <= 1, got {temperature}, {top_p}")
    t0 = time.perf_counter()
    # Cache room is bucketed so that prefill compiles once for any max_new_tokens in the bucket.
    extra = buckets.round_up(max_new_tokens, buckets.DECODE_MULTIPLE)
    state, plan, shift = run_prefill(model, batch, ratio, method, router, prune_layer, seed, extra, mesh)
    padded_len = batch.input_ids.shape[1] + shift
    jax.block_until_ready(state.logits)
    t1 = time.perf_counter()
    routed = plan.method in ROUTE_MODES
    kept = np.asarray(state.kept_positions)
    kept = np.where(kept >= 0, kept - shift, -1)
    spread, alpha = (np.asarray(state.spread), np.asarray(state.alpha)) if routed else (None, None)
    num_audio, kept_audio = np.asarray(state.num_audio), np.asarray(state.kept_audio)
    with warnings.catch_warnings():
        # CPU backends cannot donate; the cache is still consumed.
        warnings.filterwarnings("ignore", message="Some donated buffers were not usable")
        tokens, count = decode_core(
            model.params if mesh is None else replicate(model.params, mesh),
            model.config,
            state,
            jax.random.key(seed + 1),
            prune_layer=plan.prune_layer,
            lo_len=padded_len,
            up_len=plan.keep_len,
            max_new=max_new_tokens,
            temperature=float(temperature),
            top_p=float(top_p),
            stop_ids=model.stop_token_ids,
            pad_id=model.pad_token_id,
        )
    tokens, count = np.asarray(tokens), np.asarray(count)
    t2 = time.perf_counter()
    stops = set(model.stop_token_ids)
    ids = [[int(t) for t in row[:n] if int(t) not in stops] for row, n in zip(tokens, count, strict=True)]
    texts = [model.tokenizer.decode(r, skip_special_tokens=True) for r in ids]
    return GenerateOutput(
        texts=texts,
        token_ids=[[int(t) for t in row[:n]] for row, n in zip(tokens, count, strict=True)],
        num_generated=count,
        num_audio=num_audio,
        kept_audio=kept_audio,
        kept_positions=kept,
        alpha=alpha,
        spread=spread,
        prefill_s=t1 - t0,
        decode_s=t2 - t1,
    )


def generate(
    model: Model,
    audio: AudioInput | Sequence[AudioInput],
    ratio: float = 0.0,
    *,
    prompt: str | Sequence[str] = DEFAULT_PROMPT,
    method: str = "headrouter",
    router=None,
    max_new_tokens: int = 128,
    temperature: float = 0.0,
    top_p: float = 1.0,
    seed: int = 0,
    system_prompt: str | None = DEFAULT_SYSTEM_PROMPT,
    prune_layer: int | None = None,
) -> str | list[str]:
    """Text from audio. A single audio (path, waveform, or (waveform, rate)) gives a str; a list
    gives a list. `ratio` is the share of audio tokens pruned before layer M."""
    single = isinstance(audio, (str, np.ndarray, tuple)) or hasattr(audio, "__fspath__")
    audios = [audio] if single else list(audio)
    batch = make_batch(model, audios, prompt if isinstance(prompt, str) else list(prompt), system_prompt)
    out = generate_batch(
        model, batch, ratio, method, router, max_new_tokens, temperature, top_p, seed, prune_layer
    )
    return out.texts[0] if single else out.texts
