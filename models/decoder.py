"""The decoder both families share: RMSNorm, RoPE (partial rotary and LongRoPE for Phi-3), grouped-query
attention with (Qwen2) or without (Phi-3) q/k/v biases, SwiGLU.

Weights are stacked on a leading `[layers]` axis. Prefill applies them with `lax.scan`; decode
unrolls the layers over per-layer weights split off once per call (`decode_layout`). Attention
masks are boolean and causal *by slot*: a pruned sequence keeps its tokens in original order, so
slot order is still time order, while RoPE uses each token's original position.

Prefill self-attention (`causal_attention`) has three implementations, chosen per platform (the
environment variable `HR_JAX_ATTENTION` = `auto` | `blocked` | `dense` | `cudnn` | `rolled`
overrides; `auto` is `cudnn` on GPU for bfloat16/float16 and `blocked` otherwise):
- `blocked` (CPU): query blocks, each against the key prefix it can see, so the masked upper
  triangle is mostly skipped and each block's scores stay cache-sized; softmax in float32.
- `cudnn` (GPU): cuDNN flash attention with a padding-causal mask. cuDNN's padding is a valid
  prefix, so each row is rotated to start at its first valid slot and rotated back; this assumes
  each row's valid slots are one contiguous run (true here: left-padded batches below the pruning
  layer, kept tokens first above it). `rolled` is the same with XLA's implementation (CPU-testable).
- `dense`: `jax.nn.dot_product_attention` with the full `[B, L, L]` mask.
"""

from __future__ import annotations

import math
import os

import jax
import jax.numpy as jnp

from models.activations import activation
from models.config import TextConfig
from models.kv_cache import KVCache
from models.params import DecoderLayerParams


def rms_norm(x: jax.Array, w: jax.Array, eps: float) -> jax.Array:
    x32 = x.astype(jnp.float32)
    y = x32 * jax.lax.rsqrt(jnp.mean(jnp.square(x32), axis=-1, keepdims=True) + eps)
    return (w.astype(jnp.float32) * y).astype(x.dtype)


def rope_tables(positions: jax.Array, cfg: TextConfig) -> tuple[jax.Array, jax.Array]:
    """cos, sin `[B, L, rotary_dim]` in float32 for integer positions `[B, L]`.

    With audio and text only, Qwen2.5-Omni's three M-RoPE components are equal, so this 1-D RoPE is
    exact. LongRoPE (Phi-4) divides each frequency by the short or the long factor, picked for the
    whole call by its largest position (as transformers picks it per forward pass), and scales cos and
    sin by the attention factor.
    """
    dim = cfg.rotary_dim
    inv = 1.0 / (cfg.rope_theta ** (jnp.arange(0, dim, 2, dtype=jnp.float32) / dim))
    scale = 1.0
    if cfg.longrope is not None:
        lr = cfg.longrope
        long = jnp.max(positions) + 1 > lr.original_max_position_embeddings
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


def attention(q: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array) -> jax.Array:
    """GQA attention. q `[B, Lq, Hq, hd]`, k/v `[B, Lk, Hkv, hd]`, mask `[B, Lq, Lk]` -> `[B, Lq, Hq, hd]`.

    Rows whose mask is all False (padding queries) produce finite garbage, never NaN.
    """
    return jax.nn.dot_product_attention(q, k, v, mask=mask[:, None])


_NEG = float(jnp.finfo(jnp.float32).min)  # finite "minus infinity" for masked scores
ATTENTION_IMPLS = ("auto", "blocked", "dense", "cudnn", "rolled")


def attention_impl(dtype) -> str:
    """The prefill attention implementation for this platform and dtype (see the module docstring)."""
    mode = os.environ.get("HR_JAX_ATTENTION", "auto")
    if mode not in ATTENTION_IMPLS:
        raise ValueError(f"HR_JAX_ATTENTION={mode!r}; choose from {', '.join(ATTENTION_IMPLS)}")
    if mode != "auto":
        return mode
    if jax.default_backend() == "gpu" and jnp.dtype(dtype) in (
        jnp.dtype(jnp.bfloat16),
        jnp.dtype(jnp.float16),
    ):
        return "cudnn"
    return "blocked"


def masked_attention(q: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array) -> jax.Array:
    """GQA attention without repeating K/V: q `[B, T, Hq, hd]`, k/v `[B, S, Hkv, hd]`, mask `[B, T, S]`.

    Scores and softmax in float32, probabilities cast to v's dtype for the second product (as flash
    kernels do). Every query row must see at least one key."""
    b, t, hq, hd = q.shape
    hkv = k.shape[2]
    qg = q.reshape(b, t, hkv, hq // hkv, hd)
    s = jnp.einsum("btkgd,bskd->bkgts", qg, k, preferred_element_type=jnp.float32) * (1.0 / math.sqrt(hd))
    p = jax.nn.softmax(jnp.where(mask[:, None, None], s, _NEG), axis=-1)
    o = jnp.einsum("bkgts,bskd->btkgd", p.astype(v.dtype), v, preferred_element_type=jnp.float32)
    return o.reshape(b, t, hq, hd).astype(q.dtype)


def cached_attention(q: jax.Array, k: jax.Array, v: jax.Array, valid: jax.Array) -> jax.Array:
    """Decode attention of new queries q `[B, T, Hq, hd]` over a cache's k/v `[B, Hkv, S, hd]` (heads
    major, as `KVCache` keeps them), seeing the slots `valid [B, S]`; GQA by grouping the query heads,
    never repeating K/V. Scores and softmax in float32. Returns `[B, T, Hq, hd]`."""
    b, t, hq, hd = q.shape
    hkv = k.shape[1]
    qg = q.reshape(b, t, hkv, hq // hkv, hd)
    s = jnp.einsum("btkgd,bksd->bkgts", qg, k, preferred_element_type=jnp.float32) * (1.0 / math.sqrt(hd))
    p = jax.nn.softmax(jnp.where(valid[:, None, None, None], s, _NEG), axis=-1)
    o = jnp.einsum("bkds,bkgts->bkdgt", v, p.astype(v.dtype), preferred_element_type=jnp.float32)
    return o.transpose(0, 4, 1, 3, 2).reshape(b, t, hq, hd).astype(q.dtype)


def attention_blocks(length: int, max_blocks: int = 16, min_block: int = 128) -> list[tuple[int, int]]:
    """Query blocks `[(start, end), ...]` of `causal_attention`'s blocked path: blocks of at least
    `min_block` slots (a multiple of 64), at most `max_blocks` of them (each block is its own static
    shape, so more blocks mean a longer compile)."""
    n = max(1, min(max_blocks, -(-length // min_block)))
    per_block = -(-length // n)  # ceil
    size = -(-per_block // 64) * 64  # rounded up to a multiple of 64
    return [(s, min(length, s + size)) for s in range(0, length, size)]


def _causal_blocked(q: jax.Array, k: jax.Array, v: jax.Array, valid: jax.Array) -> jax.Array:
    outs = []
    for s, e in attention_blocks(q.shape[1]):
        i = jnp.arange(s, e)[:, None]
        j = jnp.arange(e)[None, :]
        m = ((j <= i)[None] & valid[:, None, :e]) | ((i == j)[None] & ~valid[:, s:e, None])
        outs.append(masked_attention(q[:, s:e], k[:, :e], v[:, :e], m))
    return jnp.concatenate(outs, axis=1) if len(outs) > 1 else outs[0]


def _take_rows(x: jax.Array, idx: jax.Array) -> jax.Array:
    return jnp.take_along_axis(x, idx.reshape(idx.shape + (1,) * (x.ndim - 2)), axis=1)


def _causal_rolled(
    q: jax.Array, k: jax.Array, v: jax.Array, valid: jax.Array, implementation: str
) -> jax.Array:
    """Padding-causal fused attention on rows rotated so that their (contiguous) valid run starts at 0."""
    length = q.shape[1]
    n = valid.sum(1).astype(jnp.int32)
    start = jnp.argmax(valid, axis=1).astype(jnp.int32)
    iota = jnp.arange(length, dtype=jnp.int32)[None]
    fwd = (iota + start[:, None]) % length
    out = jax.nn.dot_product_attention(
        _take_rows(q, fwd), _take_rows(k, fwd), _take_rows(v, fwd), is_causal=True,
        query_seq_lengths=n, key_value_seq_lengths=n, implementation=implementation,
    )  # fmt: skip
    out = _take_rows(out, (iota - start[:, None]) % length)
    own = jnp.repeat(v, q.shape[2] // v.shape[2], axis=2)  # padding queries see only themselves
    return jnp.where(valid[:, :, None, None], out, own.astype(out.dtype))


def causal_attention(q: jax.Array, k: jax.Array, v: jax.Array, valid: jax.Array) -> jax.Array:
    """Prefill self-attention, causal by slot: a query sees the valid slots at or before it (and, if
    it is padding, itself; padding outputs are never read, only kept finite).
    q `[B, L, Hq, hd]`, k/v `[B, L, Hkv, hd]`, valid `[B, L]`."""
    impl = attention_impl(q.dtype)
    if impl == "dense":
        return attention(q, k, v, causal_mask(valid))
    if impl == "cudnn":
        return _causal_rolled(q, k, v, valid, "cudnn")
    if impl == "rolled":
        return _causal_rolled(q, k, v, valid, "xla")
    return _causal_blocked(q, k, v, valid)


def mlp(x: jax.Array, p: DecoderLayerParams, cfg: TextConfig, mm=matmul) -> jax.Array:
    """Gated MLP (SwiGLU for the released `hidden_act="silu"`). x `[..., hidden]`; `mm` as in
    `project_qkv`."""
    return mm(activation(cfg.hidden_act)(mm(x, p.gate_w)) * mm(x, p.up_w), p.down_w)


def causal_mask(valid: jax.Array) -> jax.Array:
    """`[B, L, L]`: slot i sees valid slots j <= i, and itself (so that a padding query before every
    valid slot sees something)."""
    n = valid.shape[1]
    tri = jnp.tril(jnp.ones((n, n), bool))
    m = tri[None] & valid[:, None, :]
    return m | (jnp.eye(n, dtype=bool)[None] & ~valid[:, :, None])


def layer_prefill(
    h: jax.Array, p: DecoderLayerParams, cfg: TextConfig, cos: jax.Array, sin: jax.Array, valid: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """One decoder layer over a whole sequence (`valid [B, L]` real slots). Returns (h, k, v) with k
    rotated."""
    x = rms_norm(h, p.attn_norm, cfg.rms_norm_eps)
    q, k, v = project_qkv(x, p, cfg)
    q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
    a = causal_attention(q, k, v, valid)
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
) -> tuple[jax.Array, ...]:
    """Runs layers `start..stop-1` of the stacked `layers` over h `[B, L, D]`; returns h and per-layer
    k, v `[stop - start, B, L, Hkv, hd]`, and with `return_last_input` also the input of the last
    layer `[B, L, D]` (what a pruning probe at that layer reads), from the same scan.

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
        h_out, k, v = layer_prefill(h, p, cfg, cos, sin, valid)
        return (h_out, h), (k, v)

    xs = layers if whole else jnp.arange(start, stop)
    (h, h_last_in), (k, v) = jax.lax.scan(body, (h, h), xs)
    return (h, k, v, h_last_in) if return_last_input else (h, k, v)


DECODE_LAYOUTS = ("auto", "unrolled", "scan")


def decode_layout() -> str:
    """How decode runs its layers (environment variable `HR_JAX_DECODE_LAYERS`, default `auto`).

    `unrolled` (what `auto` picks): one traced copy of the layer per layer, over per-layer weights
    split off the stack once per generate call (`unstack_layers`, outside the decode loop). A scan
    over stacked weights dynamic-slices (copies) every layer's weights at every step, which at batch 1
    roughly doubles decode's memory traffic (measured on CPU, bench/RESULTS.md). The price is a second
    copy of the layer weights for the duration of the call; `scan` avoids it where memory is tight.
    """
    mode = os.environ.get("HR_JAX_DECODE_LAYERS", "auto")
    if mode not in DECODE_LAYOUTS:
        raise ValueError(f"HR_JAX_DECODE_LAYERS={mode!r}; expected one of {', '.join(DECODE_LAYOUTS)}")
    return "scan" if mode == "scan" else "unrolled"


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
    a tuple of per-layer weights (unrolled; see `decode_layout`), their matrices stored `[out, in]`
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
