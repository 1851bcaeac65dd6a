"""The engine in three layers: the jitted core (`core`: prefill with the pruning step, the decode
loop), host planning (`planning`: buckets, `Plan`, `prepare`) and the public API (`api`).
`scoring` teacher-forces reference answers through the same caches (calibration uses it)."""

from hr_jax.engine.api import (
    GenerateOutput,
    Prefill,
    forward,
    generate,
    generate_batch,
    generate_with,
    prefill,
    release_programs,
    run_prefill,
)
from hr_jax.engine.planning import DEFAULT_PRUNE_LAYER, Plan, PruningSpec, prepare
from hr_jax.engine.sampling import SamplingSpec
from hr_jax.engine.scoring import answer_logprob

__all__ = [
    "DEFAULT_PRUNE_LAYER",
    "GenerateOutput",
    "Plan",
    "Prefill",
    "PruningSpec",
    "SamplingSpec",
    "answer_logprob",
    "forward",
    "generate",
    "generate_batch",
    "generate_with",
    "prefill",
    "prepare",
    "release_programs",
    "run_prefill",
]
