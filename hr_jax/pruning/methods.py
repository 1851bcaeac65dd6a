"""The registry of pruning methods: every name `generate`, `prefill`, `hr-jax eval` and the reports accept.

One entry per method, in the paper's table order (baselines, then HeadRouter and its ablations).
`vanilla` is the unpruned model (and any method at ratio 0 is vanilla); every other method prunes
at the pruning layer. HeadRouter's ablations are HeadRouter with another routing mode
(`hr_jax.pruning.headrouter.routing_alpha`) or without the frame pre-filter.
"""

from __future__ import annotations

import dataclasses

VANILLA = "vanilla"
HEADROUTER = "headrouter"  # the method, with the paper's defaults


@dataclasses.dataclass(frozen=True)
class Method:
    name: str  # as passed to the API and the CLI
    display: str  # as the paper's tables name it
    kind: str  # "unpruned", "baseline" or "headrouter" (HeadRouter and its ablations)
    routing: str | None = None  # HeadRouter kind: "soft" (Eq. 13), "hard", or one fixed profile
    prefilter: bool = False  # HeadRouter kind: whether the frame pre-filter runs


REGISTRY: tuple[Method, ...] = (
    Method(VANILLA, "Vanilla", "unpruned"),
    Method("random", "Random", "baseline"),
    Method("fastv", "FastV", "baseline"),
    Method("dart", "DART", "baseline"),
    Method("frame", "Frame", "baseline"),
    Method(HEADROUTER, "HeadRouter", "headrouter", "soft", True),
    Method("hard", "Hard Threshold", "headrouter", "hard", True),
    Method("no_router", "w/o Router", "headrouter", "uniform", True),  # probe and pre-filter kept
    Method("no_prefilter", "w/o Downsampling", "headrouter", "soft", False),
    Method("semantic", "Semantic profile", "headrouter", "semantic", True),
    Method("acoustic", "Acoustic profile", "headrouter", "acoustic", True),
)

ALL_METHODS: tuple[str, ...] = tuple(m.name for m in REGISTRY)  # vanilla included, table order
PRUNING_METHODS: tuple[str, ...] = tuple(m.name for m in REGISTRY if m.kind != "unpruned")
HEADROUTER_METHODS: tuple[str, ...] = tuple(m.name for m in REGISTRY if m.kind == "headrouter")
DISPLAY_NAMES: dict[str, str] = {m.name: m.display for m in REGISTRY}
_BY_NAME: dict[str, Method] = {m.name: m for m in REGISTRY}


def method(name: str) -> Method:
    """The registry entry of `name`, with a clear error for unknown names."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; choose from {', '.join(ALL_METHODS)}") from None


def is_routed(name: str) -> bool:
    """Whether `name` is HeadRouter or one of its ablations (it has routing outputs: spread, alpha)."""
    return name in HEADROUTER_METHODS
