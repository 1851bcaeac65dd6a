"""The training loop: initialisation, loss, optimiser, resumable orbax checkpoints, logs.

The model is the exact thinker of `models/`, randomly initialised, trained with optax AdamW (linear
warm-up + cosine decay, global-norm gradient clipping). The loss is the cross-entropy of the reply
tokens and the closing `<|im_end|>` only. Every `save_every` steps an orbax checkpoint of (step,
params, optimizer state) is written under `<out>/ckpt`; rerunning the same command resumes from the
latest one exactly. Logs: a JSONL line per step (`<out>/train_log.jsonl`), the loss curve
`<out>/loss.png`, a tqdm bar with loss and tokens/s.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import shutil
import signal
import threading
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np
import optax
import orbax.checkpoint as ocp
from tqdm import tqdm

from hr_jax.training.config import TrainConfig
from hr_jax.training.data import DataStream, build_run_tokenizer, load_tokenizer
from hr_jax.training.heldout import HeldOut
from hr_jax.training.objective import encoder_loss_fn, loss_fn
from hr_jax.training.state import checkpoint_manager, init_tokenizer_dir, make_optimizer, restore_latest
from models.qwen2_5_omni.config import ThinkerConfig

TOKENIZER_FILES = ("tokenizer.json", "vocab.json", "merges.txt", "tokenizer_config.json",
                   "chat_template.json", "preprocessor_config.json")  # fmt: skip


def make_train_step(cfg: ThinkerConfig, opt, weights: tuple[float, float], stage: str = "joint"):
    objective = encoder_loss_fn if stage == "encoder" else loss_fn

    @functools.partial(jax.jit, donate_argnums=(0, 1))
    def train_step(params, opt_state, batch):
        (loss, parts), grads = jax.value_and_grad(objective, has_aux=True)(params, cfg, batch, weights)
        updates, opt_state = opt.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        return params, opt_state, {"loss": loss, "grad_norm": optax.tree.norm(grads), **parts}

    return train_step


def plot_loss(log_path: str | os.PathLike, png_path: str | os.PathLike) -> None:
    """Loss per step (and its moving average) and the learning rate, from the JSONL log."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in open(log_path) if line.strip()]
    rows = [r for r in rows if "loss" in r]
    if not rows:
        return
    steps = np.array([r["step"] for r in rows])
    loss = np.array([r["loss"] for r in rows])
    k = max(1, min(25, len(loss) // 10))
    ema = np.convolve(loss, np.ones(k) / k, mode="valid")
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.plot(steps, loss, lw=0.6, alpha=0.4, label="loss (batch)")
    ax.plot(steps[k - 1 :], ema, lw=1.8, label=f"loss ({k}-step mean)")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (nats)")
    ax.grid(alpha=0.3, which="both")
    ax2 = ax.twinx()
    ax2.plot(steps, [r["lr"] for r in rows], color="gray", lw=1, ls="--", label="learning rate")
    ax2.set_ylabel("learning rate")
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, loc="upper right")
    ax.set_title("hr_jax synthetic-task training")
    fig.tight_layout()
    fig.savefig(png_path, dpi=110)
    plt.close(fig)


def _raise_interrupt(*_: Any) -> None:
    raise KeyboardInterrupt


_STEP_CACHE: dict[Any, Any] = {}
_OPT_FIELDS = (
    "steps",
    "lr",
    "min_lr_ratio",
    "warmup_steps",
    "weight_decay",
    "clip_norm",
    "stage",
    "encoder_lr_scale",
)


def train(
    tcfg: TrainConfig,
    out_dir: str | os.PathLike,
    *,
    stop_after: int | None = None,
    progress: bool = True,
    workers: int = 1,
    tokenizer_dir: str | os.PathLike | None = None,
    init_from: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Trains (or resumes) the run in `out_dir`. Returns a summary dict.

    stop_after: return after this many steps of this call (tests, interruption drills).
    workers: background processes rendering clips (0: render in this thread).
    tokenizer_dir: use this tokenizer (its vocabulary must have `tcfg.vocab_size` tokens) instead of
      training one on `tokenizer_corpus()` (default with `init_from`: that checkpoint's tokenizer).
    init_from: a fresh run starts from this converted checkpoint's weights (e.g. the shipped model).
    cache_dir: rendered clips and their log-mel are kept here and read back by later steps and runs.
    """
    out = Path(out_dir).absolute()
    out.mkdir(parents=True, exist_ok=True)
    cfg_path = out / "train_config.json"
    if cfg_path.exists():
        saved = TrainConfig.from_json(json.loads(cfg_path.read_text()))
        if saved != tcfg:
            given = dataclasses.asdict(tcfg)
            diff = {k: (v, given[k]) for k, v in dataclasses.asdict(saved).items() if given[k] != v}
            if diff:
                raise ValueError(f"{out} holds a run with a different config (saved, given): {diff}")
    else:
        cfg_path.write_text(json.dumps(tcfg.to_json(), indent=2) + "\n")

    if tokenizer_dir is None and init_from is not None:
        tokenizer_dir = init_tokenizer_dir(init_from)  # the weights' own token ids
    tok_dir = out / "tokenizer"
    if not (tok_dir / "tokenizer.json").exists():
        tmp = out / "tokenizer.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        if tokenizer_dir is None:
            build_run_tokenizer(tcfg.vocab_size, tmp)
        else:
            tmp.mkdir()
            for f in TOKENIZER_FILES:
                shutil.copy(Path(tokenizer_dir) / f, tmp / f)
        os.replace(tmp, tok_dir)
    tok = load_tokenizer(tok_dir)
    if len(tok) != tcfg.vocab_size:
        raise ValueError(f"tokenizer in {tok_dir} has {len(tok)} tokens, the model {tcfg.vocab_size}")
    pad_id = int(tok.pad_token_id)
    (out / "hf_config.json").write_text(json.dumps(tcfg.hf_config(), indent=2) + "\n")

    step, cfg, params, opt_state = restore_latest(out, tcfg, init_from)
    opt, sched = make_optimizer(tcfg)
    weights = (tcfg.label_weight, tcfg.ctc_weight)
    key = (
        cfg,
        weights,
        json.dumps({k: v for k, v in tcfg.to_json().items() if k in _OPT_FIELDS}, sort_keys=True),
    )
    if key not in _STEP_CACHE:  # reuse compiled steps when a process trains the same setup again
        _STEP_CACHE[key] = make_train_step(cfg, opt, weights, tcfg.stage)
    train_step = _STEP_CACHE[key]
    n_params = int(sum(x.size for x in jax.tree.leaves(params)))
    log_path = out / "train_log.jsonl"
    if log_path.exists():  # drop lines from steps after the checkpoint (they will be redone)
        keep = [
            ln
            for ln in log_path.read_text().splitlines()
            if ln.strip() and json.loads(ln).get("step", -1) <= step
        ]
        log_path.write_text("".join(k + "\n" for k in keep))
    elapsed0 = 0.0
    if step and log_path.exists() and log_path.stat().st_size:
        elapsed0 = json.loads(log_path.read_text().splitlines()[-1]).get("elapsed_s", 0.0)
    mgr = checkpoint_manager(out, tcfg.save_every)
    prev_handler = None
    if threading.current_thread() is threading.main_thread():  # `kill` stops cleanly, like Ctrl-C
        prev_handler = signal.signal(signal.SIGTERM, _raise_interrupt)
    cache = None if cache_dir is None else os.fspath(cache_dir)
    stream = DataStream(tcfg, str(tok_dir), pad_id, start_step=step, workers=workers, cache_dir=cache)
    end = tcfg.steps if stop_after is None else min(tcfg.steps, step + stop_after)
    encoder_only = tcfg.stage == "encoder"
    heldout = HeldOut(tcfg, tok, tcfg.eval_seed, tcfg.eval_clips) if tcfg.eval_every else None
    t_start = time.perf_counter()
    bar = tqdm(
        total=tcfg.steps, initial=step, desc="train", unit="step", disable=not progress, dynamic_ncols=True
    )
    last = {}
    task_hits: dict[str, list[int]] = {}
    ema = None
    try:
        with open(log_path, "a") as log:
            while step < end:
                t0 = time.perf_counter()
                batch, tasks = stream.next()
                t_data = time.perf_counter() - t0
                params, opt_state, m = train_step(params, opt_state, batch)
                loss = float(m["loss"])
                dt = time.perf_counter() - t0
                step += 1
                # tokens: the decoder's real tokens, or in stage "encoder" the clips' mel frames
                mask = batch["feature_attention_mask" if encoder_only else "attention_mask"]
                ntok = int(mask.sum())
                ema = loss if ema is None else 0.95 * ema + 0.05 * loss
                last = {
                    "step": step, "loss": loss, "lr": float(sched(step - 1)),
                    "grad_norm": float(m["grad_norm"]),
                    "label_loss": float(m["label_loss"]), "label_acc": float(m["label_acc"]),
                    "ctc_loss": float(m["ctc"]),
                    "tokens": ntok, "padded_tokens": int(mask.size),
                    "shape": list(batch["input_features"].shape[::2]) + list(mask.shape[1:]),
                    "step_s": round(dt, 3), "data_wait_s": round(t_data, 3),
                    "elapsed_s": round(elapsed0 + time.perf_counter() - t_start, 1),
                }  # fmt: skip
                if not encoder_only:
                    for t, h in zip(tasks, np.asarray(m["hit"]), strict=True):
                        task_hits.setdefault(t, []).append(int(h))
                    last["reply_loss"] = float(m["reply"])
                    last["train_exact"] = {  # last 20 rows of each task: argmax reply == target
                        t: round(float(np.mean(v[-20:])), 3) for t, v in sorted(task_hits.items())
                    }
                if heldout is not None and (step % tcfg.eval_every == 0 or step == tcfg.steps):
                    last["heldout"] = heldout(params)
                    bar.write(f"step {step} held-out: {json.dumps(last['heldout'])}")
                if step % tcfg.log_every == 0 or step == end or "heldout" in last:
                    log.write(json.dumps(last) + "\n")
                    log.flush()
                bar.update(1)
                bar.set_postfix(loss=f"{ema:.3f}", tok_s=f"{ntok / dt:.0f}", lr=f"{last['lr']:.1e}")
                if step % tcfg.save_every == 0 or step == tcfg.steps:
                    mgr.save(step, args=ocp.args.StandardSave({"params": params, "opt_state": opt_state}),
                             force=True)  # fmt: skip
                    mgr.wait_until_finished()
                    plot_loss(log_path, out / "loss.png")
    finally:
        if prev_handler is not None:
            signal.signal(signal.SIGTERM, prev_handler)
        bar.close()
        stream.close()
        mgr.wait_until_finished()
        mgr.close()
    if step == tcfg.steps:
        plot_loss(log_path, out / "loss.png")
    return {"step": step, "params": n_params, **{k: last[k] for k in ("loss", "elapsed_s") if k in last}}
