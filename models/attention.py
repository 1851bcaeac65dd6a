"""Prefill self-attention, causal by slot, and decode attention over a KV cache.

A pruned sequence keeps its tokens in original order, so slot order is still time order: a query sees
the valid slots at or before it (and, if it is padding, only itself; padding outputs are never read,
only kept finite). Rows are left-padded below the pruning layer and hold their kept tokens first above
it; every implementation takes both through `valid [B, L]`.

The implementation is an explicit, static choice (`ATTENTION_IMPLS`; the engine resolves `auto` with
`resolve_attention` when it plans a program, so the choice is part of what is compiled):
- `streaming` (CPU; GPU in float32): tiles of `q_tile` queries against tiles of `k_tile` keys with an
  online softmax (running max and sum in float32), a loop over key tiles that stops at the diagonal
  (tiles wholly above it are skipped, not masked), GQA by grouping the query heads. Memory is
  O(L · tile), and the program's size does not depend on L. Not reverse-differentiable (its loops
  have data-dependent trip counts): training uses `blocked`.
- `cudnn` (GPU, bfloat16/float16): cuDNN flash attention. cuDNN's padding is a valid prefix, so each
  row is rotated to start at its first valid slot and rotated back (each row's valid slots are one
  contiguous run: true for both layouts above). `rolled` is the same with XLA's kernel (CPU-testable).
- `splash` (TPU): the Pallas splash-attention kernel that ships with JAX, causal, padding as segment
  ids, GQA by folding each KV head's query group into the sequence axis of a multi-head call.
- `blocked`: query blocks, each against the key prefix it can see, statically unrolled
  (differentiable; O(L²/blocks) temporaries). `dense`: `jax.nn.dot_product_attention` with the whole
  `[B, L, L]` mask (the reference).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

_NEG = float(jnp.finfo(jnp.float32).min)  # finite "minus infinity" for masked scores
ATTENTION_IMPLS = ("auto", "streaming", "blocked", "dense", "cudnn", "rolled", "splash")
# Tiles of the streaming kernel, chosen by measuring the small preset's prefill shapes on CPU
# (bench/RESULTS.md, "Streaming attention tiles").
Q_TILE = 512
K_TILE = 512


def resolve_attention(impl: str, dtype, backend: str | None = None) -> str:
    """The concrete implementation `impl` names for `dtype` on `backend` (default: JAX's default
    backend): `auto` is `cudnn` on GPU for bfloat16/float16, `splash` on TPU, else `streaming`."""
    if impl not in ATTENTION_IMPLS:
        raise ValueError(f"attention implementation {impl!r}; choose from {', '.join(ATTENTION_IMPLS)}")
    if impl != "auto":
        return impl
    backend = backend or jax.default_backend()
    if backend == "gpu" and jnp.dtype(dtype) in (jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float16)):
        return "cudnn"
    if backend == "tpu":
        return "splash"
    return "streaming"


def causal_attention(q: jax.Array, k: jax.Array, v: jax.Array, valid: jax.Array, impl: str) -> jax.Array:
    """Prefill self-attention, causal by slot (see the module docstring), with a concrete `impl`.
    q `[B, L, Hq, hd]`, k/v `[B, L, Hkv, hd]`, valid `[B, L]` -> `[B, L, Hq, hd]`."""
    if impl == "streaming":
        return streaming_attention(q, k, v, valid)
    if impl == "blocked":
        return _causal_blocked(q, k, v, valid)
    if impl == "dense":
        return attention(q, k, v, causal_mask(valid))
    if impl == "cudnn":
        return _causal_rolled(q, k, v, valid, "cudnn")
    if impl == "rolled":
        return _causal_rolled(q, k, v, valid, "xla")
    if impl == "splash":
        from models.splash_attention import splash_attention

        return splash_attention(q, k, v, valid)
    raise ValueError(f"attention implementation {impl!r} is not concrete; resolve it with resolve_attention")


def causal_mask(valid: jax.Array) -> jax.Array:
    """`[B, L, L]`: slot i sees valid slots j <= i, and itself (so that a padding query before every
    valid slot sees something)."""
    n = valid.shape[1]
    tri = jnp.tril(jnp.ones((n, n), bool))
    m = tri[None] & valid[:, None, :]
    return m | (jnp.eye(n, dtype=bool)[None] & ~valid[:, :, None])


def attention(q: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array) -> jax.Array:
    """GQA attention. q `[B, Lq, Hq, hd]`, k/v `[B, Lk, Hkv, hd]`, mask `[B, Lq, Lk]` -> `[B, Lq, Hq, hd]`.

    Rows whose mask is all False (padding queries) produce finite garbage, never NaN.
    """
    return jax.nn.dot_product_attention(q, k, v, mask=mask[:, None])


def own_values(v: jax.Array, valid: jax.Array, out: jax.Array) -> jax.Array:
    """`out` `[B, L, Hq, hd]` with each padding query's row set to its own value (what attending to
    itself alone gives), from v `[B, L, Hkv, hd]`."""
    own = jnp.repeat(v, out.shape[2] // v.shape[2], axis=2)
    return jnp.where(valid[:, :, None, None], out, own.astype(out.dtype))


# ------------------------------------------------------------------------------------------------
# Streaming


def _round_up(n: int, m: int) -> int:
    return -(-n // m) * m


def streaming_tiles(length: int, q_tile: int = Q_TILE, k_tile: int = K_TILE) -> tuple[int, int]:
    """(query tile, key tile) for a sequence of `length` slots: the given tiles, or one tile of the
    whole (rounded) sequence when it is shorter than a query tile. The key tile is a multiple of the
    query tile."""
    if length <= q_tile:
        t = _round_up(length, 8)
        return t, t
    if k_tile % q_tile:
        raise ValueError(f"the key tile {k_tile} must be a multiple of the query tile {q_tile}")
    return q_tile, k_tile


def streaming_attention(
    q: jax.Array, k: jax.Array, v: jax.Array, valid: jax.Array, q_tile: int = Q_TILE, k_tile: int = K_TILE
) -> jax.Array:
    """Causal-by-slot attention (module docstring) by tiles with an online softmax.
    q `[B, L, Hq, hd]`, k/v `[B, L, Hkv, hd]`, valid `[B, L]` -> `[B, L, Hq, hd]`.

    Query tile i (slots `[i·tq, (i+1)·tq)`) runs over key tiles 0 .. ceil((i+1)·tq / tk) - 1 only; the
    G query heads of a KV head and the tile's queries form the rows of one `[G·tq, tk]` score block.
    Scores, running max and sum in float32; probabilities in v's dtype for the second product.
    A padding query's output is finite and meaningless (no valid key may come before it; nothing reads
    it)."""
    b, length, hq, hd = q.shape
    hkv = k.shape[2]
    g = hq // hkv
    tq, tk = streaming_tiles(length, q_tile, k_tile)
    nq = -(-length // tq)
    lq, lk = nq * tq, _round_up(nq * tq, tk)
    scale = 1.0 / math.sqrt(hd)
    qs = (q.astype(jnp.float32) * scale).astype(q.dtype)  # folded into q once, not into every tile
    qs = jnp.pad(qs, ((0, 0), (0, lq - length), (0, 0), (0, 0)))
    # [nq, B, Hkv, G·tq, hd]: a tile's rows are (head in group, query) pairs
    qt = qs.reshape(b, nq, tq, hkv, g, hd).transpose(1, 0, 3, 4, 2, 5).reshape(nq, b, hkv, g * tq, hd)
    kt = jnp.pad(k, ((0, 0), (0, lk - length), (0, 0), (0, 0))).transpose(0, 2, 1, 3)  # [B, Hkv, lk, hd]
    vt = jnp.pad(v, ((0, 0), (0, lk - length), (0, 0), (0, 0))).transpose(0, 2, 1, 3)
    key_valid = jnp.pad(valid, ((0, 0), (0, lk - length)))  # [B, lk]
    row_pos = jnp.tile(jnp.arange(tq, dtype=jnp.int32), g)  # [G·tq] query offset of each row
    col_pos = jnp.arange(tk, dtype=jnp.int32)
    rows = g * tq

    def query_tile(i: jax.Array, qi: jax.Array) -> jax.Array:
        q_pos = i * tq + row_pos  # [rows]

        def key_tile(j: jax.Array, carry: tuple[jax.Array, jax.Array, jax.Array]):
            m, l, acc = carry
            ks = jax.lax.dynamic_slice_in_dim(kt, j * tk, tk, axis=2)
            vs = jax.lax.dynamic_slice_in_dim(vt, j * tk, tk, axis=2)
            kv = jax.lax.dynamic_slice_in_dim(key_valid, j * tk, tk, axis=1)  # [B, tk]
            s = jnp.einsum("bkrd,bksd->bkrs", qi, ks, preferred_element_type=jnp.float32)
            visible = ((j * tk + col_pos)[None, :] <= q_pos[:, None])[None, None] & kv[:, None, None, :]
            s = jnp.where(visible, s, _NEG)
            m_new = jnp.maximum(m, s.max(-1))
            p = jnp.exp(s - m_new[..., None])
            corr = jnp.exp(m - m_new)
            l = l * corr + p.sum(-1)
            pv = jnp.einsum("bkrs,bksd->bkrd", p.astype(v.dtype), vs, preferred_element_type=jnp.float32)
            return m_new, l, acc * corr[..., None] + pv

        init = (
            jnp.full((b, hkv, rows), _NEG, jnp.float32),
            jnp.zeros((b, hkv, rows), jnp.float32),
            jnp.zeros((b, hkv, rows, hd), jnp.float32),
        )
        last = ((i + 1) * tq + tk - 1) // tk  # key tiles up to the diagonal
        _, l, acc = jax.lax.fori_loop(0, last, key_tile, init)
        return (acc / l[..., None]).astype(q.dtype)

    out = jax.lax.map(
        lambda x: query_tile(*x), (jnp.arange(nq, dtype=jnp.int32), qt)
    )  # [nq, B, Hkv, rows, hd]
    out = out.reshape(nq, b, hkv, g, tq, hd).transpose(1, 0, 4, 2, 3, 5).reshape(b, lq, hq, hd)
    return out[:, :length]  # padding queries: finite, never read


# ------------------------------------------------------------------------------------------------
# Blocked (differentiable) and the fused kernels' rotation


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
    """Decode attention of new queries q `[B, T, Hq, hd]` over a cache's k `[B, Hkv, S, hd]` and v
    `[B, Hkv, hd, S]` (as `KVCache` keeps them), seeing the slots `valid [B, S]`; GQA by grouping the
    query heads, never repeating K/V. Scores and softmax in float32. Returns `[B, T, Hq, hd]`."""
    b, t, hq, hd = q.shape
    hkv = k.shape[1]
    qg = q.reshape(b, t, hkv, hq // hkv, hd)
    s = jnp.einsum("btkgd,bksd->bkgts", qg, k, preferred_element_type=jnp.float32) * (1.0 / math.sqrt(hd))
    p = jax.nn.softmax(jnp.where(valid[:, None, None, None], s, _NEG), axis=-1)
    o = jnp.einsum("bkds,bkgts->bkdgt", v, p.astype(v.dtype), preferred_element_type=jnp.float32)
    return o.transpose(0, 4, 1, 3, 2).reshape(b, t, hq, hd).astype(q.dtype)


def attention_blocks(length: int, max_blocks: int = 16, min_block: int = 128) -> list[tuple[int, int]]:
    """Query blocks `[(start, end), ...]` of the blocked path: blocks of at least `min_block` slots (a
    multiple of 64), at most `max_blocks` of them (each block is its own static shape, so more blocks
    mean a longer compile)."""
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


def take_rows(x: jax.Array, idx: jax.Array) -> jax.Array:
    """`x [B, L, ...]` gathered along L at `idx [B, L]`."""
    return jnp.take_along_axis(x, idx.reshape(idx.shape + (1,) * (x.ndim - 2)), axis=1)


def valid_run(valid: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Each row's first valid slot and count of valid slots `[B]` (its valid slots are one run)."""
    return jnp.argmax(valid, axis=1).astype(jnp.int32), valid.sum(1).astype(jnp.int32)


def _causal_rolled(
    q: jax.Array, k: jax.Array, v: jax.Array, valid: jax.Array, implementation: str
) -> jax.Array:
    """Padding-causal fused attention on rows rotated so that their (contiguous) valid run starts at 0."""
    length = q.shape[1]
    start, n = valid_run(valid)
    iota = jnp.arange(length, dtype=jnp.int32)[None]
    fwd = (iota + start[:, None]) % length
    out = jax.nn.dot_product_attention(
        take_rows(q, fwd), take_rows(k, fwd), take_rows(v, fwd), is_causal=True,
        query_seq_lengths=n, key_value_seq_lengths=n, implementation=implementation,
    )  # fmt: skip
    out = take_rows(out, (iota - start[:, None]) % length)
    return own_values(v, valid, out)
