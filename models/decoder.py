"""The decoder both families share: RMSNorm, RoPE (partial rotary and LongRoPE for Phi-3), grouped-query
attention with (Qwen2) or without (Phi-3) q/k/v biases, SwiGLU.

Weights are stacked on a leading `[layers]` axis. Prefill applies them with `lax.scan`; decode
unrolls the layers over per-layer weights split off once per call (`resolve_decode_layout`). Attention
is causal *by slot* (`models.attention`): a pruned sequence keeps its tokens in original order, so
slot order is still time order, while RoPE uses each token's original position. Which prefill
attention runs is an explicit argument (`attention`), never read from the environment.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from models.activations import activation
from models.attention import cached_attention, causal_attention
from models.config import TextConfig
from models.kv_cache import KVCache
from models.params import DecoderLayerParams

DEFAULT_ATTENTION = "blocked"  # differentiable (training); the engine passes its resolved choice


def rms_norm(x: jax.Array, w: jax.Array, eps: float) -> jax.Array:
    x32 = x.astype(jnp.float32)
    y = x32 * jax.lax.rsqrt(jnp.mean(jnp.square(x32), axis=-1, keepdims=True) + eps)
    return (w.astype(jnp.float32) * y).astype(x.dtype)


def rope_tables(positions: jax.Array, cfg: TextConfig, per_row: bool = False) -> tuple[jax.Array, jax.Array]:
    """cos, sin `[B, L, rotary_dim]` in float32 for integer positions `[B, L]`.

    With audio and text only, Qwen2.5-Omni's three M-RoPE components are equal, so this 1-D RoPE is
    exact. LongRoPE (Phi-4) divides each frequency by the short or the long factor, picked by the
    largest position, and scales cos and sin by the attention factor. The largest position is the
    whole call's (as transformers picks it per forward pass of a batch) or, with `per_row`, each row's
    own (rows that are independent requests, as a server's decode slots are).
    """
    dim = cfg.rotary_dim
    inv = 1.0 / (cfg.rope_theta ** (jnp.arange(0, dim, 2, dtype=jnp.float32) / dim))
    scale = 1.0
    if cfg.longrope is not None:
        lr = cfg.longrope
        largest = jnp.max(positions, axis=-1, keepdims=True) if per_row else jnp.max(positions)
        long = (largest + 1 > lr.original_max_position_embeddings)[..., None]  # [B, 1, 1] or [1]
        factor = jnp.where(
            long, jnp.asarray(lr.long_factor, jnp.float32), jnp.asarray(lr.short_factor, jnp.float32)
        )
        inv = 1.0 / (factor * cfg.rope_theta ** (jnp.arange(0, dim, 2, dtype=jnp.float32) / dim))
        scale = lr.attention_factor
    f = positions.astype(jnp.float32)[..., None] * inv
    f = jnp.concatenate([f, f], axis=-1)
    return jnp.cos(f) * scale, jnp.sin(f) * scale


def apply_rope(x: jax.Array, cos: jax.Array, sin: jax.Array) -> jax.Array:
    """x `[B, L, H, hd]`, cos/sin `[B, L, rotary_dim]`: the first rotary_dim dims of each head rotate,
    the rest pass through (partial rotary)."""
    dim = cos.shape[-1]
    half = dim // 2
    x32 = x.astype(jnp.float32)
    xr = x32[..., :dim]
    rot = jnp.concatenate([-xr[..., half:], xr[..., :half]], axis=-1)
    out = xr * cos[:, :, None] + rot * sin[:, :, None]
    if dim < x.shape[-1]:
        out = jnp.concatenate([out, x32[..., dim:]], axis=-1)
    return out.astype(x.dtype)


def matmul(x: jax.Array, w: jax.Array) -> jax.Array:
    """`x [..., in] @ w [in, out]`."""
    return x @ w


def matmul_weight_major(x: jax.Array, w_t: jax.Array) -> jax.Array:
    """`x [..., in]` times a weight stored transposed, `w_t [out, in]`: computed as `w_t @ xᵀ`.

    For a few rows (batched decode) XLA:CPU's GEMM packs the `[in, out]` weight at every call, which
    costs more than the product; with the weight as the left operand it streams it once. Measured on
    two AMD EPYC cores, 24 products of 512 x 1536: 4 rows 11 ms instead of 17, 8 rows 11 instead of 21
    (1 row is faster the usual way: 5.2 ms against 6.5)."""
    lead = x.shape[:-1]
    # The barrier keeps XLA from fusing the transpose back into the product, which would turn it into
    # `x @ w_tᵀ` and the packing path again.
    y = jax.lax.optimization_barrier(jnp.einsum("oi,ni->on", w_t, x.reshape(-1, x.shape[-1])))
    return y.T.reshape(*lead, w_t.shape[0])


def project_qkv(x: jax.Array, p: DecoderLayerParams, cfg: TextConfig, mm=matmul) -> tuple[jax.Array, ...]:
    """Un-rotated q `[B, L, Hq, hd]`, k, v `[B, L, Hkv, hd]` from the normalised input x `[B, L, D]`.
    `mm`: `matmul`, or `matmul_weight_major` for weights stored `[out, in]`."""
    b, n, _ = x.shape

    def proj(w: jax.Array, bias: jax.Array | None, heads: int) -> jax.Array:
        y = mm(x, w) if bias is None else mm(x, w) + bias
        return y.reshape(b, n, heads, cfg.head_dim)

    q = proj(p.q_w, p.q_b, cfg.num_attention_heads)
    k = proj(p.k_w, p.k_b, cfg.num_key_value_heads)
    v = proj(p.v_w, p.v_b, cfg.num_key_value_heads)
    return q, k, v


def mlp(x: jax.Array, p: DecoderLayerParams, cfg: TextConfig, mm=matmul) -> jax.Array:
    """Gated MLP (SwiGLU for the released `hidden_act="silu"`). x `[..., hidden]`; `mm` as in
    `project_qkv`."""
    return mm(activation(cfg.hidden_act)(mm(x, p.gate_w)) * mm(x, p.up_w), p.down_w)


def layer_prefill(
    h: jax.Array,
    p: DecoderLayerParams,
    cfg: TextConfig,
    cos: jax.Array,
    sin: jax.Array,
    valid: jax.Array,
    attention: str = DEFAULT_ATTENTION,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """One decoder layer over a whole sequence (`valid [B, L]` real slots). Returns (h, k, v) with k
    rotated. `attention`: a concrete implementation of `models.attention`."""
    x = rms_norm(h, p.attn_norm, cfg.rms_norm_eps)
    q, k, v = project_qkv(x, p, cfg)
    q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
    a = causal_attention(q, k, v, valid, attention)
    h = h + a.reshape(h.shape[0], h.shape[1], -1) @ p.o_w
    h = h + mlp(rms_norm(h, p.mlp_norm, cfg.rms_norm_eps), p, cfg)
    return h, k, v


def prefill_layers(
    h: jax.Array,
    layers: DecoderLayerParams,
    cfg: TextConfig,
    positions: jax.Array,
    valid: jax.Array,
    start: int = 0,
    stop: int | None = None,
    return_last_input: bool = False,
    attention: str = DEFAULT_ATTENTION,
) -> tuple[jax.Array, ...]:
    """Runs layers `start..stop-1` of the stacked `layers` over h `[B, L, D]`; returns h and per-layer
    k, v `[stop - start, B, L, Hkv, hd]`, and with `return_last_input` also the input of the last
    layer `[B, L, D]` (what a pruning probe at that layer reads), from the same scan. `attention`: a
    concrete implementation of `models.attention` (the differentiable `blocked` by default).

    The scan indexes the full stack instead of taking `layers[start:stop]` first: a slice of the stack
    is a copy of those layers' weights, on top of the one scan makes of each layer as it reaches it.
    """
    n = jax.tree.leaves(layers)[0].shape[0]
    stop = n if stop is None else stop
    whole = start == 0 and stop == n  # scan the stack itself: the same per-layer slices, no indices
    cos, sin = rope_tables(positions, cfg)

    def body(carry: tuple[jax.Array, jax.Array], x: DecoderLayerParams | jax.Array):
        h, _ = carry
        p = x if whole else jax.tree.map(lambda w: w[x], layers)
        h_out, k, v = layer_prefill(h, p, cfg, cos, sin, valid, attention)
        return (h_out, h), (k, v)

    xs = layers if whole else jnp.arange(start, stop)
    (h, h_last_in), (k, v) = jax.lax.scan(body, (h, h), xs)
    return (h, k, v, h_last_in) if return_last_input else (h, k, v)


DECODE_LAYOUTS = ("auto", "unrolled", "scan")


def resolve_decode_layout(layout: str) -> str:
    """How decode runs its layers: `unrolled` (what `auto` picks): one traced copy of the layer per
    layer, over per-layer weights split off the stack once per generate call (`unstack_layers`,
    outside the decode loop). A scan over stacked weights dynamic-slices (copies) every layer's weights
    at every step, which at batch 1 roughly doubles decode's memory traffic (measured on CPU,
    bench/RESULTS.md). The price is a second copy of the layer weights for the duration of the call;
    `scan` avoids it where memory is tight."""
    if layout not in DECODE_LAYOUTS:
        raise ValueError(f"decode layout {layout!r}; choose from {', '.join(DECODE_LAYOUTS)}")
    return "scan" if layout == "scan" else "unrolled"


_MATRICES = ("q_w", "k_w", "v_w", "o_w", "gate_w", "up_w", "down_w")


def unstack_layers(
    layers: DecoderLayerParams, start: int, stop: int, weight_major: bool = False
) -> tuple[DecoderLayerParams, ...]:
    """Layers `start..stop-1` of a stacked `[n, ...]` pytree as a tuple of per-layer pytrees; with
    `weight_major`, each matrix stored `[out, in]` (for `matmul_weight_major`)."""
    out = []
    for i in range(start, stop):
        p = jax.tree.map(lambda w, i=i: w[i], layers)
        if weight_major:
            p = p.replace(**{n: getattr(p, n).T for n in _MATRICES})
        out.append(p)
    return tuple(out)


def decode_layers(
    h: jax.Array,
    layers: DecoderLayerParams | tuple[DecoderLayerParams, ...],
    cfg: TextConfig,
    cache: KVCache,
    cos: jax.Array,
    sin: jax.Array,
    weight_major: bool = False,
) -> tuple[jax.Array, KVCache]:
    """One new token per row through a group of layers: stacked weights `[n, ...]` (a `lax.scan`) or
    a tuple of per-layer weights (unrolled; see `resolve_decode_layout`), their matrices stored `[out, in]`
    when `weight_major` (`unstack_layers(..., weight_major=True)`).

    h `[B, 1, D]`; the token is appended to `cache` (its k/v at slot `cache.length`); cos/sin
    `[B, 1, hd]` at the token's original position.
    """
    cache, slot = cache.append()

    mm = matmul_weight_major if weight_major else matmul

    def layer(h: jax.Array, cache: KVCache, p: DecoderLayerParams, i: jax.Array | int):
        x = rms_norm(h, p.attn_norm, cfg.rms_norm_eps)
        q, k, v = project_qkv(x, p, cfg, mm)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        cache = cache.write(i, slot, k, v)
        a = cached_attention(q, *cache.layer(i), cache.valid)
        h = h + mm(a.reshape(h.shape[0], 1, -1), p.o_w)
        h = h + mlp(rms_norm(h, p.mlp_norm, cfg.rms_norm_eps), p, cfg, mm)
        return h, cache

    if isinstance(layers, tuple):
        for i, p in enumerate(layers):
            h, cache = layer(h, cache, p, i)
        return h, cache

    def body(carry: tuple[jax.Array, KVCache, jax.Array], p: DecoderLayerParams):
        h, cache, i = carry
        h, cache = layer(h, cache, p, i)
        return (h, cache, i + 1), None

    (h, cache, _), _ = jax.lax.scan(body, (h, cache, jnp.int32(0)), layers)
    return h, cache
