"""The engine as an evaluation run calls it (`GenerateFn`), and a fake of it in `hr_jax.testing`."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from hr_jax.audio import SAMPLE_RATE

GenerateFn = Callable[..., Any]
"""``fn(audios, prompts, *, ratio, method, router, max_new_tokens, mesh, seed) -> GenerateOutput``.

`audios` is a list of 1-D float32 16 kHz arrays, `prompts` a list of str, both of the padded
batch size; the result is ``hr_jax.engine.GenerateOutput`` (its ``kept_positions`` and
``audio_start`` give the kept-token plots). A function may carry a ``release()`` attribute: the
runner calls it when a (method, ratio) pair is done with every task, to free what it compiled.
"""


def engine_generate_fn(model: Any, truncation: bool = True) -> GenerateFn:
    """A :data:`GenerateFn` running ``hr_jax.make_batch`` + ``hr_jax.generate_with`` on `model`.

    The run's mesh comes with each call; the model is placed on it by the logical-axis rules once
    (a no-op when it was loaded there), and the engine shards each batch's rows over ``"data"``.
    With `truncation` (the official pipelines' behaviour) audio over the feature extractor's length is
    cut to it; without, it is taken whole (``make_batch(..., truncation=False)``).
    """
    from hr_jax.batch import make_batch
    from hr_jax.engine import PruningSpec, SamplingSpec, generate_with, release_programs
    from hr_jax.model import on_mesh

    placed: dict[Any, Any] = {}

    def placed_on(mesh) -> Any:
        if mesh not in placed:
            placed[mesh] = on_mesh(model, mesh)
        return placed[mesh]

    limit = model.feature_extractor.max_samples if truncation else None

    def generate(audios, prompts, *, ratio, method, router, max_new_tokens, mesh, seed):
        if limit is not None and any(np.shape(a)[-1] > limit for a in audios):
            # The official pipelines' processor cuts what it cannot take; so does the benchmark run, so
            # that its numbers compare (hr_jax.generate itself refuses such audio).
            seconds = limit / SAMPLE_RATE
            warnings.warn(f"audio over {seconds:.0f} s cut to the feature extractor's limit", stacklevel=2)
            audios = [a[..., :limit] for a in audios]
        batch = make_batch(model, audios, prompts, truncation=truncation)
        pruning = PruningSpec(ratio, method, router, seed=seed)
        return generate_with(placed_on(mesh), batch, pruning, SamplingSpec(max_new_tokens, seed=seed), mesh)

    generate.release = release_programs  # type: ignore[attr-defined]
    return generate
