"""The engine in three layers: the jitted core (`core`: prefill with the pruning step, the decode
loop), host planning (`planning`: buckets, `prepare`) and the public API (`api`). `scoring`
teacher-forces reference answers through the same caches (calibration uses it).

What a user passes:
- `PruningSpec`: how a prefill prunes (ratio, method, router, pruning layer, seed);
- `SamplingSpec`: how decoding picks tokens (new tokens at most, temperature, top-p, seed).
What the engine builds from them, one step after another (internal, named here so they read apart):
- `PrefillKey` (`planning`): the static part of one prefill, the key a program is compiled for;
- `SelectionKey` (`hr_jax.pruning.step`): the static part of the selection step, inside `PrefillKey`;
- `HostBatch` (`planning.plan_batch`): a batch padded to its bucket on the host, with its key;
- `DeviceBatch` (`planning.place_plan`): the same placed on the devices with the parameters, what the
  jitted prefill takes.
"""

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
from hr_jax.engine.planning import DEFAULT_PRUNE_LAYER, PruningSpec, prepare
from hr_jax.engine.sampling import SamplingSpec
from hr_jax.engine.scoring import answer_logprob

__all__ = [
    "DEFAULT_PRUNE_LAYER",
    "GenerateOutput",
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
