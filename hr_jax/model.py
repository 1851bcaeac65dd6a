"""`Model`: parameters, config, tokenizer and feature extractor of a converted checkpoint."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct
from jax.sharding import Mesh

from hr_jax.engine_options import EngineOptions
from models.family import ModelConfig, ModelParams, family_of
from models.qwen2_5_omni.features import LogMelExtractor  # noqa: F401 - re-exported


@struct.dataclass
class Model:
    """A loaded thinker. Only `params` are pytree leaves; the rest is static, so a Model passes
    through `jax.jit` and `jax.device_put` as is."""

    params: ModelParams
    config: ModelConfig = struct.field(pytree_node=False)
    tokenizer: Any = struct.field(pytree_node=False)
    feature_extractor: Any = struct.field(pytree_node=False)  # waveforms -> (features, frame mask)
    name: str = struct.field(pytree_node=False, default="")
    stop_ids: tuple[int, ...] | None = struct.field(pytree_node=False, default=None)
    router_path: str | None = struct.field(pytree_node=False, default=None)  # the checkpoint's router.json
    # The ("data", "model") mesh the parameters are placed on (`hr_jax.load(..., mesh=)`, `on_mesh`);
    # every engine function then runs sharded over it. None: the default device.
    mesh: Mesh | None = struct.field(pytree_node=False, default=None)
    # How the engine runs it (attention kernel, decode layout): part of every program's compile key.
    options: EngineOptions = struct.field(pytree_node=False, default=EngineOptions())

    @property
    def dtype(self) -> jnp.dtype:
        return self.params.embed.dtype

    @property
    def stop_token_ids(self) -> tuple[int, ...]:
        """Generation stops at any of these: `stop_ids` if set (`()`: never), else the family's end of
        turn (`<|im_end|>`, `<|end|>`) and EOS."""
        if self.stop_ids is not None:
            return self.stop_ids
        return default_stop_ids(self.tokenizer, {}, family_of(self.config).end_of_turn)

    @property
    def pad_token_id(self) -> int:
        pad = self.tokenizer.pad_token_id
        return int(pad if pad is not None else self.tokenizer.eos_token_id)


def default_stop_ids(
    tokenizer: Any, generation_config: dict[str, Any], end_of_turn: str = "<|im_end|>"
) -> tuple[int, ...]:
    """The end-of-turn token, the tokenizer's EOS and generation_config.json's `eos_token_id`s."""
    ids = {tokenizer.convert_tokens_to_ids(end_of_turn), tokenizer.eos_token_id}
    eos = generation_config.get("eos_token_id")
    ids.update(eos if isinstance(eos, list) else [eos])
    return tuple(sorted(int(i) for i in ids if isinstance(i, int) and i >= 0))


DEMO = "demo"  # `--ckpt demo` / `hr_jax.load("demo")`: the model shipped with the package
DEMO_DIR = Path(__file__).parent / "assets" / "synth_model"
ROUTER_FILE = "router.json"  # a router saved in a checkpoint directory is its default


def resolve_checkpoint(
    ckpt: str | os.PathLike, revision: str | None = None, dtype: str | jnp.dtype | None = None
) -> Path:
    """The converted checkpoint directory `ckpt` names: the shipped model for "demo" (unless a directory
    of that name exists), a local directory as is, or else a Hugging Face Hub name, converted once into
    the conversion cache (`hr_jax.checkpoint.hub`) at `revision` in `dtype` (default bfloat16)."""
    path = Path(ckpt).expanduser()
    if os.fspath(ckpt) == DEMO and not path.exists():
        return DEMO_DIR
    if path.exists():
        if revision is not None:
            raise ValueError(f"revision {revision!r} applies to Hub names, but {path} is a local path")
        return path
    from hr_jax.checkpoint import converted_from_hub

    return converted_from_hub(os.fspath(ckpt), revision, jnp.dtype(dtype or "bfloat16").name)


def load(
    ckpt_dir: str | os.PathLike,
    dtype: str | jnp.dtype | None = None,
    *,
    revision: str | None = None,
    mesh: Mesh | None = None,
    options: EngineOptions | None = None,
) -> Model:
    """Loads a checkpoint onto the default device, or onto `mesh`.

    Args:
      ckpt_dir: a directory written by `python -m convert.hf_to_jax`; "demo" for the model shipped with
        the package; or a Hugging Face Hub name (`Qwen/Qwen2.5-Omni-3B`), downloaded and converted once
        into `$HR_JAX_CACHE` (default `~/.cache/hr_jax`) and read from there afterwards. Its
        `router.json`, when present, is the HeadRouter router used when a call names none.
      dtype: cast parameters to this dtype (e.g. "bfloat16", "float32"); default keeps the saved one
        (a Hub name is converted in this dtype, default bfloat16).
      revision: the Hub branch, tag or commit of a Hub name.
      mesh: a `("data", "model")` mesh (`hr_jax.make_mesh`): every weight is restored straight into
        its sharding by the logical-axis rules (`hr_jax.sharding`), leaf by leaf, never whole on one
        device; the model carries the mesh and every engine function runs sharded over it.
      options: how the engine runs it (`hr_jax.EngineOptions`: attention kernel, decode layout);
        default: each platform's best.
    """
    ckpt_dir = resolve_checkpoint(ckpt_dir, revision, dtype)
    from transformers import AutoTokenizer

    from hr_jax.checkpoint import load_config, load_params
    from hr_jax.sharding import param_shardings

    shardings = None if mesh is None else param_shardings(load_config(ckpt_dir)[0], mesh)
    cfg, params = load_params(ckpt_dir, dtype=dtype, sharding=shardings)
    family = family_of(cfg)
    tokenizer = AutoTokenizer.from_pretrained(os.fspath(ckpt_dir))
    tokenizer.padding_side = "left"
    gen_path = os.path.join(os.fspath(ckpt_dir), "generation_config.json")
    gen = json.loads(Path(gen_path).read_text()) if os.path.exists(gen_path) else {}
    return Model(
        params=params,
        config=cfg,
        tokenizer=tokenizer,
        feature_extractor=family.feature_extractor(ckpt_dir, cfg),
        name=os.path.basename(os.path.normpath(os.fspath(ckpt_dir))),
        stop_ids=default_stop_ids(tokenizer, gen, family.end_of_turn),
        router_path=os.fspath(ckpt_dir / ROUTER_FILE) if (ckpt_dir / ROUTER_FILE).is_file() else None,
        mesh=mesh,
        options=options or EngineOptions(),
    )


def on_mesh(model: Model, mesh: Mesh | None) -> Model:
    """`model` with its parameters placed on `mesh` by the logical-axis rules (itself when already
    there; `mesh=None` leaves it as it is)."""
    if mesh is None or model.mesh == mesh:
        return model
    from hr_jax.sharding import shard_params

    return model.replace(params=shard_params(model.params, model.config, mesh), mesh=mesh)


def with_params(model: Model, params: ModelParams) -> Model:
    return model.replace(params=params)


def cast(model: Model, dtype: str | jnp.dtype) -> Model:
    return model.replace(params=jax.tree.map(lambda x: x.astype(dtype), model.params))
