"""Prefill attention on TPU: the Pallas splash-attention kernel that ships with JAX
(`jax.experimental.pallas.ops.tpu.splash_attention`), causal, with padding as segment ids.

GQA without repeating K/V: each KV head runs the kernel's multi-query form over its group of query
heads (`make_splash_mqa`), in a loop over batch rows and KV heads. Valid slots are segment 1 and padding
slots segment 0, so a valid query sees exactly the valid keys at or before it (the semantics of
`models.attention`), and a padding query sees padding only (finite, never read). The sequence is padded
to a multiple of the kernel's block with more padding. On a CPU the kernel runs in Pallas' TPU
interpret mode (`jax.experimental.pallas.tpu.force_tpu_interpret_mode`), which is how it is tested.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

BLOCK = 128  # the kernel's query and key block (its default)


def _kernel(length: int, group: int):
    from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_kernel as sk
    from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_mask as sm

    mask = sm.MultiHeadMask([sm.CausalMask((length, length)) for _ in range(group)])
    blocks = sk.BlockSizes(block_q=BLOCK, block_kv=BLOCK, block_kv_compute=BLOCK)
    return sk.make_splash_mqa_single_device(mask, block_sizes=blocks), sk.SegmentIds


def splash_attention(q: jax.Array, k: jax.Array, v: jax.Array, valid: jax.Array) -> jax.Array:
    """q `[B, L, Hq, hd]`, k/v `[B, L, Hkv, hd]`, valid `[B, L]` -> `[B, L, Hq, hd]`."""
    b, length, hq, hd = q.shape
    hkv = k.shape[2]
    g = hq // hkv
    lp = -(-length // BLOCK) * BLOCK
    pad = ((0, 0), (0, lp - length), (0, 0), (0, 0))
    qs = jnp.pad((q.astype(jnp.float32) * (1.0 / math.sqrt(hd))).astype(q.dtype), pad)
    # [B, Hkv, G, L, hd] queries; [B, Hkv, L, hd] keys and values
    qg = qs.reshape(b, lp, hkv, g, hd).transpose(0, 2, 3, 1, 4)
    kt, vt = (jnp.pad(x, pad).transpose(0, 2, 1, 3) for x in (k, v))
    seg = jnp.pad(valid, ((0, 0), (0, lp - length))).astype(jnp.int32)  # [B, L]: 1 valid, 0 padding
    kernel, segment_ids = _kernel(lp, g)

    def one(x: tuple[jax.Array, ...]) -> jax.Array:
        qh, kh, vh, s = x
        return kernel(qh, kh, vh, segment_ids=segment_ids(q=s, kv=s))

    # a loop over (row, KV head), not vmap: a pallas_call has no batching rule in interpret mode, and
    # on a TPU each call already fills the chip with its group's heads and blocks
    flat = (qg.reshape(b * hkv, g, lp, hd), kt.reshape(b * hkv, lp, hd), vt.reshape(b * hkv, lp, hd),
            jnp.repeat(seg, hkv, axis=0))  # fmt: skip
    out = jax.lax.map(one, flat).reshape(b, hkv, g, lp, hd)
    out = out.transpose(0, 3, 1, 2, 4).reshape(b, lp, hq, hd)[:, :length]
    return out.astype(q.dtype)
