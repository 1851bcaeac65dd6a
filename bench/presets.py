"""Named model shapes for the benchmarks (random weights; accuracy is irrelevant to timing): every
family's `presets()` (`models.family`), by name.

- Qwen2.5-Omni (`models.qwen2_5_omni.presets`): `tiny` (the test configuration, a smoke test), `small`
  (a CPU-friendly thinker with the real structure and the real 25 audio tokens a second),
  `qwen2.5-omni-3b` / `qwen2.5-omni-7b` (the released shapes);
- Phi-4-Multimodal (`models.phi4mm.presets`): `phi4-small` (CPU-friendly, real structure, 12.5 audio
  tokens a second) and `phi4-mini` (the released widths).
"""

from __future__ import annotations

from typing import Any

from models.family import families


def _all() -> dict[str, tuple[Any, dict[str, Any]]]:
    return {name: (fam, hf) for fam in families() for name, hf in fam.presets().items()}


PRESETS = tuple(_all())


def preset_config(name: str) -> Any:
    """The config of a preset (see the module docstring)."""
    table = _all()
    if name not in table:
        raise ValueError(f"unknown preset {name!r}; choose from {', '.join(table)}")
    family, hf = table[name]
    return family.config_from_hf(hf)


def add_shape_options(ap: Any, seconds: float = 30.0) -> None:
    """The options every one-shape benchmark takes: `--preset`, `--seconds` of audio, `--json` output."""
    ap.add_argument("--preset", default="small", help="a name of `bench.presets`")
    ap.add_argument("--seconds", type=float, default=seconds, help="seconds of audio")
    ap.add_argument("--json", default=None, help="write the records here")
