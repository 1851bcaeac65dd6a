"""A request inside the server's engine thread: its `Job` (inputs, sampling, reply so far), the events
it hands its HTTP handler, and the host-side helpers the scheduler applies to jobs."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable

import numpy as np

from hr_jax.batch import Batch
from hr_jax.engine import PruningSpec, SamplingSpec, buckets
from hr_jax.engine.api import rope_switch_step
from hr_jax.model import Model
from hr_jax.serving.errors import RequestError
from models.family import family_of


@dataclasses.dataclass(frozen=True)
class Admitted:
    """The request got a slot: its prompt tokens, audio tokens and audio tokens kept."""

    prompt_tokens: int
    num_audio: int
    kept_audio: int
    alpha: list[float] | None


@dataclasses.dataclass(frozen=True)
class Delta:
    """New reply text."""

    text: str


@dataclasses.dataclass(frozen=True)
class Finished:
    """The reply is complete: why ("stop" or "length") and the tokens generated."""

    reason: str
    completion_tokens: int


@dataclasses.dataclass(frozen=True)
class Failed:
    """The request failed: what the client is told."""

    error: RequestError


Event = Admitted | Delta | Finished | Failed


@dataclasses.dataclass(eq=False)
class Job:
    """One request inside the scheduler. `emit` hands an event to the request's handler (thread-safe);
    `cancelled` is set by the handler when its client goes away."""

    id: str
    batch: Batch  # one row
    pruning: PruningSpec
    sampling: SamplingSpec
    stop: tuple[str, ...]
    emit: Callable[[Event], None]
    ignore_eos: bool
    deadline: float  # time.monotonic() after which the request fails with 504
    arrived: float = dataclasses.field(default_factory=time.monotonic)
    cancelled: threading.Event = dataclasses.field(default_factory=threading.Event)
    tokens: list[int] = dataclasses.field(default_factory=list)
    sent: str = ""  # the reply text emitted so far
    # LongRoPE (Phi-4): prompt + the tokens before the switch, prefilled again with the long factors
    continued: Batch | None = None

    @property
    def prompt_tokens(self) -> int:
        return int(self.batch.attention_mask.sum())

    @property
    def prefill_batch(self) -> Batch:
        """What the next prefill of this job reads: the prompt, or the prompt and its tokens so far."""
        return self.batch if self.continued is None else self.continued

    def rope_switch(self, model: Model) -> int | None:
        """How many tokens in the reply must be re-prefilled (LongRoPE's switch, as `hr_jax.generate`
        does it), or None."""
        return (
            None
            if self.continued is not None
            else rope_switch_step(model, self.batch, self.sampling.max_new_tokens)
        )

    def continue_after_switch(self) -> None:
        """Makes the prompt and the tokens so far the job's next prefill."""
        ids = np.asarray([self.tokens], self.batch.input_ids.dtype)
        self.continued = Batch(
            np.concatenate([self.batch.input_ids, ids], axis=1),
            np.concatenate([self.batch.attention_mask, np.ones_like(ids)], axis=1),
            self.batch.input_features,
            self.batch.feature_attention_mask,
        )

    def bucket_key(self, model: Model) -> tuple:
        """Requests that share this key are prefilled together (same programs, same results; with
        LongRoPE, a prefill's factors follow its longest row, so rows on either side of the switch
        are prefilled apart)."""
        family = family_of(model.config)
        batch = self.prefill_batch
        seq = buckets.token_bucket(batch.input_ids.shape[1], buckets.SEQ_MULTIPLE, family.tokens_per_second)
        frames = buckets.frame_bucket(
            int(batch.feature_attention_mask.sum()), family.frame_multiple(model.config)
        )
        longrope = model.config.text.longrope
        long = (
            longrope is not None
            and int(batch.attention_mask.sum()) > longrope.original_max_position_embeddings
        )
        return (self.pruning, seq, frames, long)


def stack_rows(rows: list[Batch], pad_id: int) -> Batch:
    """One-row batches as one batch: tokens left-padded to the longest, features padded to the widest."""
    length = max(b.input_ids.shape[1] for b in rows)
    frames = max(b.input_features.shape[2] for b in rows)

    def left(x: np.ndarray, value: int) -> np.ndarray:
        return np.pad(x, ((0, 0), (length - x.shape[1], 0)), constant_values=value)

    def right(x: np.ndarray) -> np.ndarray:
        return np.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, frames - x.shape[-1])])

    return Batch(
        np.concatenate([left(b.input_ids, pad_id) for b in rows]),
        np.concatenate([left(b.attention_mask, 0) for b in rows]),
        np.concatenate([right(b.input_features) for b in rows]),
        np.concatenate([right(b.feature_attention_mask) for b in rows]),
    )


def held_back(text: str, stop: tuple[str, ...]) -> int:
    """Characters at the end of `text` not to send yet: an unfinished UTF-8 character (the tokenizer's
    U+FFFD) or the start of a stop string."""
    if text.endswith("\ufffd"):
        return len(text) - len(text.rstrip("\ufffd"))
    held = 0
    for s in stop:
        for k in range(min(len(s) - 1, len(text)), 0, -1):
            if text.endswith(s[:k]):
                held = max(held, k)
                break
    return held
