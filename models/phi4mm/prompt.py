"""Phi-4-Multimodal's chat prompt with one audio, as AudioMarathon's `src/Phi4MM` scripts build it:
`<|user|><|audio_1|>{instruction}<|end|><|assistant|>`, the placeholder expanded to one audio token
(id 200011) per encoder frame, as the processor does. No system turn unless one is given
(`<|system|>{text}<|end|>` first)."""

from __future__ import annotations

from typing import Any

USER, END, ASSISTANT, SYSTEM = "<|user|>", "<|end|>", "<|assistant|>", "<|system|>"


def _ids(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def prompt_ids(
    tokenizer: Any, audio_token_id: int, prompt: str, num_audio_tokens: int, system_prompt: str | None = None
) -> list[int]:
    """Token ids of the whole prompt. Special tokens split the text, so tokenising the pieces between
    them gives the ids of the processor's single pass over the expanded text."""
    head = (f"{SYSTEM}{system_prompt}{END}" if system_prompt else "") + USER
    return (
        _ids(tokenizer, head)
        + [audio_token_id] * num_audio_tokens
        + _ids(tokenizer, f"{prompt}{END}{ASSISTANT}")
    )
