"""HeadRouter calibration: profile centres μ, bandwidth σ_G and head-weight profiles from a few
labelled samples per category (SPEC "Calibration"; paper §3.3.2 and §4.1).

- μ_c: mean selectivity spread (Eq. 11) of category c's samples (semantic, acoustic; `mixed`
  samples give μ_uni, else the midpoint); σ_G: pooled within-category std of the spreads
  (`hr_jax.pruning.calibration.calibrate_centers`).
- Profiles by head ablation: for every head h, prune at the calibration ratio with head h alone
  (w = one-hot h, pre-filter on) and score the log-likelihood of the reference answer;
  Δ_h = LL(head h alone) − LL(unpruned), averaged over the category's samples.
  **Choice beyond SPEC**: pruning nearly always lowers the likelihood, so Δ_h < 0 for every head
  and a plain positive part would be empty. We therefore centre Δ across heads before taking the
  positive part: w_c ∝ max(Δ̄_h − mean_h' Δ̄_h', 0), i.e. the heads that preserve the answer better
  than the average head get the weight (uniform if all heads are equal).

Data: a JSON list or JSONL file of records `{"audio": path, "prompt": str, "answer": str,
"category": "semantic"|"acoustic"|"mixed"}` (audio paths relative to the file). AudioMarathon-style
records (`path`, `question`, `choice_a..d`, `answer_gt`, `category`) are accepted as well: the
prompt is built the way `hr-jax eval` builds it and the answer is the option text.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from hr_jax.batch import make_batch
from hr_jax.cli_options import add_model_options, load_model
from hr_jax.engine import answer_logprob, prefill
from hr_jax.eval.prompts import instruction
from hr_jax.eval.samples import answer_letter
from hr_jax.model import ROUTER_FILE, Model, resolve_checkpoint
from hr_jax.pruning.calibration import CALIBRATION_CATEGORIES, calibrate_centers, profile_from_ablation
from hr_jax.pruning.router import Router


@dataclasses.dataclass(frozen=True)
class CalibrationSample:
    audio: str | np.ndarray
    prompt: str
    answer: str
    category: str


@dataclasses.dataclass(frozen=True)
class CalibrationResult:
    router: Router
    categories: list[str]
    spreads: np.ndarray  # [N]
    selectivity: np.ndarray  # [N, H]
    delta: np.ndarray  # [N, H] LL(head h alone) - LL(unpruned)


def _record_sample(rec: dict[str, Any], base: str) -> CalibrationSample:
    category = str(rec.get("category", "")).lower()
    if category not in CALIBRATION_CATEGORIES:
        raise ValueError(f"record category {category!r} is not one of {CALIBRATION_CATEGORIES}: {rec}")
    audio = rec.get("audio", rec.get("path"))
    if not isinstance(audio, str):
        raise ValueError(f"record has no audio path: {rec}")
    audio = audio if os.path.isabs(audio) else os.path.join(base, audio)
    if "prompt" in rec:
        prompt = str(rec["prompt"])
        answer = str(rec.get("answer", rec.get("target", "")))
    else:
        choices = [rec[f"choice_{c}"] for c in "abcd" if rec.get(f"choice_{c}")]
        answer = str(rec.get("target", rec.get("answer_gt", "")))
        prompt = instruction(str(rec.get("question", "")), choices)
        if choices:
            letter = answer_letter(answer, choices)
            answer = letter if letter is not None and "target" not in rec else answer
    if not answer:
        raise ValueError(f"record has no reference answer: {rec}")
    return CalibrationSample(audio=audio, prompt=prompt, answer=answer, category=category)


def load_samples(path: str | os.PathLike) -> list[CalibrationSample]:
    """Reads calibration records from a JSON list / JSONL file, or every `*.json[l]` file in a
    directory tree (AudioMarathon-style task files with a `category` field). Files are interleaved
    record by record, so the first few samples of a category come from every task of it."""
    path = os.fspath(path)
    files = [path]
    if os.path.isdir(path):
        files = sorted(
            os.path.join(d, f) for d, _, fs in os.walk(path) for f in fs if f.endswith((".json", ".jsonl"))
        )
    per_file = []
    for f in files:
        with open(f) as fh:
            text = fh.read()
        recs = (
            json.loads(text)
            if text.lstrip().startswith("[")
            else [json.loads(x) for x in text.splitlines() if x.strip()]
        )
        base = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(f))
        per_file.append([_record_sample(r, base) for r in recs if isinstance(r, dict) and "category" in r])
    samples = [s for row in itertools.zip_longest(*per_file) for s in row if s is not None]
    if not samples:
        raise ValueError(f"no calibration records with a category found under {path}")
    return samples


def _batches(n: int, size: int) -> list[list[int]]:
    return [list(range(i, min(n, i + size))) for i in range(0, n, size)]


def calibrate(
    model: Model,
    samples: Sequence[CalibrationSample],
    ratio: float = 0.6,
    prune_layer: int = 2,
    prefilter: float | None = 2.0,
    batch_size: int = 4,
    progress: bool = True,
) -> CalibrationResult:
    """Computes a router file for `model` from labelled samples (see the module docstring)."""

    heads = model.config.text.num_attention_heads
    probe = Router.uniform(model.name or "model", prune_layer, heads, prefilter)
    spreads, sels, deltas = [], [], []
    groups = _batches(len(samples), batch_size)
    bar = tqdm(total=len(samples) * (heads + 2), desc="calibrate", unit="pass", disable=not progress)
    for rows in groups:
        chunk = [samples[i] for i in rows]
        batch = make_batch(model, [s.audio for s in chunk], [s.prompt for s in chunk])
        answers = [s.answer for s in chunk]
        pre = prefill(model, batch, ratio, method="headrouter", router=probe)
        spreads.append(pre.spread)
        sels.append(pre.selectivity)
        base = answer_logprob(model, batch, answers, 0.0)
        bar.update(2 * len(rows))
        per_head = []
        for h in range(heads):
            one_hot = tuple(float(i == h) for i in range(heads))
            alone = dataclasses.replace(probe, w_sem=one_hot, w_aco=one_hot)
            per_head.append(
                answer_logprob(model, batch, answers, ratio, method="semantic", router=alone) - base
            )
            bar.update(len(rows))
        deltas.append(np.stack(per_head, axis=1))
    bar.close()
    spreads_all = np.concatenate(spreads)
    cats = [s.category for s in samples]
    by_cat = {
        c: [float(v) for v, k in zip(spreads_all, cats, strict=True) if k == c]
        for c in CALIBRATION_CATEGORIES
    }
    mu, sigma = calibrate_centers(by_cat)
    delta = np.concatenate(deltas)

    def profile(category: str) -> tuple[float, ...]:
        rows = np.array([k == category for k in cats])
        mean = delta[rows].mean(0)
        return tuple(float(x) for x in profile_from_ablation(mean - mean.mean()))

    router = Router(
        model=model.name or "model",
        prune_layer=prune_layer,
        num_heads=heads,
        w_sem=profile("semantic"),
        w_aco=profile("acoustic"),
        mu=mu,
        sigma=sigma,
        prefilter=prefilter,
    )
    return CalibrationResult(router, cats, spreads_all, np.concatenate(sels), delta)


def plot_selectivity_heatmap(result: CalibrationResult, path: str | os.PathLike) -> None:
    """Mean per-head selectivity per category (paper Fig. 5) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cats = [c for c in CALIBRATION_CATEGORIES if c in result.categories]
    grid = np.stack([result.selectivity[[k == c for k in result.categories]].mean(0) for c in cats])
    fig, ax = plt.subplots(figsize=(max(4, 0.5 * grid.shape[1] + 2), 0.6 * len(cats) + 1.5))
    im = ax.imshow(grid, aspect="auto", cmap="magma")
    ax.set_yticks(range(len(cats)), cats)
    ax.set_xticks(range(grid.shape[1]))
    ax.set_xlabel("attention head (layer M-1)")
    ax.set_title("Per-head selectivity (Eq. 10) by category")
    fig.colorbar(im, ax=ax, label="selectivity")
    fig.tight_layout()
    fig.savefig(os.fspath(path), dpi=120)
    plt.close(fig)


def summary(result: CalibrationResult) -> str:
    r = result.router
    lines = ["spread per category (mean ± std, n):"]
    for c in CALIBRATION_CATEGORIES:
        v = result.spreads[[k == c for k in result.categories]]
        if v.size:
            lines.append(f"  {c:9s} {v.mean():.5f} ± {v.std():.5f}  (n={v.size})")
    lines.append("mu: " + ", ".join(f"{k}={r.mu[k]:.5f}" for k in ("semantic", "uniform", "acoustic")))
    lines.append(f"sigma_G: {r.sigma:.5f}")
    lines.append("w_sem: " + " ".join(f"{w:.3f}" for w in r.w_sem))
    lines.append("w_aco: " + " ".join(f"{w:.3f}" for w in r.w_aco))
    return "\n".join(lines)


def calibrate_main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="hr-jax calibrate", description="Calibrate a HeadRouter router file.")
    add_model_options(ap)
    ap.add_argument("--data", required=True, help="calibration records (JSON/JSONL file or directory)")
    ap.add_argument(
        "--out", default=None, help="router JSON to write (default: the checkpoint's router.json)"
    )
    ap.add_argument("--ratio", type=float, default=0.6, help="pruning ratio of the head ablation")
    ap.add_argument("--prune-layer", type=int, default=2)
    ap.add_argument("--prefilter", type=float, default=2.0, help="frame pre-filter λ (<=0: none)")
    ap.add_argument("--per-category", type=int, default=10, help="samples used per category")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--heatmap", default=None, help="PNG path (default: next to --out)")
    args = ap.parse_args(argv)
    model = load_model(args)
    samples = load_samples(args.data)
    picked: list[CalibrationSample] = []
    for c in CALIBRATION_CATEGORIES:
        picked += [s for s in samples if s.category == c][: args.per_category]
    prefilter = args.prefilter if args.prefilter > 0 else None
    result = calibrate(model, picked, args.ratio, args.prune_layer, prefilter, args.batch_size)
    out = args.out or os.fspath(resolve_checkpoint(args.ckpt, args.revision, args.dtype) / ROUTER_FILE)
    result.router.save(out)
    heatmap = args.heatmap or os.path.splitext(out)[0] + "_selectivity.png"
    plot_selectivity_heatmap(result, heatmap)
    print(summary(result))
    print(f"wrote {out} and {heatmap}")
    return 0
