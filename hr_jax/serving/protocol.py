"""OpenAI's chat-completions API as its clients send it: the request checked field by field into a
`ChatRequest` (every mistake a `RequestError` naming the field), and the response and stream chunks.

Pruning is per request, in extra body fields (`extra_body` in the openai client):
`audio_pruning_ratio` in [0, 1) and `audio_pruning_method` (a name of `hr_jax.pruning.methods`);
HeadRouter methods use the checkpoint's router. `ignore_eos` (as vLLM's) generates `max_tokens` tokens
whatever the model says (load tests).
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

import numpy as np

from hr_jax.pruning.methods import ALL_METHODS
from hr_jax.serving.audio_payload import from_data_url, from_input_audio
from hr_jax.serving.errors import RequestError

MAX_STOP_STRINGS = 4
# Fields of OpenAI's API this server does not implement: refused by name unless they ask for nothing.
UNSUPPORTED = {
    "tools": "tool calls",
    "functions": "function calls",
    "tool_choice": "tool calls",
    "function_call": "function calls",
    "logit_bias": "logit bias",
    "audio": "audio output",
    "prediction": "predicted outputs",
}


@dataclasses.dataclass(frozen=True)
class ChatRequest:
    """One checked chat request: the audio (`waveform [n]` at `sample_rate`), the user's instruction
    and system prompt (None: the model family's default), sampling (max_tokens None: the server's
    default), stop strings, streaming, and the pruning it asks for."""

    model: str | None
    waveform: np.ndarray
    sample_rate: int
    prompt: str
    system_prompt: str | None
    max_tokens: int | None
    temperature: float
    top_p: float
    seed: int
    stop: tuple[str, ...]
    stream: bool
    include_usage: bool
    ratio: float
    method: str
    ignore_eos: bool = False


def _number(body: dict, name: str, default: float, lo: float, hi: float, lo_open: bool = False) -> float:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise RequestError(f"{name} must be a number, got {value!r}", name)
    if value > hi or value < lo or (lo_open and value == lo):
        bound = f"({lo}, {hi}]" if lo_open else f"[{lo}, {hi}]"
        raise RequestError(f"{name} must be in {bound}, got {value}", name)
    return float(value)


def _integer(body: dict, name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise RequestError(f"{name} must be an integer, got {value!r}", name)
    return value


def _flag(body: dict, name: str) -> bool:
    value = body.get(name, False)
    if not isinstance(value, bool):
        raise RequestError(f"{name} must be true or false", name)
    return value


def _text_of(content: object, param: str) -> str:
    """A system message's text: a string or a list of text parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(p, dict) and p.get("type") == "text" for p in content):
        return "".join(str(p.get("text", "")) for p in content)
    raise RequestError(f"{param} must be a string or a list of text parts", param)


def _user_parts(content: object, param: str) -> tuple[str, list[tuple[np.ndarray, int]]]:
    """A user message's instruction and its audio clips."""
    if isinstance(content, str):
        return content, []
    if not isinstance(content, list):
        raise RequestError(f"{param} must be a string or a list of content parts", param)
    texts, audios = [], []
    for j, part in enumerate(content):
        where = f"{param}[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            if not isinstance(part.get("text"), str):
                raise RequestError(f"{where}.text must be a string", f"{where}.text")
            texts.append(part["text"])
        elif kind == "input_audio":
            audios.append(from_input_audio(part.get("input_audio"), f"{where}.input_audio"))
        elif kind == "audio_url":
            audios.append(from_data_url(part.get("audio_url"), f"{where}.audio_url"))
        elif kind in ("image_url", "input_image", "image", "video_url", "file"):
            raise RequestError(f"{where} is a {kind} part: this model takes text and audio only", where)
        else:
            raise RequestError(
                f"{where} has unknown type {kind!r}; use text, input_audio or audio_url", where
            )
    return "\n".join(t for t in texts if t), audios


def parse_chat_request(
    body: object, default_ratio: float = 0.0, default_method: str = "headrouter"
) -> ChatRequest:
    """Checks an OpenAI chat-completions body (one system message at most, then one user message with
    one audio part and optional text)."""
    if not isinstance(body, dict):
        raise RequestError("the request body must be a JSON object")
    for name, what in UNSUPPORTED.items():
        if body.get(name):
            raise RequestError(f"{name}: {what} are not supported by this server", name)
    if body.get("logprobs"):
        raise RequestError("logprobs are not supported by this server", "logprobs")
    fmt = body.get("response_format")
    if fmt not in (None, {"type": "text"}):
        raise RequestError("response_format: only plain text replies are supported", "response_format")
    modalities = body.get("modalities")
    if modalities is not None and list(modalities) != ["text"]:
        raise RequestError("modalities: this server replies in text only", "modalities")
    for name in ("presence_penalty", "frequency_penalty"):
        if body.get(name):
            raise RequestError(f"{name} is not supported by this server (send 0 or leave it out)", name)
    n = _integer(body, "n")
    if n not in (None, 1):
        raise RequestError(f"n={n}: this server returns one choice per request (n = 1)", "n")

    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError("messages must be a non-empty list", "messages")
    system, user = None, None
    for i, msg in enumerate(messages):
        role = msg.get("role") if isinstance(msg, dict) else None
        if role in ("system", "developer") and user is None and system is None:
            system = _text_of(msg.get("content"), f"messages[{i}].content")
        elif role == "user" and user is None:
            user = _user_parts(msg.get("content"), f"messages[{i}].content")
        elif role in ("system", "developer", "user", "assistant", "tool"):
            raise RequestError(
                f"messages[{i}] ({role}): only one system message and then one user message are supported "
                "(no multi-turn history)",
                f"messages[{i}]",
            )
        else:
            raise RequestError(
                f"messages[{i}].role {role!r} is not one of system, user", f"messages[{i}].role"
            )
    if user is None:
        raise RequestError("messages needs a user message with an audio part", "messages")
    prompt, audios = user
    if len(audios) != 1:
        raise RequestError(
            f"the user message has {len(audios)} audio parts; send exactly one (input_audio or audio_url)",
            "messages",
        )

    max_tokens = _integer(body, "max_completion_tokens")
    if max_tokens is None:
        max_tokens = _integer(body, "max_tokens")
    if max_tokens is not None and max_tokens < 1:
        raise RequestError(f"max_tokens must be at least 1, got {max_tokens}", "max_tokens")
    stop = body.get("stop")
    stop = (stop,) if isinstance(stop, str) else stop
    if stop is not None and (
        not isinstance(stop, (list, tuple))
        or len(stop) > MAX_STOP_STRINGS
        or not all(isinstance(s, str) and s for s in stop)
    ):
        raise RequestError(
            f"stop must be a string or a list of up to {MAX_STOP_STRINGS} non-empty strings", "stop"
        )
    options = body.get("stream_options") or {}
    if not isinstance(options, dict):
        raise RequestError("stream_options must be an object", "stream_options")
    stream = _flag(body, "stream")
    ratio = _number(body, "audio_pruning_ratio", default_ratio, 0.0, 1.0)
    if ratio >= 1.0:
        raise RequestError(f"audio_pruning_ratio must be in [0, 1), got {ratio}", "audio_pruning_ratio")
    method = body.get("audio_pruning_method", default_method)
    if method not in ALL_METHODS:
        raise RequestError(
            f"audio_pruning_method {method!r} is unknown; choose from {', '.join(ALL_METHODS)}",
            "audio_pruning_method",
        )
    if method == "vanilla" and ratio > 0:
        raise RequestError(
            "audio_pruning_method 'vanilla' is the unpruned model: send ratio 0", "audio_pruning_ratio"
        )
    seed = _integer(body, "seed")
    model = body.get("model")
    return ChatRequest(
        model=model if isinstance(model, str) else None,
        waveform=audios[0][0],
        sample_rate=audios[0][1],
        prompt=prompt,
        system_prompt=system,
        max_tokens=max_tokens,
        temperature=_number(body, "temperature", 1.0, 0.0, 2.0),  # OpenAI's default
        top_p=_number(body, "top_p", 1.0, 0.0, 1.0, lo_open=True),
        seed=0 if seed is None else seed % (1 << 31),
        stop=tuple(stop or ()),
        stream=stream,
        include_usage=bool(options.get("include_usage", True)),
        ratio=ratio,
        method=method,
        ignore_eos=_flag(body, "ignore_eos"),
    )


def completion_id() -> str:
    import secrets

    return "chatcmpl-" + secrets.token_hex(12)


def usage(prompt_tokens: int, completion_tokens: int, audio_tokens: int, kept: int) -> dict[str, Any]:
    """OpenAI's usage object, with the audio tokens the prompt held and the ones pruning kept."""
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"audio_tokens": audio_tokens, "cached_tokens": 0},
        "audio_tokens_kept": kept,
    }


def completion(cid: str, model: str, text: str, finish: str, use: dict, pruning: dict) -> dict[str, Any]:
    """A whole `chat.completion` object."""
    return {
        "id": cid,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": finish,
                "logprobs": None,
            }
        ],
        "usage": use,
        "audio_pruning": pruning,
    }


def chunk(
    cid: str, model: str, delta: dict | None, finish: str | None = None, **extra: Any
) -> dict[str, Any]:
    """A `chat.completion.chunk`; `delta` None gives the choice-less chunk that carries the usage."""
    choices = (
        [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]
    )
    return {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": choices,
        **extra,
    }
