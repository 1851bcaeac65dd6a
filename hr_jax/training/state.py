"""A run's state: its parameters and optimizer, fresh, restored from its own checkpoints, or started from
another checkpoint (`--init-from`: a converted checkpoint, another run, or a milestone).

`restore_latest` and `initial_params` call each other (a run started from another run restores that
run), which is why both live here, below the training loop, the held-out scorer and the milestone
writer that use them.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp

from hr_jax.checkpoint import load_params
from hr_jax.training.config import TrainConfig
from hr_jax.training.labels import TOKEN_CLASSES
from hr_jax.training.objective import AudioHeads
from models.params import init_params, normal
from models.qwen2_5_omni.config import ThinkerConfig

MILESTONE_FILE = "milestone.json"
TRAINED_FILE = "trained.npz"


def named_leaves(params: dict[str, Any]) -> dict[str, jax.Array]:
    """`{keystr path: leaf}` of a pytree (how a milestone names the leaves it stores)."""
    flat, _ = jax.tree_util.tree_flatten_with_path(params)
    return {jax.tree_util.keystr(path): leaf for path, leaf in flat}


def init_model(tcfg: TrainConfig):
    """Random parameters: `models.params.init_params` (std 0.02), with the residual output projections
    (decoder `o_w`, `down_w`; encoder `o_w`, `fc2_w`) scaled by 1/sqrt(2·layers) as in GPT-2."""
    cfg = tcfg.model
    p = init_params(cfg, jax.random.PRNGKey(tcfg.init_seed))
    sd = 1.0 / math.sqrt(2 * cfg.text.num_hidden_layers)
    sa = 1.0 / math.sqrt(2 * cfg.audio.encoder_layers)
    layers = p.layers.replace(o_w=p.layers.o_w * sd, down_w=p.layers.down_w * sd)
    alayers = p.audio.layers.replace(o_w=p.audio.layers.o_w * sa, fc2_w=p.audio.layers.fc2_w * sa)
    return cfg, p.replace(layers=layers, audio=p.audio.replace(layers=alayers))


def init_train_params(tcfg: TrainConfig) -> tuple[ThinkerConfig, dict[str, Any]]:
    """`{"model": ThinkerParams, "heads": AudioHeads}` at their initial values."""
    cfg, model = init_model(tcfg)
    d, v = cfg.audio.output_dim, cfg.text.vocab_size
    k1, k2 = jax.random.split(jax.random.PRNGKey(tcfg.init_seed + 1))
    heads = AudioHeads(
        cls_w=normal(k1, (d, len(TOKEN_CLASSES)), jnp.float32),
        cls_b=jnp.zeros((len(TOKEN_CLASSES),), jnp.float32),
        ctc_w=normal(k2, (d, v + 1), jnp.float32),
        ctc_b=jnp.zeros((v + 1,), jnp.float32),
    )
    return cfg, {"model": model, "heads": heads}


def param_groups(params: dict[str, Any]) -> dict[str, Any]:
    """`params` with each leaf replaced by its group: "encoder" (the audio encoder up to its last
    norm), "projection" (its output projection to the text width), "decoder" (everything else of the
    model) or "heads" (the training heads)."""
    model = params["model"]
    group = lambda tree, name: jax.tree.map(lambda _: name, tree)  # noqa: E731
    audio = group(model.audio, "encoder").replace(proj_w="projection", proj_b="projection",
                                                  bos_eos_embedding="decoder")  # fmt: skip
    return {"model": group(model, "decoder").replace(audio=audio), "heads": group(params["heads"], "heads")}


def make_optimizer(tcfg: TrainConfig):
    """AdamW (warm-up + cosine, global-norm clipping) on what `tcfg.stage` trains: in stage "encoder"
    the encoder, its projection and the heads (the decoder gets no update, not even weight decay);
    otherwise everything. The encoder learns at `encoder_lr_scale` x the schedule (0: frozen)."""
    sched = optax.warmup_cosine_decay_schedule(
        init_value=0.0, peak_value=tcfg.lr, warmup_steps=tcfg.warmup_steps,
        decay_steps=max(tcfg.steps, tcfg.warmup_steps + 1), end_value=tcfg.lr * tcfg.min_lr_ratio,
    )  # fmt: skip
    decay_mask = lambda p: jax.tree.map(lambda x: x.ndim >= 2, p)  # noqa: E731 - no decay on norms/biases

    def adamw(lr):
        return optax.adamw(lr, b1=0.9, b2=0.98, eps=1e-8, weight_decay=tcfg.weight_decay, mask=decay_mask)

    scale = tcfg.encoder_lr_scale
    frozen = {"encoder": scale == 0, "projection": False, "decoder": tcfg.stage == "encoder", "heads": False}
    lrs = {"encoder": sched if scale == 1 else lambda s: scale * sched(s)}
    per_group = {g: optax.set_to_zero() if f else adamw(lrs.get(g, sched)) for g, f in frozen.items()}
    # frozen groups' gradients are dropped before clipping, so they do not shrink the others' steps
    drop = {g: optax.set_to_zero() if f else optax.identity() for g, f in frozen.items()}
    opt = optax.chain(
        optax.multi_transform(drop, param_groups),
        optax.clip_by_global_norm(tcfg.clip_norm),
        optax.multi_transform(per_group, param_groups),
    )
    return opt, sched


KEEP_PERIOD = 300  # checkpoints at multiples of this many steps are never deleted (accuracy-vs-steps curve)


def checkpoint_manager(out: Path, save_every: int):
    """The run's orbax checkpoints: the latest two, plus every `KEEP_PERIOD`-th step."""
    opts = ocp.CheckpointManagerOptions(
        max_to_keep=2, keep_period=KEEP_PERIOD, save_interval_steps=save_every, create=True
    )
    return ocp.CheckpointManager(out / "ckpt", options=opts)


def restore_latest(
    out: Path, tcfg: TrainConfig, init_from: str | os.PathLike | None = None, step: int | None = None
):
    """(step, cfg, params, opt_state) of the latest (or `step`'s) checkpoint under `out/ckpt`, or of a
    fresh start (step 0): random parameters, or with `init_from` what that holds
    (`hr_jax.training.milestone.initial_params`). `params`: {"model": ThinkerParams, "heads": AudioHeads}."""
    out = Path(out).absolute()  # orbax takes absolute paths only
    cfg, params = init_train_params(tcfg)
    if init_from is not None:
        params, _ = initial_params(init_from, cfg, params)
    opt, _ = make_optimizer(tcfg)
    opt_state = opt.init(params)
    mgr = checkpoint_manager(out, tcfg.save_every)
    step = mgr.latest_step() if step is None else step
    if step is not None:
        target = {"params": params, "opt_state": opt_state}
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
        state = mgr.restore(step, args=ocp.args.StandardRestore(abstract))
        params, opt_state = state["params"], state["opt_state"]
    mgr.close()
    return step or 0, cfg, params, opt_state


def initial_params(
    init_from: str | os.PathLike, cfg: ThinkerConfig, fresh: dict[str, Any]
) -> tuple[dict[str, Any], Path]:
    """`fresh` (`{"model", "heads"}` of the run's model `cfg`) overwritten with what `init_from` holds,
    and the tokenizer directory that goes with those weights."""
    src = Path(init_from)
    if (src / MILESTONE_FILE).exists():
        meta = json.loads((src / MILESTONE_FILE).read_text())
        params, _ = initial_params(src / meta["base"], cfg, fresh)
        with np.load(src / TRAINED_FILE) as z:
            saved = {k: z[k] for k in z.files}
        flat, treedef = jax.tree_util.tree_flatten_with_path(params)
        leaves = []
        for path, leaf in flat:
            name = jax.tree_util.keystr(path)
            if name in saved and saved[name].shape != leaf.shape:
                got = saved[name].shape
                raise ValueError(f"{src / TRAINED_FILE}: {name} is {got}, the run's {leaf.shape}")
            leaves.append(jnp.asarray(saved[name]) if name in saved else leaf)
        return jax.tree_util.tree_unflatten(treedef, leaves), src / "tokenizer"
    if (src / "train_config.json").exists():
        tcfg = TrainConfig.from_json(json.loads((src / "train_config.json").read_text()))
        if tcfg.model != cfg:
            raise ValueError(f"--init-from {src}: that run trains another model than this run's config")
        step, _, params, _ = restore_latest(src, tcfg)
        if not step:
            raise FileNotFoundError(f"--init-from {src}: no checkpoint under {src / 'ckpt'}")
        return params, src / "tokenizer"
    saved_cfg, model = load_params(src, dtype=jnp.float32)
    if saved_cfg != cfg:
        raise ValueError(f"--init-from {src} holds another model than the run's config")
    return dict(fresh, model=model), src


def init_tokenizer_dir(init_from: str | os.PathLike) -> Path:
    """The tokenizer of the weights `init_from` holds (see `initial_params`)."""
    src = Path(init_from)
    if (src / MILESTONE_FILE).exists() or (src / "train_config.json").exists():
        return src / "tokenizer"
    return src
