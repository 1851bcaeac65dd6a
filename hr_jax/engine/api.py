"""The public API: `forward`, `prefill`, `generate_batch`, `generate`, over the jitted core.

The keyword arguments of the public functions are gathered once into a `PruningSpec` and a
`SamplingSpec`; `run_prefill` and `generate_with` take the specs (the evaluation runner, calibration
and the benchmarks call those).
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from collections.abc import Sequence

import jax
import numpy as np
from jax.sharding import Mesh

from hr_jax.batch import AudioInput, Batch, make_batch
from hr_jax.engine import buckets
from hr_jax.engine.core import (
    PrefillState,
    decode_core,
    decode_weights_core,
    forward_core,
    prefill_core,
    prefill_embeds_core,
    run_decode,
)
from hr_jax.engine.planning import DeviceBatch, PruningSpec, place, prefill_attention, prepare
from hr_jax.engine.sampling import SamplingSpec
from hr_jax.model import Model
from hr_jax.prompt import DEFAULT_PROMPT, FAMILY_DEFAULT
from hr_jax.pruning.methods import is_routed
from models.decoder import resolve_decode_layout


@dataclasses.dataclass(frozen=True)
class Prefill:
    """Host view of a prefill: logits `[B, V]` at the last real token of each row,
    kept_positions `[B, L']` (indices into the row of `batch.input_ids`, ascending, -1 unused),
    spread `[B]`, alpha `[B, 3]` (semantic, uniform, acoustic) and per-head selectivity `[B, Hq]`
    for HeadRouter methods, else None; num_audio, kept_audio `[B]`."""

    logits: np.ndarray
    kept_positions: np.ndarray
    spread: np.ndarray | None
    alpha: np.ndarray | None
    selectivity: np.ndarray | None
    num_audio: np.ndarray
    kept_audio: np.ndarray


@dataclasses.dataclass(frozen=True)
class GenerateOutput:
    """What `generate_batch` returns, per row: texts, token ids (stop token included) and their count,
    audio tokens before/after pruning, kept_positions `[B, L']` (as `Prefill`), alpha `[B, 3]` / spread
    `[B]` (HeadRouter methods, else None), audio_start `[B]` (index of the first audio token in the
    row's input_ids, -1 if none); and the prefill / decode wall times in seconds."""

    texts: list[str]
    token_ids: list[list[int]]
    num_generated: np.ndarray
    num_audio: np.ndarray
    kept_audio: np.ndarray
    kept_positions: np.ndarray
    alpha: np.ndarray | None
    spread: np.ndarray | None
    audio_start: np.ndarray
    prefill_s: float
    decode_s: float


def release_programs() -> None:
    """Drops every compiled program of the engine (prefill, decode loop, forward); their executables
    are freed and the next call of a shape compiles again. A long sweep calls it between (method,
    ratio) pairs so that its live programs stay bounded: XLA:CPU maps each loaded executable's code,
    and thousands of them exhaust the kernel's memory-map limit (`vm.max_map_count`)."""
    for fn in (prefill_core, prefill_embeds_core, decode_core, decode_weights_core, forward_core):
        fn.clear_cache()


def forward(model: Model, batch: Batch) -> np.ndarray:
    """Unpruned logits at every position `[B, L, V]` (float32) — for parity checks. Sharded over the
    model's mesh, if it has one."""
    arrays = (batch.input_ids, batch.attention_mask, batch.input_features, batch.feature_attention_mask)
    logits = forward_core(model.params, model.config, *place(arrays, model.mesh), prefill_attention(model))
    return np.asarray(logits)[: batch.input_ids.shape[0]]


def run_prefill(
    model: Model, batch: Batch, spec: PruningSpec, cache_extra: int = 0, mesh: Mesh | None = None
) -> tuple[PrefillState, DeviceBatch]:
    """The jitted prefill of `batch` under `spec`, with `cache_extra` free cache slots; returns the
    device state and what `prepare` made of the batch."""
    p = prepare(model, batch, spec, cache_extra, mesh)
    return prefill_core(p.params, model.config, p.plan, p.inputs, p.router, p.key), p


def _kept_positions(state: PrefillState, p: DeviceBatch) -> np.ndarray:
    kept = _rows(state.selection.kept, p)
    return np.where(kept >= 0, kept - p.shift, -1)


def _rows(x: jax.Array, p: DeviceBatch) -> np.ndarray:
    """The caller's rows of a `[B_padded, ...]` device array, on the host."""
    return np.asarray(x)[: p.rows]


def prefill(
    model: Model,
    batch: Batch,
    ratio: float = 0.0,
    method: str = "headrouter",
    *,
    router=None,
    prune_layer: int | None = None,
    seed: int = 0,
) -> Prefill:
    """Runs the (pruned) prefill. See `Prefill` for the outputs."""
    spec = PruningSpec(ratio, method, router, prune_layer, seed)
    state, p = run_prefill(model, batch, spec)
    sel = state.selection
    routed = is_routed(p.plan.method)
    return Prefill(
        logits=_rows(state.logits, p),
        kept_positions=_kept_positions(state, p),
        spread=_rows(sel.spread, p) if routed else None,
        alpha=_rows(sel.alpha, p) if routed else None,
        selectivity=_rows(sel.selectivity, p) if routed else None,
        num_audio=_rows(sel.num_audio, p),
        kept_audio=_rows(sel.kept_audio, p),
    )


def audio_starts(input_ids: np.ndarray, audio_token_id: int) -> np.ndarray:
    """Per row, the index of the first audio token in `input_ids [B, L]` (-1 if none)."""
    is_audio = np.asarray(input_ids) == audio_token_id
    return np.where(is_audio.any(axis=1), is_audio.argmax(axis=1), -1)


def rope_switch_step(model: Model, batch: Batch, max_new_tokens: int) -> int | None:
    """With LongRoPE (Phi-4), the number of tokens generated when the sequence first reaches
    `original_max_position_embeddings + 1` tokens, if that happens within `max_new_tokens` of a prompt
    that fits below it: transformers then recomputes the whole cache with the long factors
    (`prepare_inputs_for_generation`), and so does `generate_with`. None otherwise."""
    longrope = model.config.text.longrope
    if longrope is None:
        return None
    length = batch.input_ids.shape[1]
    switch = longrope.original_max_position_embeddings + 1 - length
    return switch if 0 < switch < max_new_tokens else None


def _continue_after_switch(
    model: Model,
    batch: Batch,
    first: GenerateOutput,
    pruning: PruningSpec,
    sampling: SamplingSpec,
    mesh: Mesh | None,
) -> GenerateOutput:
    """`first` (the tokens before the LongRoPE switch), then a fresh prefill of prompt + those tokens
    (every key recomputed with the long factors, pruning re-run on the longer prompt, as transformers'
    recomputed forward does) and the rest of the tokens."""
    stops = set(model.stop_token_ids)
    done = [bool(ids) and ids[-1] in stops for ids in first.token_ids]  # a row's stop token ends it
    n = max(len(ids) for ids in first.token_ids)
    grown = np.full((batch.size, n), model.pad_token_id, np.int32)
    for b, ids in enumerate(first.token_ids):
        grown[b, : len(ids)] = ids
    longer = Batch(
        np.concatenate([batch.input_ids, grown], axis=1),
        np.concatenate([batch.attention_mask, np.ones_like(grown)], axis=1),
        batch.input_features,
        batch.feature_attention_mask,
    )
    rest = dataclasses.replace(sampling, max_new_tokens=sampling.max_new_tokens - n)
    second = generate_with(model, longer, pruning, rest, mesh)
    token_ids = [a if d else a + b for a, b, d in zip(first.token_ids, second.token_ids, done, strict=True)]
    texts = [
        model.tokenizer.decode([t for t in r if t not in stops], skip_special_tokens=True) for r in token_ids
    ]
    return dataclasses.replace(
        first,
        texts=texts,
        token_ids=token_ids,
        num_generated=np.array([len(r) for r in token_ids]),
        decode_s=first.decode_s + second.prefill_s + second.decode_s,
    )


def generate_with(
    model: Model, batch: Batch, pruning: PruningSpec, sampling: SamplingSpec, mesh: Mesh | None = None
) -> GenerateOutput:
    """Generates for every row of `batch`, sharded over `mesh` (default the model's own, if any)."""
    switch = rope_switch_step(model, batch, sampling.max_new_tokens)
    if switch is not None:
        before = dataclasses.replace(sampling, max_new_tokens=switch)
        first = generate_with(model, batch, pruning, before, mesh)
        return _continue_after_switch(model, batch, first, pruning, sampling, mesh)
    t0 = time.perf_counter()
    # Cache room is bucketed so that prefill compiles once for any max_new_tokens in the bucket.
    extra = buckets.round_up(sampling.max_new_tokens, buckets.DECODE_MULTIPLE)
    state, p = run_prefill(model, batch, pruning, extra, mesh)
    jax.block_until_ready(state.logits)
    t1 = time.perf_counter()
    sel = state.selection
    routed = is_routed(p.plan.method)
    kept = _kept_positions(state, p)
    spread, alpha = (_rows(sel.spread, p), _rows(sel.alpha, p)) if routed else (None, None)
    num_audio, kept_audio = _rows(sel.num_audio, p), _rows(sel.kept_audio, p)
    with warnings.catch_warnings():
        # CPU backends cannot donate; the cache is still consumed.
        warnings.filterwarnings("ignore", message="Some donated buffers were not usable")
        tokens, count = run_decode(
            p.params,
            model.config,
            state,
            jax.random.key(sampling.seed + 1),
            resolve_decode_layout(model.options.decode_layout),
            max_new=sampling.max_new_tokens,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            stop_ids=model.stop_token_ids,
            pad_id=model.pad_token_id,
        )
    tokens, count = _rows(tokens, p), _rows(count, p)
    t2 = time.perf_counter()
    stops = set(model.stop_token_ids)
    token_ids = [[int(t) for t in row[:n]] for row, n in zip(tokens, count, strict=True)]
    texts = [
        model.tokenizer.decode([t for t in r if t not in stops], skip_special_tokens=True) for r in token_ids
    ]
    return GenerateOutput(
        texts=texts,
        token_ids=token_ids,
        num_generated=count,
        num_audio=num_audio,
        kept_audio=kept_audio,
        kept_positions=kept,
        alpha=alpha,
        spread=spread,
        audio_start=audio_starts(batch.input_ids, model.config.audio_token_id),
        prefill_s=t1 - t0,
        decode_s=t2 - t1,
    )


def generate_batch(
    model: Model,
    batch: Batch,
    ratio: float = 0.0,
    *,
    max_new_tokens: int = 128,
    method: str = "headrouter",
    router=None,
    temperature: float = 0.0,
    top_p: float = 1.0,
    seed: int = 0,
    prune_layer: int | None = None,
    mesh: Mesh | None = None,
) -> GenerateOutput:
    """Generates for every row of `batch`; with `mesh` (axis "data") the batch is split over devices."""
    sampling = SamplingSpec(max_new_tokens, temperature, top_p, seed)
    return generate_with(model, batch, PruningSpec(ratio, method, router, prune_layer, seed), sampling, mesh)


def generate(
    model: Model,
    audio: AudioInput | Sequence[AudioInput],
    ratio: float = 0.0,
    *,
    prompt: str | Sequence[str] = DEFAULT_PROMPT,
    method: str = "headrouter",
    router=None,
    max_new_tokens: int = 128,
    temperature: float = 0.0,
    top_p: float = 1.0,
    seed: int = 0,
    system_prompt: str | None | object = FAMILY_DEFAULT,
    prune_layer: int | None = None,
    truncation: bool = True,
) -> str | list[str]:
    """Text from audio. A single audio (path, waveform, or (waveform, rate)) gives a str; a list
    gives a list. `ratio` is the share of audio tokens pruned before layer M. `truncation=False` takes
    audio longer than the feature extractor's length (Qwen2.5-Omni's 300 s), up to the decoder's
    position range (`make_batch`)."""
    pruning = PruningSpec(
        ratio, method, router, prune_layer, seed
    )  # bad arguments fail before any audio work
    sampling = SamplingSpec(max_new_tokens, temperature, top_p, seed)
    single = isinstance(audio, (str, np.ndarray, tuple)) or hasattr(audio, "__fspath__")
    audios = [audio] if single else list(audio)
    prompts = prompt if isinstance(prompt, str) else list(prompt)
    batch = make_batch(model, audios, prompts, system_prompt, truncation=truncation)
    out = generate_with(model, batch, pruning, sampling)
    return out.texts[0] if single else out.texts
