"""The activation functions a Qwen2.5-Omni config may name, spelled as transformers' `ACT2FN` spells them.

A config naming any other activation is refused when it is read (`models.config`), so a checkpoint never
runs with an activation it was not trained with.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp


def _quick_gelu(x: jax.Array) -> jax.Array:
    return x * jax.nn.sigmoid(1.702 * x)


def _gelu_tanh(x: jax.Array) -> jax.Array:
    # transformers' gelu_new / gelu_pytorch_tanh / gelu_fast: the same tanh approximation.
    return 0.5 * x * (1.0 + jnp.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),  # exact (erf), as torch's default
    "gelu_new": _gelu_tanh,
    "gelu_pytorch_tanh": _gelu_tanh,
    "gelu_fast": _gelu_tanh,
    "quick_gelu": _quick_gelu,
    "relu": jax.nn.relu,
    "silu": jax.nn.silu,
    "swish": jax.nn.silu,
}


def activation(name: str) -> Callable[[jax.Array], jax.Array]:
    """The activation `name` (a key of `ACTIVATIONS`); ValueError for any other."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"activation {name!r} is not implemented; one of {sorted(ACTIVATIONS)}") from None
