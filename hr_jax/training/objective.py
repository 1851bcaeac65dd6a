"""The training objective: the reply cross-entropy of the exact thinker, and the training-only heads
on the audio encoder's output (a class per audio token, CTC over the spoken words)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

from models.decoder import prefill_layers
from models.language_model import lm_logits, positions_from_mask, splice_audio
from models.qwen2_5_omni.audio_encoder import encode_audio
from models.qwen2_5_omni.config import ThinkerConfig


@struct.dataclass
class AudioHeads:
    """Training-only heads on the audio encoder's output `[B, Na, D]` (never exported): a class per
    audio token (`hr_jax.training.labels.TOKEN_CLASSES`) and CTC over the text vocabulary (blank = 0,
    token id t at t + 1)."""

    cls_w: jax.Array  # [D, classes]
    cls_b: jax.Array  # [classes]
    ctc_w: jax.Array  # [D, V + 1]
    ctc_b: jax.Array  # [V + 1]


def _masked_mean(x: jax.Array, w: jax.Array) -> jax.Array:
    return (x * w).sum() / jnp.maximum(w.sum(), 1.0)


def head_losses(heads: AudioHeads, audio: jax.Array, n_audio: jax.Array, batch: dict[str, Any]):
    """The training heads on the encoder output `audio [B, Na', D]` (`n_audio [B]` valid tokens):
    per-token class loss and accuracy over `batch["labels"]`, CTC loss per target token of the
    spoken words `batch["ctc"]`, and the heads' logits: class `[B, Na, classes]`, CTC `[B, Na, V + 1]`."""
    tokens = audio[:, : batch["labels"].shape[1]].astype(jnp.float32)  # [B, Na, D]
    cls_logits = tokens @ heads.cls_w + heads.cls_b
    cls_nll = -jnp.take_along_axis(jax.nn.log_softmax(cls_logits), batch["labels"][..., None], axis=-1)[
        ..., 0
    ]
    cls_loss = _masked_mean(cls_nll, batch["labels_w"])
    cls_acc = _masked_mean((cls_logits.argmax(-1) == batch["labels"]).astype(jnp.float32), batch["labels_w"])

    ctc_logits = tokens @ heads.ctc_w + heads.ctc_b
    logit_pad = (jnp.arange(tokens.shape[1])[None] >= n_audio[:, None]).astype(jnp.float32)
    per_row = optax.ctc_loss(ctc_logits, logit_pad, batch["ctc"] + 1, 1.0 - batch["ctc_w"], blank_id=0)
    n_words = batch["ctc_w"].sum(-1)
    ctc_loss = (per_row * (n_words > 0)).sum() / jnp.maximum(n_words.sum(), 1.0)
    return {"label_loss": cls_loss, "label_acc": cls_acc, "ctc": ctc_loss}, (cls_logits, ctc_logits)


def encoder_loss_fn(
    params: dict[str, Any], cfg: ThinkerConfig, batch: dict[str, Any], weights: tuple[float, float]
):
    """Training stage "encoder": `weights[0]` x class loss + `weights[1]` x CTC loss of the audio
    encoder's training heads; the decoder is not run."""
    num_frames = batch["feature_attention_mask"].sum(-1)
    audio, n_audio = encode_audio(params["model"].audio, cfg.audio, batch["input_features"], num_frames)
    parts, _ = head_losses(params["heads"], audio, n_audio, batch)
    return weights[0] * parts["label_loss"] + weights[1] * parts["ctc"], parts


def loss_fn(params: dict[str, Any], cfg: ThinkerConfig, batch: dict[str, Any], weights: tuple[float, float]):
    """The objective (see `TrainConfig`) and its parts: reply cross-entropy, per-row exact match of the
    reply's argmax, audio-token classification loss and accuracy, CTC loss per spoken word."""
    model, heads = params["model"], params["heads"]
    num_frames = batch["feature_attention_mask"].sum(-1)
    audio, n_audio = encode_audio(model.audio, cfg.audio, batch["input_features"], num_frames)
    h = splice_audio(model, cfg, batch["input_ids"], audio)
    am = batch["attention_mask"]
    h, _, _ = prefill_layers(h, model.layers, cfg.text, positions_from_mask(am), am.astype(bool))
    hs = jnp.take_along_axis(h, batch["target_pos"][..., None], axis=1)  # [B, S, D]
    logits = lm_logits(model, cfg, hs)  # [B, S, V] float32
    logp = jax.nn.log_softmax(logits, axis=-1)
    nll = -jnp.take_along_axis(logp, batch["targets"][..., None], axis=-1)[..., 0]
    w = batch["target_w"]
    reply = _masked_mean(nll, w)
    hit = (logits.argmax(-1) == batch["targets"]) | (w == 0)
    parts, _ = head_losses(heads, audio, n_audio, batch)
    total = reply + weights[0] * parts["label_loss"] + weights[1] * parts["ctc"]
    return total, {"reply": reply, "hit": hit.all(-1), **parts}
