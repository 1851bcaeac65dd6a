"""LayerNorm (the audio encoders'); RMSNorm is the decoder's (`models.decoder.rms_norm`)."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def layer_norm(x: jax.Array, w: jax.Array, b: jax.Array, eps: float) -> jax.Array:
    x32 = x.astype(jnp.float32)
    mu = x32.mean(-1, keepdims=True)
    var = jnp.square(x32 - mu).mean(-1, keepdims=True)
    return ((x32 - mu) * jax.lax.rsqrt(var + eps) * w.astype(jnp.float32) + b.astype(jnp.float32)).astype(
        x.dtype
    )
