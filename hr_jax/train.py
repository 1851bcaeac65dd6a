"""Train a small Qwen2.5-Omni thinker on the synthetic tasks of `hr_jax.synth` (CPU-friendly).

The model is the exact thinker architecture of `models/` (audio encoder with windowed attention,
Qwen2 decoder with GQA), randomly initialised, trained with optax AdamW (linear warm-up + cosine
decay, global-norm gradient clipping). Inputs are built exactly as at inference: the chat template
of `hr_jax.prompt.prompt_ids` (default system prompt, `<|audio_bos|>`, one `<|AUDIO|>` per audio
token, `<|audio_eos|>`, instruction, generation prompt), left-padded like `hr_jax.make_batch`, log-mel
from `hr_jax.audio.extract_features`. The loss is the cross-entropy of the reply tokens and the
closing `<|im_end|>` only.

Prompts. Every example gets, with probability 1/2 each, one of the two instruction styles used
elsewhere in the repo, so the model answers whichever one evaluation uses:
`hr_jax.synth.format_prompt` (the generator's own: "... Answer with the option text only.") and
`hr_jax.eval.prompts.build_prompt` (the benchmark prompt: instruction, question, `A. ...` options,
"Answer with the option's letter ..."; ASR prompt for `digits`). The reply is always the record's
`target`: the option *text* (which `hr_jax.eval.prompts.parse_answer` maps to its letter) or the
digit transcript.

Data. Example `i` of the stream is task `TASK_NAMES[i % 7]`, index `i // 7` of the train split
(`make_example`, clips `--min-seconds`..`--max-seconds`), so every step sees fresh clips and every task
equally often. Groups of `--group` batches are rendered together in a background process, sorted by
length and cut into batches (length bucketing: sequence length rounded up to 64 tokens and mel frames
to 400, so only a few shapes are compiled; a persistent compilation cache under the run directory
makes a resumed run skip the compiles). The data stream is a pure function of (data seed, step), so
a resumed run sees exactly the batches an uninterrupted one would.

Checkpoints. Every `--save-every` steps an orbax checkpoint of (step, params, optimizer state) is
written under `<out>/ckpt`; rerunning the same command resumes from the latest one exactly. Logs: a
JSONL line per step (`<out>/train_log.jsonl`), the loss curve `<out>/loss.png`, a tqdm bar with loss
and tokens/s.

CLI::

    python -m hr_jax.train --out runs/synth --steps 700            # train (or resume)
    python -m hr_jax.train --out runs/synth --export runs/synth/hf  # HF thinker checkpoint + tokenizer
    python -m convert.hf_to_jax --hf-dir runs/synth/hf --out hr_jax/assets/synth_model --dtype float32
    python -m hr_jax.train --accuracy hr_jax/assets/synth_model --data data/synth/test --n 30
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import dataclasses
import json
import math
import multiprocessing as mp
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

SEQ_MULTIPLE = 32  # sequence length rounding (tokens)
FRAME_MULTIPLE = 400  # mel-frame bucket: two encoder windows of the released n_window=100
TEXT_CAP = 160  # non-audio tokens (system prompt, instruction, reply) a bucket leaves room for
TARGET_SLOTS = 16  # reply tokens (incl. <|im_end|>) scored per row; longer replies are truncated
PROMPT_STYLES = ("synth", "eval")


# --------------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class TrainConfig:
    """Everything that defines a run (saved as `<out>/train_config.json`; a resume must match)."""

    # model
    vocab_size: int = 768
    hidden_size: int = 256
    intermediate_size: int = 640
    num_hidden_layers: int = 4
    num_attention_heads: int = 8
    num_key_value_heads: int = 2
    head_dim: int = 32
    rope_theta: float = 1000000.0
    audio_d_model: int = 128
    audio_layers: int = 2
    audio_heads: int = 4
    audio_ffn: int = 512
    n_window: int = 100
    max_position_embeddings: int = 32768
    # optimisation
    steps: int = 400
    batch_size: int = 16
    lr: float = 2e-3
    min_lr_ratio: float = 0.05
    warmup_steps: int = 30
    weight_decay: float = 0.05
    clip_norm: float = 1.0
    init_seed: int = 0
    # data
    data_seed: int = 1234
    min_seconds: float = 4.0
    max_seconds: float = 12.0
    tasks: tuple[str, ...] = ()  # () = all of hr_jax.synth.TASK_NAMES
    group: int = 4  # batches rendered, sorted by length and bucketed together
    # bookkeeping
    save_every: int = 50
    log_every: int = 1

    def task_names(self) -> tuple[str, ...]:
        from hr_jax.synth import TASK_NAMES

        return tuple(self.tasks) or TASK_NAMES

    def hf_config(self) -> dict[str, Any]:
        """The Hugging Face thinker `config.json` dict of the model."""
        from hr_jax.testing.checkpoints import tiny_config

        return tiny_config(
            vocab_size=self.vocab_size,
            hidden_size=self.hidden_size,
            intermediate_size=self.intermediate_size,
            num_hidden_layers=self.num_hidden_layers,
            num_attention_heads=self.num_attention_heads,
            num_key_value_heads=self.num_key_value_heads,
            head_dim=self.head_dim,
            rope_theta=self.rope_theta,
            max_position_embeddings=self.max_position_embeddings,
            d_model=self.audio_d_model,
            encoder_layers=self.audio_layers,
            encoder_attention_heads=self.audio_heads,
            encoder_ffn_dim=self.audio_ffn,
            n_window=self.n_window,
        )

    def thinker_config(self):
        from models.config import ThinkerConfig

        return ThinkerConfig.from_hf(self.hf_config())

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["tasks"] = list(self.tasks)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> TrainConfig:
        d = dict(d)
        d["tasks"] = tuple(d.get("tasks", ()))
        return cls(**d)


# --------------------------------------------------------------------------------------------------
# Tokenizer and prompts
# --------------------------------------------------------------------------------------------------


def tokenizer_corpus() -> list[str]:
    """`hr_jax.synth.corpus()` plus the fixed prompt text every input carries (system prompt, both
    instruction styles, chat roles), so they tokenize into few tokens."""
    from hr_jax.eval import prompts as ev
    from hr_jax.prompt import DEFAULT_PROMPT, DEFAULT_SYSTEM_PROMPT
    from hr_jax.synth import corpus

    fixed = [DEFAULT_SYSTEM_PROMPT, ev.MC_INSTRUCTION, ev.MC_SUFFIX, ev.ASR_PROMPT, DEFAULT_PROMPT,
             "system\n", "user\n", "assistant\n", "You are a helpful assistant."]  # fmt: skip
    return list(corpus()) + fixed * 50


def build_run_tokenizer(vocab_size: int, out_dir: str | os.PathLike) -> None:
    from hr_jax.tokenizer import build_tokenizer

    build_tokenizer(tokenizer_corpus(), vocab_size, out_dir)


def load_tokenizer(tok_dir: str | os.PathLike):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(os.fspath(tok_dir))
    tok.padding_side = "left"
    return tok


def eval_style_prompt(record: dict[str, Any]) -> str:
    """`hr_jax.eval.prompts.build_prompt` for a synth record (as the eval loader would see it)."""
    from hr_jax.eval.datasets import Sample
    from hr_jax.eval.prompts import build_prompt

    choices = tuple(record.get(f"choice_{c}", "") for c in "abcd")
    choices = tuple(c for c in choices if c)
    asr = not choices
    sample = Sample(
        id=str(record.get("index", 0)),
        audio_path="",
        question=record["question"],
        choices=choices,
        answer=record["answer_gt"] if asr else record["answer_letter"],
        task=record["task"],
        category=record["category"],
        reference=record["answer_gt"] if asr else None,
    )
    return build_prompt(sample)


def record_prompt(record: dict[str, Any], style: str = "synth") -> str:
    """The instruction text of a synth record in one of `PROMPT_STYLES`."""
    from hr_jax.synth import format_prompt

    if style == "synth":
        return format_prompt(record)
    if style == "eval":
        return eval_style_prompt(record)
    raise ValueError(f"unknown prompt style {style!r}; one of {PROMPT_STYLES}")


# --------------------------------------------------------------------------------------------------
# Data (runs in a background process; NumPy only)
# --------------------------------------------------------------------------------------------------

_TOKENIZERS: dict[str, Any] = {}


def _worker_tokenizer(tok_dir: str):
    if tok_dir not in _TOKENIZERS:
        _TOKENIZERS[tok_dir] = load_tokenizer(tok_dir)
    return _TOKENIZERS[tok_dir]


def make_train_example(
    tok, index: int, tasks: Sequence[str], seed: int, min_s: float, max_s: float
) -> dict[str, Any]:
    """Stream example `index`: prompt ids, reply ids, log-mel `[mel, frames]` (float16) and task."""
    from hr_jax.audio import extract_features
    from hr_jax.prompt import DEFAULT_SYSTEM_PROMPT, prompt_ids
    from hr_jax.synth import make_example
    from models.config import num_audio_tokens

    task = tasks[index % len(tasks)]
    k = index // len(tasks)
    try:
        wave, rec = make_example(task, k, "train", seed, min_s, max_s)
    except ValueError:  # the informative audio does not fit in max_s: allow a longer clip
        wave, rec = make_example(task, k, "train", seed, min_s, 2 * max_s)
    rng = np.random.default_rng([seed, index, 17])
    style = PROMPT_STYLES[int(rng.integers(len(PROMPT_STYLES)))]
    feats, fmask = extract_features([wave])
    n_frames = int(fmask.sum())
    ids = prompt_ids(tok, record_prompt(rec, style), num_audio_tokens(n_frames), DEFAULT_SYSTEM_PROMPT)
    reply = list(tok(rec["target"] + "<|im_end|>", add_special_tokens=False)["input_ids"])[:TARGET_SLOTS]
    return {
        "prompt": np.asarray(ids, np.int32),
        "reply": np.asarray(reply, np.int32),
        "features": feats[0, :, :n_frames].astype(np.float16),
        "task": task,
    }


def make_group(
    tok_dir: str, group_index: int, tasks: Sequence[str], seed: int, min_s: float, max_s: float, size: int
) -> list[dict[str, Any]]:
    """Examples `[group_index * size, (group_index + 1) * size)`, sorted by audio length."""
    tok = _worker_tokenizer(tok_dir)
    exs = [make_train_example(tok, group_index * size + j, tasks, seed, min_s, max_s) for j in range(size)]
    order = sorted(range(size), key=lambda j: (exs[j]["features"].shape[1], j))
    return [exs[j] for j in order]


def collate(examples: Sequence[dict[str, Any]], pad_id: int, n_mels: int = 128) -> dict[str, np.ndarray]:
    """Left-padded batch (as `make_batch`) + scoring slots.

    `targets [B, TARGET_SLOTS]` are the reply token ids, `target_pos` the positions whose logits
    predict them, `target_w` 1 for real slots.
    """
    b = len(examples)
    from models.config import num_audio_tokens

    n = [e["prompt"].size + e["reply"].size for e in examples]
    frames = max(e["features"].shape[1] for e in examples)
    t = -(-frames // FRAME_MULTIPLE) * FRAME_MULTIPLE
    # one sequence length per frame bucket (few compiles); longer rows (rare) round up further
    length = max(num_audio_tokens(t) + TEXT_CAP, max(n))
    length = -(-length // SEQ_MULTIPLE) * SEQ_MULTIPLE
    ids = np.full((b, length), pad_id, np.int32)
    mask = np.zeros((b, length), np.int32)
    feats = np.zeros((b, n_mels, t), np.float32)
    fmask = np.zeros((b, t), np.int32)
    targets = np.zeros((b, TARGET_SLOTS), np.int32)
    pos = np.zeros((b, TARGET_SLOTS), np.int32)
    w = np.zeros((b, TARGET_SLOTS), np.float32)
    for i, e in enumerate(examples):
        seq = np.concatenate([e["prompt"], e["reply"]])
        off = length - seq.size
        ids[i, off:] = seq
        mask[i, off:] = 1
        f = e["features"].shape[1]
        feats[i, :, :f] = e["features"]
        fmask[i, :f] = 1
        r = e["reply"].size
        targets[i, :r] = e["reply"]
        pos[i, :r] = off + e["prompt"].size - 1 + np.arange(r)
        w[i, :r] = 1
    return {
        "input_ids": ids, "attention_mask": mask, "input_features": feats, "feature_attention_mask": fmask,
        "targets": targets, "target_pos": pos, "target_w": w,
    }  # fmt: skip


class _InlineExecutor:
    """`workers=0`: render groups in the calling thread (tests, debugging)."""

    _processes: dict = {}

    def submit(self, fn, *args) -> cf.Future:
        f: cf.Future = cf.Future()
        f.set_result(fn(*args))
        return f

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        pass


class DataStream:
    """Batches for steps `start, start+1, ...`, rendered `prefetch` groups ahead in a spawned process."""

    def __init__(self, tcfg: TrainConfig, tok_dir: str, pad_id: int, start_step: int, prefetch: int = 2,
                 workers: int = 1):  # fmt: skip
        self.tcfg, self.tok_dir, self.pad_id = tcfg, tok_dir, pad_id
        self.step = start_step
        self.prefetch = prefetch if workers else 0
        self.pool = (
            cf.ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"))
            if workers
            else _InlineExecutor()
        )
        self.futures: dict[int, cf.Future] = {}
        self.cache: tuple[int, list] | None = None

    def _submit(self, g: int) -> None:
        if g not in self.futures:
            c = self.tcfg
            self.futures[g] = self.pool.submit(
                make_group, self.tok_dir, g, c.task_names(), c.data_seed, c.min_seconds, c.max_seconds,
                c.group * c.batch_size,
            )  # fmt: skip

    def next(self) -> tuple[dict[str, np.ndarray], list[str]]:
        c = self.tcfg
        g, j = divmod(self.step, c.group)
        for h in range(g, g + self.prefetch + 1):
            self._submit(h)
        if self.cache is None or self.cache[0] != g:
            self.cache = (g, self.futures.pop(g).result())
        exs = self.cache[1][j * c.batch_size : (j + 1) * c.batch_size]
        self.step += 1
        return collate(exs, self.pad_id), [e["task"] for e in exs]

    def close(self) -> None:
        for f in self.futures.values():
            f.cancel()
        procs = list((getattr(self.pool, "_processes", None) or {}).values())
        self.pool.shutdown(wait=False, cancel_futures=True)
        for proc in procs:  # do not leave a worker rendering clips nobody will read
            proc.terminate()


# --------------------------------------------------------------------------------------------------
# Model, loss, optimizer
# --------------------------------------------------------------------------------------------------


def init_model(tcfg: TrainConfig):
    """Random parameters: `models.params.init_params` (std 0.02), with the residual output projections
    (decoder `o_w`, `down_w`; encoder `o_w`, `fc2_w`) scaled by 1/sqrt(2·layers) as in GPT-2."""
    import jax

    from models.params import init_params

    cfg = tcfg.thinker_config()
    p = init_params(cfg, jax.random.PRNGKey(tcfg.init_seed))
    sd = 1.0 / math.sqrt(2 * cfg.text.num_hidden_layers)
    sa = 1.0 / math.sqrt(2 * cfg.audio.encoder_layers)
    layers = p.layers.replace(o_w=p.layers.o_w * sd, down_w=p.layers.down_w * sd)
    alayers = p.audio.layers.replace(o_w=p.audio.layers.o_w * sa, fc2_w=p.audio.layers.fc2_w * sa)
    return cfg, p.replace(layers=layers, audio=p.audio.replace(layers=alayers))


def loss_fn(params, cfg, batch: dict[str, Any]):
    """Mean cross-entropy over the scored reply tokens, and per-row exact match of the argmax."""
    import jax
    import jax.numpy as jnp

    from models.decoder import prefill_layers
    from models.thinker import embed_inputs, lm_logits, positions_from_mask

    h = embed_inputs(
        params, cfg, batch["input_ids"], batch["input_features"], batch["feature_attention_mask"]
    )
    am = batch["attention_mask"]
    h, _, _ = prefill_layers(h, params.layers, cfg.text, positions_from_mask(am), am.astype(bool))
    hs = jnp.take_along_axis(h, batch["target_pos"][..., None], axis=1)  # [B, S, D]
    logits = lm_logits(params, cfg, hs)  # [B, S, V] float32
    logp = jax.nn.log_softmax(logits, axis=-1)
    nll = -jnp.take_along_axis(logp, batch["targets"][..., None], axis=-1)[..., 0]
    w = batch["target_w"]
    loss = (nll * w).sum() / jnp.maximum(w.sum(), 1.0)
    hit = (logits.argmax(-1) == batch["targets"]) | (w == 0)
    return loss, hit.all(-1)


def make_optimizer(tcfg: TrainConfig):
    import jax
    import optax

    sched = optax.warmup_cosine_decay_schedule(
        init_value=0.0, peak_value=tcfg.lr, warmup_steps=tcfg.warmup_steps,
        decay_steps=max(tcfg.steps, tcfg.warmup_steps + 1), end_value=tcfg.lr * tcfg.min_lr_ratio,
    )  # fmt: skip
    decay_mask = lambda p: jax.tree.map(lambda x: x.ndim >= 2, p)  # noqa: E731 - no decay on norms/biases
    opt = optax.chain(
        optax.clip_by_global_norm(tcfg.clip_norm),
        optax.adamw(sched, b1=0.9, b2=0.98, eps=1e-8, weight_decay=tcfg.weight_decay, mask=decay_mask),
    )
    return opt, sched


def make_train_step(cfg, opt):
    import functools

    import jax
    import optax

    @functools.partial(jax.jit, donate_argnums=(0, 1))
    def train_step(params, opt_state, batch):
        (loss, hit), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, cfg, batch)
        updates, opt_state = opt.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        return params, opt_state, {"loss": loss, "grad_norm": optax.tree.norm(grads), "hit": hit}

    return train_step


# --------------------------------------------------------------------------------------------------
# Logging
# --------------------------------------------------------------------------------------------------


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
    ax.set_ylabel("reply cross-entropy (nats/token)")
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


# --------------------------------------------------------------------------------------------------
# Training loop
# --------------------------------------------------------------------------------------------------


def _checkpoint_manager(out: Path, save_every: int):
    import orbax.checkpoint as ocp

    opts = ocp.CheckpointManagerOptions(max_to_keep=2, save_interval_steps=save_every, create=True)
    return ocp.CheckpointManager(out / "ckpt", options=opts)


def restore_latest(out: Path, tcfg: TrainConfig):
    """(step, params, opt_state) of the latest checkpoint under `out/ckpt`, or of a fresh init (step 0)."""
    import jax
    import orbax.checkpoint as ocp

    cfg, params = init_model(tcfg)
    opt, _ = make_optimizer(tcfg)
    opt_state = opt.init(params)
    mgr = _checkpoint_manager(out, tcfg.save_every)
    step = mgr.latest_step()
    if step is not None:
        target = {"params": params, "opt_state": opt_state}
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
        state = mgr.restore(step, args=ocp.args.StandardRestore(abstract))
        params, opt_state = state["params"], state["opt_state"]
    mgr.close()
    return step or 0, cfg, params, opt_state


def _raise_interrupt(*_: Any) -> None:
    raise KeyboardInterrupt


_STEP_CACHE: dict[Any, Any] = {}
_OPT_FIELDS = ("steps", "lr", "min_lr_ratio", "warmup_steps", "weight_decay", "clip_norm")


def train(
    tcfg: TrainConfig,
    out_dir: str | os.PathLike,
    *,
    stop_after: int | None = None,
    progress: bool = True,
    workers: int = 1,
    tokenizer_dir: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Trains (or resumes) the run in `out_dir`. Returns a summary dict.

    stop_after: return after this many steps of this call (tests, interruption drills).
    workers: background processes rendering clips (0: render in this thread).
    tokenizer_dir: use this tokenizer (its vocabulary must have `tcfg.vocab_size` tokens) instead of
      training one on `tokenizer_corpus()`.
    """
    import jax
    import orbax.checkpoint as ocp
    from tqdm import tqdm

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
    jax.config.update("jax_compilation_cache_dir", str(out / "jax_cache"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 2.0)

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

    step, cfg, params, opt_state = restore_latest(out, tcfg)
    opt, sched = make_optimizer(tcfg)
    key = (cfg, json.dumps({k: v for k, v in tcfg.to_json().items() if k in _OPT_FIELDS}, sort_keys=True))
    if key not in _STEP_CACHE:  # reuse compiled steps when a process trains the same setup again
        _STEP_CACHE[key] = make_train_step(cfg, opt)
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
    mgr = _checkpoint_manager(out, tcfg.save_every)
    prev_handler = None
    if threading.current_thread() is threading.main_thread():  # `kill` stops cleanly, like Ctrl-C
        prev_handler = signal.signal(signal.SIGTERM, _raise_interrupt)
    stream = DataStream(tcfg, str(tok_dir), pad_id, start_step=step, workers=workers)
    end = tcfg.steps if stop_after is None else min(tcfg.steps, step + stop_after)
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
                hit = np.asarray(m["hit"])
                dt = time.perf_counter() - t0
                step += 1
                ntok = int(batch["attention_mask"].sum())
                ema = loss if ema is None else 0.95 * ema + 0.05 * loss
                for t, h in zip(tasks, hit, strict=True):
                    task_hits.setdefault(t, []).append(int(h))
                last = {
                    "step": step, "loss": loss, "lr": float(sched(step - 1)),
                    "grad_norm": float(m["grad_norm"]),
                    "tokens": ntok, "padded_tokens": int(batch["attention_mask"].size),
                    "shape": list(batch["input_features"].shape[::2]) + [batch["input_ids"].shape[1]],
                    "step_s": round(dt, 3), "data_wait_s": round(t_data, 3),
                    "elapsed_s": round(elapsed0 + time.perf_counter() - t_start, 1),
                    "train_exact": {  # last 20 rows of each task: argmax reply == target
                        t: round(float(np.mean(v[-20:])), 3) for t, v in sorted(task_hits.items())
                    },
                }  # fmt: skip
                if step % tcfg.log_every == 0 or step == end:
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


# --------------------------------------------------------------------------------------------------
# Export and a quick accuracy check
# --------------------------------------------------------------------------------------------------


TOKENIZER_FILES = ("tokenizer.json", "vocab.json", "merges.txt", "tokenizer_config.json",
                   "chat_template.json", "preprocessor_config.json")  # fmt: skip


def export_run(out_dir: str | os.PathLike, hf_dir: str | os.PathLike, step: int | None = None) -> Path:
    """Writes the run's latest (or `step`) parameters as a HF thinker checkpoint with tokenizer files."""
    import jax
    import orbax.checkpoint as ocp

    from hr_jax.checkpoint import export_hf

    out = Path(out_dir).absolute()
    tcfg = TrainConfig.from_json(json.loads((out / "train_config.json").read_text()))
    cfg, params = init_model(tcfg)
    mgr = _checkpoint_manager(out, tcfg.save_every)
    step = mgr.latest_step() if step is None else step
    if step is None:
        raise FileNotFoundError(f"no checkpoint under {out / 'ckpt'}")
    opt, _ = make_optimizer(tcfg)
    abstract = jax.tree.map(
        ocp.utils.to_shape_dtype_struct, {"params": params, "opt_state": opt.init(params)}
    )
    params = mgr.restore(step, args=ocp.args.StandardRestore(abstract))["params"]
    mgr.close()
    hf = Path(hf_dir)
    export_hf(params, cfg, hf, base_config=tcfg.hf_config())
    for f in TOKENIZER_FILES:
        shutil.copy(out / "tokenizer" / f, hf / f)
    gen = {"eos_token_id": [int(cfg.text.vocab_size - 14 + 2)], "pad_token_id": int(cfg.text.vocab_size - 14)}
    (hf / "generation_config.json").write_text(json.dumps(gen, indent=2) + "\n")
    return hf


def _score(record: dict[str, Any], reply: str) -> bool:
    """Exact match: the parsed option letter for multiple choice, the normalised words for digits."""
    from hr_jax.eval.prompts import clean_transcript, parse_answer

    choices = [record.get(f"choice_{c}", "") for c in "abcd"]
    choices = [c for c in choices if c]
    if not choices:
        norm = lambda s: " ".join(s.lower().replace(",", " ").split())  # noqa: E731
        return norm(clean_transcript(reply)) == norm(record["answer_gt"])
    return parse_answer(reply, choices) == record["answer_letter"]


def accuracy(
    model_dir: str | os.PathLike,
    data_dir: str | os.PathLike,
    n: int | None = None,
    style: str = "eval",
    batch_size: int = 16,
    tasks: Sequence[str] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Greedy, unpruned (ratio 0) exact-match accuracy per task on `hr_jax.synth` record files.

    Records of all tasks are sorted by duration and batched together, so few shapes are compiled.
    """
    from tqdm import tqdm

    import hr_jax
    from hr_jax.synth import TASK_NAMES, task_file

    model = hr_jax.load(model_dir)
    recs = []
    for task in tasks or TASK_NAMES:
        path = task_file(data_dir, task)
        if path.exists():
            recs += json.loads(path.read_text())[:n]
    recs.sort(key=lambda r: (r.get("duration", 0), r["task"], r["index"]))
    hits: dict[str, list[bool]] = {}
    examples: dict[str, list[dict[str, str]]] = {}
    t0 = time.perf_counter()
    for i in tqdm(range(0, len(recs), batch_size), desc="accuracy", disable=not progress):
        chunk = recs[i : i + batch_size]
        audios = [str(Path(data_dir) / r["path"]) for r in chunk]
        batch = hr_jax.make_batch(model, audios, [record_prompt(r, style) for r in chunk])
        outs = hr_jax.generate_batch(model, batch, ratio=0.0, max_new_tokens=16)
        for r, text in zip(chunk, outs.texts, strict=True):
            hits.setdefault(r["task"], []).append(_score(r, text))
            ex = examples.setdefault(r["task"], [])
            if len(ex) < 3:
                ex.append({"target": r["target"], "reply": text})
    res: dict[str, Any] = {
        t: {"accuracy": float(np.mean(h)), "n": len(h), "examples": examples[t]}
        for t, h in sorted(hits.items())
    }
    res["mean"] = float(np.mean([v["accuracy"] for v in res.values()])) if hits else float("nan")
    res["seconds"] = round(time.perf_counter() - t0, 1)
    res["durations_s"] = [min(r.get("duration", 0) for r in recs), max(r.get("duration", 0) for r in recs)]
    return res


# --------------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m hr_jax.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--out", help="run directory (created; rerun the same command to resume)")
    p.add_argument("--export", metavar="HF_DIR", help="export the run's latest checkpoint to HF_DIR and exit")
    p.add_argument("--accuracy", metavar="CKPT", help="score a converted checkpoint on --data and exit")
    p.add_argument("--data", help="synth split directory for --accuracy")
    p.add_argument("--n", type=int, default=None, help="records per task for --accuracy")
    p.add_argument("--style", choices=PROMPT_STYLES, default="eval", help="prompt style for --accuracy")
    p.add_argument("--json", help="write the --accuracy result here")
    p.add_argument("--eval-batch-size", type=int, default=16, help="batch size for --accuracy")
    p.add_argument("--stop-after", type=int, default=None, help="stop after this many steps of this call")
    p.add_argument("--no-progress", action="store_true")
    for f in dataclasses.fields(TrainConfig):
        if f.name == "tasks":
            p.add_argument("--tasks", default="", help="comma-separated subset of tasks (default: all)")
            continue
        p.add_argument(f"--{f.name.replace('_', '-')}", type=type(f.default), default=f.default)
    a = p.parse_args(argv)
    if a.accuracy:
        if not a.data:
            p.error("--accuracy needs --data")
        res = accuracy(a.accuracy, a.data, a.n, a.style, a.eval_batch_size, progress=not a.no_progress)
        text = json.dumps(res, indent=1)
        print(text)
        if a.json:
            Path(a.json).write_text(text + "\n")
        return 0
    if not a.out:
        p.error("--out is required")
    if a.export:
        print(export_run(a.out, a.export))
        return 0
    kw = {f.name: getattr(a, f.name) for f in dataclasses.fields(TrainConfig) if f.name != "tasks"}
    kw["tasks"] = tuple(t for t in a.tasks.split(",") if t)
    summary = train(TrainConfig(**kw), a.out, stop_after=a.stop_after, progress=not a.no_progress)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
