"""The prefill attention implementations agree: blocked (CPU default), rolled (the cuDNN path's
rotation logic run with XLA's kernel) and the dense masked reference."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from models.decoder import attention, attention_blocks, causal_attention, causal_mask


def _inputs(b, length, hq, hkv, hd, seed=0):
    ks = jax.random.split(jax.random.key(seed), 3)
    q = jax.random.normal(ks[0], (b, length, hq, hd))
    k = jax.random.normal(ks[1], (b, length, hkv, hd))
    v = jax.random.normal(ks[2], (b, length, hkv, hd))
    return q, k, v


@pytest.mark.parametrize("length", [40, 200, 333])
@pytest.mark.parametrize("layout", ["left_padded", "prefix_valid", "full"])
@pytest.mark.parametrize("impl", ["blocked", "rolled"])
def test_causal_attention_matches_dense_mask(monkeypatch, length, layout, impl):
    q, k, v = _inputs(3, length, 6, 2, 8)
    iota = np.arange(length)[None]
    counts = np.array([length, length - 17, length // 3])[:, None]
    if layout == "left_padded":
        valid = iota >= length - counts
    elif layout == "prefix_valid":
        valid = iota < counts
    else:
        valid = np.ones((3, length), bool)
    valid = jnp.asarray(valid)
    want = attention(q, k, v, causal_mask(valid))
    monkeypatch.setenv("HR_JAX_ATTENTION", impl)
    got = causal_attention(q, k, v, valid)
    assert got.shape == want.shape
    assert bool(jnp.all(jnp.isfinite(got)))
    # Padding queries' outputs are never read (their keys are masked everywhere); the blocked path
    # reproduces them exactly, the rolled one only keeps them finite.
    rows = np.ones_like(np.asarray(valid)) if impl == "blocked" else np.asarray(valid)
    np.testing.assert_allclose(np.asarray(got)[rows], np.asarray(want)[rows], rtol=2e-5, atol=2e-5)


def test_blocks_cover_the_sequence_with_few_static_shapes():
    for length in (1, 64, 65, 832, 3072, 7552, 40000):
        blocks = attention_blocks(length)
        assert blocks[0][0] == 0 and blocks[-1][1] == length
        assert all(a[1] == b[0] for a, b in zip(blocks[:-1], blocks[1:], strict=True))
        assert len(blocks) <= 16
