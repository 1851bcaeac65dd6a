"""Next-token choice: greedy at temperature 0, else temperature + nucleus (top-p) sampling."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class SamplingSpec:
    """How generation picks tokens: at most `max_new_tokens` (the stop token included); greedy at
    `temperature` 0, else temperature and nucleus (`top_p`) sampling from `seed`."""

    max_new_tokens: int = 128
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.temperature < 0 or not 0 < self.top_p <= 1:
            raise ValueError(
                f"need temperature >= 0 and 0 < top_p <= 1, got {self.temperature}, {self.top_p}"
            )
        object.__setattr__(self, "temperature", float(self.temperature))
        object.__setattr__(self, "top_p", float(self.top_p))


def sample_tokens(logits: jax.Array, key: jax.Array, temperature: float, top_p: float) -> jax.Array:
    """logits `[B, V]` (float32) -> token ids `[B]`. `temperature`/`top_p` are static."""
    if temperature == 0.0:
        return jnp.argmax(logits, axis=-1).astype(jnp.int32)
    logits = logits.astype(jnp.float32) / temperature
    if top_p < 1.0:
        order = jnp.argsort(-logits, axis=-1)
        sorted_logits = jnp.take_along_axis(logits, order, axis=-1)
        probs = jax.nn.softmax(sorted_logits, axis=-1)
        # Keep the smallest prefix whose mass reaches top_p (the top token always survives).
        before = jnp.cumsum(probs, axis=-1) - probs
        sorted_logits = jnp.where(before < top_p, sorted_logits, -jnp.inf)
        logits = (
            jnp.full_like(logits, -jnp.inf).at[jnp.arange(logits.shape[0])[:, None], order].set(sorted_logits)
        )
    return jax.random.categorical(key, logits, axis=-1).astype(jnp.int32)


def row_keys(seed: jax.Array, count: jax.Array) -> jax.Array:
    """One PRNG key per row `[B]`: row b's `count[b]`-th draw from its own `seed[b]`."""
    return jax.vmap(lambda s, c: jax.random.fold_in(jax.random.key(s), c))(seed, count)


def sample_rows(logits: jax.Array, keys: jax.Array, temperature: jax.Array, top_p: jax.Array) -> jax.Array:
    """As `sample_tokens`, with each row's own settings (a server's slots): logits `[B, V]`, keys,
    temperature and top_p `[B]` (arrays: one program serves every setting). Rows at temperature 0
    are greedy; the sort that nucleus sampling needs runs only when some row samples."""
    greedy = jnp.argmax(logits, axis=-1).astype(jnp.int32)

    def sampled() -> jax.Array:
        x = logits.astype(jnp.float32) / jnp.where(temperature > 0, temperature, 1.0)[:, None]
        order = jnp.argsort(-x, axis=-1)
        sorted_x = jnp.take_along_axis(x, order, axis=-1)
        probs = jax.nn.softmax(sorted_x, axis=-1)
        before = jnp.cumsum(probs, axis=-1) - probs
        keep = (before < top_p[:, None]) | (top_p[:, None] >= 1.0)
        sorted_x = jnp.where(keep, sorted_x, -jnp.inf)
        x = jnp.full_like(x, -jnp.inf).at[jnp.arange(x.shape[0])[:, None], order].set(sorted_x)
        return jax.vmap(jax.random.categorical)(keys, x).astype(jnp.int32)

    drawn = jax.lax.cond(jnp.any(temperature > 0), sampled, lambda: greedy)
    return jnp.where(temperature > 0, drawn, greedy)
