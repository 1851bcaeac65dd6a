"""The pruning step before decoder layer M, one entry point for every method: `select_tokens`.

Each method scores the audio tokens from what layer M-1 offers (`LayerView`) and keeps the top
k_b = floor(Na_b (1 - r)) of each row; every real non-audio token is kept, in original order, and the
survivors are gathered to the static length `keep_len` (spare slots -1). Prefill and the routing
benchmark both call `select_tokens`.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import struct

from hr_jax.pruning.baselines import fastv_keep, frame_keep, random_keep
from hr_jax.pruning.dart import dart_keep
from hr_jax.pruning.headrouter import headrouter_keep
from hr_jax.pruning.methods import PRUNING_METHODS, is_routed, method
from hr_jax.pruning.router import RouterArrays
from hr_jax.pruning.slots import Slots, kept_sequence
from models.config import TextConfig
from models.params import DecoderLayerParams


@dataclasses.dataclass(frozen=True)
class SelectionKey:
    """Everything static about one selection step (hashable: part of the jitted prefill's key).

    method: one of `PRUNING_METHODS`; audio_cap / text_cap: audio and text-after-audio slots per row;
    keep_cap: most audio tokens a row keeps (floor(audio_cap (1 - r))); keep_len: sequence slots
    after pruning (L'); prefilter: HeadRouter's frame pre-filter lambda (None: off).
    """

    method: str
    audio_cap: int
    text_cap: int
    keep_cap: int
    keep_len: int
    prefilter: float | None = None

    def __post_init__(self) -> None:
        if self.method not in PRUNING_METHODS:
            raise ValueError(
                f"unknown pruning method {self.method!r}; choose from {', '.join(PRUNING_METHODS)}"
            )


@struct.dataclass
class LayerView:
    """What layer M-1 offers the scorers (sequence arrays `[B, L, ...]`).

    weights: layer M-1's (unstacked) weights; h_in / h_out: its input / output `[B, L, D]`;
    keys: its keys after RoPE `[B, L, Hkv, hd]`; final_norm: the model's last RMSNorm weight `[D]`.
    """

    weights: DecoderLayerParams
    h_in: jax.Array
    h_out: jax.Array
    keys: jax.Array
    final_norm: jax.Array


@struct.dataclass
class Selection:
    """The outcome of the step. kept: `[B, keep_len]` sequence indices of the survivors (ascending,
    -1 unused); num_audio, kept_audio `[B]`; spread `[B]`, alpha `[B, 3]`, selectivity `[B, Hq]`
    (HeadRouter methods; zeros otherwise)."""

    kept: jax.Array
    num_audio: jax.Array
    kept_audio: jax.Array
    spread: jax.Array
    alpha: jax.Array
    selectivity: jax.Array


def select_tokens(
    spec: SelectionKey,
    cfg: TextConfig,
    view: LayerView,
    is_audio: jax.Array,
    valid: jax.Array,
    positions: jax.Array,
    keep_k: jax.Array,
    router: RouterArrays,
    key: jax.Array,
) -> Selection:
    """Runs `spec.method` over a batch. is_audio / valid / positions `[B, L]` (original positions);
    keep_k `[B]` audio tokens to keep per row; router: HeadRouter's numbers (ignored by baselines);
    key: the `random` baseline's PRNG key."""
    bsz = valid.shape[0]
    slots = Slots.from_tokens(is_audio, valid, spec.audio_cap, spec.text_cap)
    spread = jnp.zeros((bsz,), jnp.float32)
    alpha = jnp.zeros((bsz, 3), jnp.float32)
    sel = jnp.zeros((bsz, cfg.num_attention_heads), jnp.float32)
    name = spec.method
    if is_routed(name):
        keep, spread, alpha, sel = headrouter_keep(
            view.h_in, view.weights, cfg, slots, keep_k, spec.keep_cap, router, method(name).routing,
            spec.prefilter,
        )  # fmt: skip
    elif name == "random":
        keep = random_keep(key, slots, keep_k, spec.keep_cap)
    elif name == "frame":
        keep = frame_keep(slots, keep_k, spec.keep_cap)
    elif name == "fastv":
        keep = fastv_keep(
            view.h_in, view.weights, cfg, view.keys, positions, valid, slots, keep_k, spec.keep_cap
        )
    elif name == "dart":
        keep = dart_keep(view.keys, view.h_out, view.final_norm, cfg.rms_norm_eps, slots, keep_k)
    else:  # pragma: no cover - SelectionKey validates the name
        raise ValueError(f"unknown pruning method {name!r}")
    kept, kept_audio = kept_sequence(keep, slots, is_audio, valid, spec.keep_len)
    return Selection(kept, slots.num_audio, kept_audio, spread, alpha, sel)
