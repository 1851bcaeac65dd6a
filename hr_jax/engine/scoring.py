"""Log-likelihood of a reference answer under a (pruned) prefill — teacher forcing through the
same two KV caches that generation uses. Calibration's head ablation scores with it."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from hr_jax.batch import Batch
from hr_jax.engine.api import run_prefill
from hr_jax.engine.core import PrefillState, decode_step, decode_weights
from hr_jax.engine.planning import PruningSpec, place
from hr_jax.model import Model
from models.decoder import resolve_decode_layout
from models.family import ModelConfig, ModelParams, family_of


@functools.partial(jax.jit, static_argnames=("cfg", "layout"))
def answer_logprob_core(
    params: ModelParams,
    cfg: ModelConfig,
    state: PrefillState,
    answer: jax.Array,
    answer_mask: jax.Array,
    layout: str = "unrolled",
) -> jax.Array:
    """Sum of log p(answer[t] | prompt, answer[:t]) over valid t. answer/answer_mask `[B, A]`;
    the caches must have `A` free slots; `layout`: the decode layout. Returns `[B]` float32."""
    weights = decode_weights(params, cfg, state.cache.prune_layer, state.logits.shape[0], layout)

    def body(carry, t):
        logits, cache = carry
        tok = answer[:, t]
        logp = jax.nn.log_softmax(logits, axis=-1)[jnp.arange(tok.shape[0]), tok]
        logits, cache = decode_step(params, cfg, tok, state.next_pos + t, cache, weights)
        return (logits, cache), jnp.where(answer_mask[:, t], logp, 0.0)

    _, logps = jax.lax.scan(body, (state.logits, state.cache), jnp.arange(answer.shape[1]))
    return logps.sum(0)


def answer_ids(model: Model, answers: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Right-padded `[B, A]` ids of each answer followed by the end-of-turn token (`<|im_end|>`,
    Phi-4's `<|end|>`), and the valid mask."""
    end = model.tokenizer.convert_tokens_to_ids(family_of(model.config).end_of_turn)
    rows = [list(model.tokenizer(a, add_special_tokens=False)["input_ids"]) + [end] for a in answers]
    width = max(map(len, rows))
    ids = np.full((len(rows), width), model.pad_token_id, np.int32)
    mask = np.zeros((len(rows), width), bool)
    for i, r in enumerate(rows):
        ids[i, : len(r)], mask[i, : len(r)] = r, True
    return ids, mask


def answer_logprob(
    model: Model,
    batch: Batch,
    answers: list[str],
    ratio: float = 0.0,
    method: str = "headrouter",
    router=None,
    prune_layer: int | None = None,
    seed: int = 0,
) -> np.ndarray:
    """`[B]` log-likelihood of each row's reference answer (plus `<|im_end|>`) after a prefill
    pruned with `method` at `ratio`."""
    ids, mask = answer_ids(model, answers)
    spec = PruningSpec(ratio, method, router, prune_layer, seed)
    state, p = run_prefill(model, batch, spec, cache_extra=ids.shape[1])
    ids_d, mask_d = place([ids, mask], model.mesh)  # rows padded and split as the prefill's
    layout = resolve_decode_layout(model.options.decode_layout)
    return np.asarray(answer_logprob_core(p.params, model.config, state, ids_d, mask_d, layout))[: p.rows]
