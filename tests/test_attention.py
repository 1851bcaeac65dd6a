"""The prefill attention kernels agree with the dense masked reference: streaming (the default where no
fused kernel serves), blocked (training's, differentiable), rolled (the cuDNN path's rotation run with
XLA's kernel); lengths that are not multiples of a tile, left padding, the pruned layout (kept tokens
first), GQA groups of 1, 4 and 7. Memory grows linearly and the program count stays bounded."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from models.attention import (
    attention,
    attention_blocks,
    causal_attention,
    causal_mask,
    resolve_attention,
    streaming_attention,
)


def _inputs(b, length, hq, hkv, hd, seed=0):
    ks = jax.random.split(jax.random.key(seed), 3)
    q = jax.random.normal(ks[0], (b, length, hq, hd))
    k = jax.random.normal(ks[1], (b, length, hkv, hd))
    v = jax.random.normal(ks[2], (b, length, hkv, hd))
    return q, k, v


def _valid(length: int, layout: str) -> jax.Array:
    """Three rows: whole, 17 short, a third; left-padded (below the pruning layer) or kept tokens first
    with spare slots after them (above it)."""
    iota = np.arange(length)[None]
    counts = np.array([length, length - 17, length // 3])[:, None]
    if layout == "left_padded":
        return jnp.asarray(iota >= length - counts)
    if layout == "pruned":
        return jnp.asarray(iota < counts)
    return jnp.ones((3, length), bool)


def _check(got, want, valid, rows_all: bool = False):
    """Valid queries agree within 1e-5 (relative to the largest output); padding queries, which nothing
    reads, are finite (and, with `rows_all`, agree too)."""
    assert got.shape == want.shape and bool(jnp.all(jnp.isfinite(got)))
    rows = np.ones(valid.shape, bool) if rows_all else np.asarray(valid)
    err = np.abs(np.asarray(got) - np.asarray(want))[rows].max() / np.abs(np.asarray(want)).max()
    assert err <= 1e-5, err


@pytest.mark.parametrize("layout", ["left_padded", "pruned", "full"])
@pytest.mark.parametrize(("length", "groups"), [(40, 1), (333, 4), (1000, 7)])
def test_streaming_attention_matches_the_dense_reference(length, groups, layout):
    q, k, v = _inputs(3, length, 2 * groups, 2, 16)
    valid = _valid(length, layout)
    want = attention(q, k, v, causal_mask(valid))
    got = jax.jit(lambda *a: streaming_attention(*a, q_tile=128, k_tile=256))(q, k, v, valid)
    _check(got, want, valid)


@pytest.mark.parametrize("layout", ["left_padded", "pruned"])
@pytest.mark.parametrize("impl", ["blocked", "rolled"])
def test_the_other_kernels_match_the_dense_reference(impl, layout):
    q, k, v = _inputs(3, 333, 6, 2, 8)
    valid = _valid(333, layout)
    want = attention(q, k, v, causal_mask(valid))
    # the blocked path reproduces even the padding queries' (unread) outputs
    _check(causal_attention(q, k, v, valid, impl), want, valid, rows_all=impl == "blocked")


def test_auto_picks_each_platforms_kernel():
    assert resolve_attention("auto", jnp.float32, "cpu") == "streaming"
    assert resolve_attention("auto", jnp.float32, "gpu") == "streaming"  # float32: no cuDNN flash
    assert resolve_attention("auto", jnp.bfloat16, "gpu") == "cudnn"
    assert resolve_attention("auto", jnp.bfloat16, "tpu") == "splash"
    assert resolve_attention("dense", jnp.bfloat16, "gpu") == "dense"
    with pytest.raises(ValueError, match="sideways"):
        resolve_attention("sideways", jnp.float32)


def _compiled(length: int):
    q, k, v = _inputs(1, length, 8, 2, 64)
    valid = jnp.ones((1, length), bool)
    return jax.jit(streaming_attention).lower(q, k, v, valid).compile()


def test_streaming_memory_grows_linearly_with_length():
    small, large = (_compiled(n).memory_analysis().temp_size_in_bytes for n in (2048, 8192))
    assert large < 6 * small, (small, large)  # quadratic would be 16x


def test_streaming_program_does_not_grow_with_length():
    # a loop over tiles, not an unrolled list: the program text is the same size at 4x the length
    short, long = (len(_compiled(n).as_text()) for n in (2048, 8192))
    assert long < 1.1 * short


def test_blocks_cover_the_sequence_with_few_static_shapes():
    for length in (1, 64, 65, 832, 3072, 7552, 40000):
        blocks = attention_blocks(length)
        assert blocks[0][0] == 0 and blocks[-1][1] == length
        assert all(a[1] == b[0] for a, b in zip(blocks[:-1], blocks[1:], strict=True))
        assert len(blocks) <= 16


def test_splash_attention_matches_the_dense_reference_in_tpu_interpret_mode():
    from jax.experimental.pallas import tpu as pltpu

    q, k, v = _inputs(3, 200, 8, 2, 16)
    iota = np.arange(200)[None]
    # one batch holding both layouts: whole, left-padded (60 slots), kept tokens first (130 of 200)
    valid = jnp.asarray(np.concatenate([iota >= 0, iota >= 60, iota < 130]))
    want = attention(q, k, v, causal_mask(valid))
    with pltpu.force_tpu_interpret_mode():
        got = causal_attention(q, k, v, valid, "splash")
    _check(got, want, valid)
