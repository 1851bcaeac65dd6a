"""The registry of pruning methods: every name `generate`, `prefill`, `hr-jax eval` and the reports accept.

One entry per method, in the paper's table order (baselines, then HeadRouter and its ablations).
`vanilla` is the unpruned model; every other method prunes at the pruning layer (`hr_jax.selection`
holds how each one scores the audio tokens).
"""

from __future__ import annotations

import dataclasses

VANILLA = "vanilla"


@dataclasses.dataclass(frozen=True)
class Method:
    name: str  # as passed to the API and the CLI
    display: str  # as the paper's tables name it
    family: str  # "unpruned", "baseline" or "headrouter" (HeadRouter and its ablations)


REGISTRY: tuple[Method, ...] = (
    Method(VANILLA, "Vanilla", "unpruned"),
    Method("random", "Random", "baseline"),
    Method("fastv", "FastV", "baseline"),
    Method("dart", "DART", "baseline"),
    Method("frame", "Frame", "baseline"),
    Method("headrouter", "HeadRouter", "headrouter"),
    Method("hard", "Hard Threshold", "headrouter"),
    Method("no_router", "w/o Router", "headrouter"),
    Method("no_prefilter", "w/o Downsampling", "headrouter"),
    Method("semantic", "Semantic profile", "headrouter"),
    Method("acoustic", "Acoustic profile", "headrouter"),
)

ALL_METHODS: tuple[str, ...] = tuple(m.name for m in REGISTRY)  # vanilla included, table order
PRUNING_METHODS: tuple[str, ...] = tuple(m.name for m in REGISTRY if m.family != "unpruned")
DISPLAY_NAMES: dict[str, str] = {m.name: m.display for m in REGISTRY}
