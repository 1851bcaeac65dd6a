"""Host-side planning: from a batch and a `PruningSpec` to the static `PrefillKey` and the device inputs of
the jitted core (`prepare`).

Every jitted entry point compiles once per bucket (`hr_jax.engine.buckets`): batch size, padded
sequence length, mel frames, audio and text slots, decode room, ratio and method. Audio content and
per-row lengths inside a bucket never recompile.
"""

from __future__ import annotations

import dataclasses
import math
import os
import warnings
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jax.sharding import Mesh

from hr_jax.batch import Batch
from hr_jax.engine import buckets
from hr_jax.model import Model, on_mesh
from hr_jax.pruning import VANILLA, Router, RouterArrays, SelectionKey
from hr_jax.pruning.methods import ALL_METHODS, is_routed
from hr_jax.sharding import DATA, CacheSharding, axis_size, batch_sharding, pad_rows
from models.attention import resolve_attention
from models.family import ModelParams, family_of

DEFAULT_PRUNE_LAYER = 2


@dataclasses.dataclass(frozen=True)
class PruningSpec:
    """How a prefill prunes. ratio: share of audio tokens dropped, in [0, 1) (0 is the unpruned model
    whatever the method); method: a name of `hr_jax.pruning.methods`; router: a `Router`, a router
    file, or None (uniform profiles); prune_layer: M (None: the router's, else 2); seed: the `random`
    baseline's PRNG seed."""

    ratio: float = 0.0
    method: str = "headrouter"
    router: Router | str | os.PathLike | None = None
    prune_layer: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "ratio", check_ratio(self.ratio))
        if self.method not in ALL_METHODS:
            raise ValueError(f"unknown method {self.method!r}; choose from {', '.join(ALL_METHODS)}")
        if self.method == VANILLA and self.ratio != 0.0:
            raise ValueError(f"method {VANILLA!r} is the unpruned model; got ratio {self.ratio}")

    @property
    def prunes(self) -> bool:
        return self.ratio > 0.0


@dataclasses.dataclass(frozen=True)
class PrefillKey:
    """Everything static about one prefill (hashable; the jitted core's compile key with the shapes).

    prune_layer: M (the caches split there); cache_extra: free cache slots for decoding;
    selection: the pruning step, None for the unpruned model; cache_sharding: where the KV caches
    live on the model's mesh (None: wherever XLA puts them, one device); attention: the concrete
    prefill attention kernel (`models.attention.resolve_attention` of the model's options).
    """

    prune_layer: int
    cache_extra: int
    selection: SelectionKey | None
    cache_sharding: CacheSharding | None = None
    attention: str = "streaming"

    @property
    def method(self) -> str:
        return VANILLA if self.selection is None else self.selection.method


@struct.dataclass
class PrefillInputs:
    """The bucket-padded batch on device: input_ids / attention_mask `[B, L]`, input_features
    `[B, mel, T]`, feature_attention_mask `[B, T]`, and keep_k `[B]` audio tokens to keep per row."""

    input_ids: jax.Array
    attention_mask: jax.Array
    input_features: jax.Array
    feature_attention_mask: jax.Array
    keep_k: jax.Array


@dataclasses.dataclass(frozen=True)
class DeviceBatch:
    """What the jitted prefill takes: the plan, the inputs, the router's arrays and the PRNG key, and
    the parameters (placed on the mesh, if any); `shift` is the left padding the bucket added, `rows`
    the caller's rows (the inputs may hold more: padding to a multiple of the mesh's data axis)."""

    plan: PrefillKey
    inputs: PrefillInputs
    router: RouterArrays
    key: jax.Array
    shift: int
    params: ModelParams
    rows: int


def check_ratio(ratio: float) -> float:
    ratio = float(ratio)
    if not (0.0 <= ratio < 1.0) or math.isnan(ratio):
        raise ValueError(f"ratio must be in [0, 1), got {ratio}")
    return ratio


def keep_counts(num_audio: np.ndarray, ratio: float) -> np.ndarray:
    """k = floor(Na · (1 − r)) per row (Eq. 4)."""
    return np.array([math.floor(int(n) * (1.0 - ratio)) for n in num_audio], np.int32)


_warned_uniform = False


def resolve_router(model: Model, spec: PruningSpec, warn: bool = True) -> tuple[Router, int]:
    """(Router, prune_layer) of a spec: loads router files; without one, the checkpoint's own router
    (`Model.router_path`), else uniform profiles (with a warning, once, for HeadRouter methods)."""
    global _warned_uniform
    heads = model.config.text.num_attention_heads
    router = spec.router if spec.router is not None else model.router_path
    if router is None:
        m = DEFAULT_PRUNE_LAYER if spec.prune_layer is None else spec.prune_layer
        if is_routed(spec.method) and warn and not _warned_uniform:
            warnings.warn(
                "HeadRouter without a router file: using uniform head profiles. Calibrate one with "
                "`hr-jax calibrate` for real semantic/acoustic profiles.",
                stacklevel=3,
            )
            _warned_uniform = True
        return Router.uniform(model.name or "unknown", m, heads), m
    if not isinstance(router, Router):
        router = Router.load(router)
    if router.num_heads != heads:
        raise ValueError(f"router has {router.num_heads} heads, the model has {heads}")
    return router, router.prune_layer if spec.prune_layer is None else spec.prune_layer


def pad_to_buckets(model: Model, batch: Batch) -> Batch:
    """Left-pads tokens to the sequence bucket and trims/pads mel frames to the frame bucket."""
    cfg = model.config
    rate = family_of(cfg).tokens_per_second
    seq = buckets.token_bucket(batch.input_ids.shape[1], buckets.SEQ_MULTIPLE, rate)
    pad = seq - batch.input_ids.shape[1]
    ids = np.pad(batch.input_ids, ((0, 0), (pad, 0)), constant_values=model.pad_token_id)
    mask = np.pad(batch.attention_mask, ((0, 0), (pad, 0)))
    frames = buckets.frame_bucket(
        int(batch.feature_attention_mask.sum(1).max()), family_of(cfg).frame_multiple(cfg)
    )
    feats, fmask = batch.input_features, batch.feature_attention_mask
    if feats.shape[2] >= frames:
        feats, fmask = feats[:, :, :frames], fmask[:, :frames]
    else:
        extra = frames - feats.shape[2]
        feats = np.pad(feats, ((0, 0), (0, 0), (0, extra)))
        fmask = np.pad(fmask, ((0, 0), (0, extra)))
    return Batch(
        ids.astype(np.int32), mask.astype(np.int32), feats.astype(np.float32), fmask.astype(np.int32)
    )


def audio_counts(model: Model, batch: Batch) -> np.ndarray:
    """`[B]` audio tokens per row, checked against what the features give."""
    valid = batch.attention_mask.astype(bool)
    na = ((batch.input_ids == model.config.audio_token_id) & valid).sum(1)
    frames = batch.feature_attention_mask.sum(1)
    family = family_of(model.config)
    expected = np.array([family.num_audio_tokens(model.config, int(f)) if f > 0 else 0 for f in frames])
    if not np.array_equal(na, expected):
        raise ValueError(f"audio tokens per row {na.tolist()} do not match the features' {expected.tolist()}")
    return na


def make_plan(
    model: Model, batch: Batch, spec: PruningSpec, prune_layer: int, prefilter: float | None, cache_extra: int
) -> tuple[PrefillKey, np.ndarray]:
    """The static plan for a (bucket-padded) batch, and keep counts `[B]`."""
    seq = batch.input_ids.shape[1]
    n_layers = model.config.text.num_hidden_layers
    if not spec.prunes:
        # Nothing is pruned, so M only splits the caches: any split gives the same numerics, and a
        # model with at most M layers simply keeps every layer below it.
        prune_layer = min(prune_layer, n_layers)
    elif not 1 <= prune_layer < n_layers:
        raise ValueError(f"prune layer must be in [1, {n_layers}), got {prune_layer}")
    na = audio_counts(model, batch)
    keep = keep_counts(na, spec.ratio)
    if not spec.prunes:
        return PrefillKey(prune_layer, cache_extra, None, attention=prefill_attention(model)), keep
    if np.any((na > 0) & (keep == 0)):
        bad = int(np.flatnonzero((na > 0) & (keep == 0))[0])
        raise ValueError(f"ratio {spec.ratio} leaves no audio token in row {bad} ({na[bad]} audio tokens)")
    valid = batch.attention_mask.astype(bool)
    is_audio = (batch.input_ids == model.config.audio_token_id) & valid
    last_audio = np.where(is_audio.any(1), seq - 1 - np.argmax(is_audio[:, ::-1], axis=1), -1)
    after = valid & ~is_audio & (np.arange(seq)[None] > last_audio[:, None])
    rate = family_of(model.config).tokens_per_second
    audio_cap = min(seq, buckets.token_bucket(int(na.max()), buckets.AUDIO_MULTIPLE, rate))
    text_cap = min(seq, buckets.round_up(int(after.sum(1).max()), buckets.TEXT_MULTIPLE))
    non_audio_cap = min(seq, buckets.round_up(int((valid.sum(1) - na).max()), buckets.TEXT_MULTIPLE))
    keep_cap = math.floor(audio_cap * (1.0 - spec.ratio))
    selection = SelectionKey(
        method=spec.method,
        audio_cap=audio_cap,
        text_cap=text_cap,
        keep_cap=keep_cap,
        keep_len=min(seq, non_audio_cap + keep_cap),
        prefilter=prefilter,
    )
    return PrefillKey(prune_layer, cache_extra, selection, attention=prefill_attention(model)), keep


def prefill_attention(model: Model) -> str:
    """The concrete prefill attention kernel for `model` on this platform (its `options.attention`)."""
    return resolve_attention(model.options.attention, model.dtype)


def place(arrays: Sequence[np.ndarray], mesh: Mesh | None) -> list[jax.Array]:
    """Host arrays `[B, ...]` on device: split along rows over `mesh`'s "data" axis when given (padded
    to a multiple of it by repeating the last row; the caller keeps only its own rows)."""
    if mesh is None:
        return [jnp.asarray(a) for a in arrays]
    sharding = batch_sharding(mesh)
    return [jax.device_put(a, sharding) for a in pad_rows(arrays, axis_size(mesh, DATA))]


@dataclasses.dataclass(frozen=True)
class HostBatch:
    """`prepare`'s host half: the plan, the bucket-padded host arrays (input_ids, attention_mask,
    input_features, feature_attention_mask, keep_k), the router, the left padding the bucket added and
    the caller's rows."""

    plan: PrefillKey
    arrays: tuple[np.ndarray, ...]
    router: Router
    shift: int
    rows: int


def plan_batch(
    model: Model, batch: Batch, spec: PruningSpec, cache_extra: int = 0, mesh: Mesh | None = None
) -> HostBatch:
    """Buckets the batch and plans its prefill, on the host (no device work)."""
    router, m = resolve_router(model, spec, warn=spec.prunes)
    prefilter = router.prefilter_for(spec.method) if is_routed(spec.method) else None
    padded = pad_to_buckets(model, batch)
    plan, keep = make_plan(model, padded, spec, m, prefilter, cache_extra)
    if mesh is not None:
        kv = CacheSharding.for_mesh(mesh, model.config.text.num_key_value_heads)
        plan = dataclasses.replace(plan, cache_sharding=kv)
    arrays = (
        padded.input_ids,
        padded.attention_mask,
        padded.input_features,
        padded.feature_attention_mask,
        keep,
    )
    shift = padded.input_ids.shape[1] - batch.input_ids.shape[1]
    return HostBatch(plan, arrays, router, shift, batch.input_ids.shape[0])


def place_plan(model: Model, host: HostBatch, spec: PruningSpec, mesh: Mesh | None = None) -> DeviceBatch:
    """`prepare`'s device half: the planned inputs, router arrays and key on device (split over the rows
    of `mesh`), the parameters on the mesh."""
    return DeviceBatch(
        plan=host.plan,
        inputs=PrefillInputs(*place(host.arrays, mesh)),
        router=RouterArrays.from_router(host.router),
        key=jax.random.key(spec.seed),
        shift=host.shift,
        params=on_mesh(model, mesh).params,
        rows=host.rows,
    )


def prepare(
    model: Model, batch: Batch, spec: PruningSpec, cache_extra: int = 0, mesh: Mesh | None = None
) -> DeviceBatch:
    """Buckets the batch, plans the prefill and places its inputs: split over the rows of `mesh` (default
    the model's own, `Model.mesh`) with the parameters on it by the logical-axis rules.
    `cache_extra`: free KV-cache slots to allocate for decoding."""
    mesh = mesh if mesh is not None else model.mesh
    return place_plan(model, plan_batch(model, batch, spec, cache_extra, mesh), spec, mesh)
