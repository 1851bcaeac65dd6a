"""How the engine runs a model, as opposed to what the model is: explicit, static options that are part
of what each program is compiled for (as MaxText's `attention` setting is). Nothing here is read from the
environment; the CLI alone maps `HR_JAX_ATTENTION` / `HR_JAX_DECODE_LAYERS` to them
(`hr_jax.cli_options`)."""

from __future__ import annotations

import dataclasses

from models.attention import ATTENTION_IMPLS
from models.decoder import DECODE_LAYOUTS


@dataclasses.dataclass(frozen=True)
class EngineOptions:
    """attention: the prefill attention kernel (`models.attention`; `auto`: cuDNN on GPU for
    bfloat16/float16, splash on TPU, the streaming kernel otherwise); decode_layout: how decode runs its
    layers (`models.decoder.resolve_decode_layout`; `auto`: unrolled)."""

    attention: str = "auto"
    decode_layout: str = "auto"

    def __post_init__(self) -> None:
        if self.attention not in ATTENTION_IMPLS:
            raise ValueError(f"attention={self.attention!r}; choose from {', '.join(ATTENTION_IMPLS)}")
        if self.decode_layout not in DECODE_LAYOUTS:
            raise ValueError(f"decode_layout={self.decode_layout!r}; choose from {', '.join(DECODE_LAYOUTS)}")
