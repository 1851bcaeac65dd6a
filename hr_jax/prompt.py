"""Prompts: the default instruction, the `system_prompt` default (each family's own), and Qwen2.5-Omni's
chat prompt (`models.qwen2_5_omni.prompt`, re-exported here); Phi-4's is `models.phi4mm.prompt`."""

from __future__ import annotations

from models.qwen2_5_omni.prompt import (  # noqa: F401 - re-exported
    AUDIO_TOKEN,
    DEFAULT_PROMPT,
    DEFAULT_SYSTEM_PROMPT,
    expand_audio,
    prompt_ids,
    render_prompt,
)


class _FamilyDefault:
    """The default of `system_prompt` arguments: the model family's own (Qwen's persona prompt above;
    none for Phi-4)."""

    def __repr__(self) -> str:
        return "FAMILY_DEFAULT"


FAMILY_DEFAULT: object = _FamilyDefault()
