"""Qwen2.5-Omni's chat prompt, rendered with the checkpoint's own chat template."""

from __future__ import annotations

from typing import Any

DEFAULT_SYSTEM_PROMPT = (
    "You are Qwen, a virtual human developed by the Qwen Team, Alibaba Group, capable of perceiving "
    "auditory and visual inputs, as well as generating text and speech."
)
DEFAULT_PROMPT = "Describe the audio."
AUDIO_TOKEN = "<|AUDIO|>"

# Qwen2.5-Omni's added special tokens, in id order (151643 ... 151656 in the released tokenizer).
SPECIAL_TOKENS: tuple[str, ...] = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|AUDIO|>",
    "<|audio_bos|>",
    "<|audio_eos|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_bos|>",
    "<|vision_eos|>",
    "<|vision_pad|>",
    "<|IMAGE|>",
    "<|VIDEO|>",
)


def special_token_ids(vocab_size: int) -> dict[str, int]:
    """Ids of `SPECIAL_TOKENS` when they close a vocabulary of `vocab_size` (as
    `hr_jax.tokenizer.build_tokenizer` lays them out)."""
    base = vocab_size - len(SPECIAL_TOKENS)
    return {tok: base + i for i, tok in enumerate(SPECIAL_TOKENS)}


def render_prompt(tokenizer: Any, prompt: str, system_prompt: str | None = DEFAULT_SYSTEM_PROMPT) -> str:
    """The chat-template text of one turn: system, user (audio then instruction), generation prompt.

    The audio appears as a single `<|audio_bos|><|AUDIO|><|audio_eos|>`; `expand_audio` repeats
    the placeholder once per audio token, as the Hugging Face processor does.
    """
    messages: list[dict[str, Any]] = []
    if system_prompt is not None:
        messages.append({"role": "system", "content": [{"type": "text", "text": system_prompt}]})
    messages.append({"role": "user", "content": [{"type": "audio"}, {"type": "text", "text": prompt}]})
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    if text.count(AUDIO_TOKEN) != 1:
        raise ValueError(
            f"the checkpoint's chat template rendered {text.count(AUDIO_TOKEN)} {AUDIO_TOKEN} "
            "placeholders, expected 1"
        )
    return text


def expand_audio(text: str, num_audio_tokens: int) -> str:
    return text.replace(AUDIO_TOKEN, AUDIO_TOKEN * num_audio_tokens, 1)


def prompt_ids(tokenizer: Any, prompt: str, num_audio_tokens: int, system_prompt: str | None) -> list[int]:
    """Token ids of a full prompt with `num_audio_tokens` `<|AUDIO|>` tokens."""
    text = expand_audio(render_prompt(tokenizer, prompt, system_prompt), num_audio_tokens)
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])
