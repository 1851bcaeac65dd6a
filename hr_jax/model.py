"""`Model`: parameters, config, tokenizer and feature extractor of a converted checkpoint."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from models.config import ThinkerConfig
from models.params import ThinkerParams


@dataclasses.dataclass(frozen=True)
class LogMelExtractor:
    """Whisper log-mel front end of the checkpoint (see `hr_jax.audio`)."""

    n_mels: int = 128

    def __call__(self, waveforms: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        from hr_jax.audio import extract_features

        return extract_features(waveforms, n_mels=self.n_mels)


@struct.dataclass
class Model:
    """A loaded thinker. Only `params` are pytree leaves; the rest is static, so a Model passes
    through `jax.jit` and `jax.device_put` as is."""

    params: ThinkerParams
    config: ThinkerConfig = struct.field(pytree_node=False)
    tokenizer: Any = struct.field(pytree_node=False)
    feature_extractor: LogMelExtractor = struct.field(pytree_node=False)
    name: str = struct.field(pytree_node=False, default="")

    @property
    def dtype(self) -> jnp.dtype:
        return self.params.embed.dtype

    @property
    def stop_token_ids(self) -> tuple[int, ...]:
        """`<|im_end|>` and the tokenizer's EOS: generation stops at either."""
        ids = {self.tokenizer.convert_tokens_to_ids("<|im_end|>")}
        if self.tokenizer.eos_token_id is not None:
            ids.add(self.tokenizer.eos_token_id)
        return tuple(sorted(i for i in ids if i is not None and i >= 0))

    @property
    def pad_token_id(self) -> int:
        pad = self.tokenizer.pad_token_id
        return int(pad if pad is not None else self.tokenizer.eos_token_id)


def load(ckpt_dir: str | os.PathLike, dtype: str | jnp.dtype | None = None) -> Model:
    """Loads a directory written by `python -m convert.hf_to_jax` onto the default device.

    Args:
      ckpt_dir: the converted checkpoint.
      dtype: cast parameters to this dtype (e.g. "bfloat16", "float32"); default keeps the saved one.
    """
    from transformers import AutoTokenizer

    from hr_jax.checkpoint import load_params

    cfg, params = load_params(ckpt_dir, dtype=dtype)
    tokenizer = AutoTokenizer.from_pretrained(os.fspath(ckpt_dir))
    tokenizer.padding_side = "left"
    return Model(
        params=params,
        config=cfg,
        tokenizer=tokenizer,
        feature_extractor=LogMelExtractor(cfg.audio.num_mel_bins),
        name=os.path.basename(os.path.normpath(os.fspath(ckpt_dir))),
    )


def with_params(model: Model, params: ThinkerParams) -> Model:
    return model.replace(params=params)


def cast(model: Model, dtype: str | jnp.dtype) -> Model:
    return model.replace(params=jax.tree.map(lambda x: x.astype(dtype), model.params))
