"""Pruning accuracy of a model on the synthetic tasks: every method at every ratio, in the paper's
Table 1 layout with 95% bootstrap intervals, plus the informative-token recall only a generator that
knows where the answer is can measure.

    python -m bench.accuracy --ckpt demo --data data/synth/test --n 50 --out runs/accuracy \\
        --markdown bench/ACCURACY.md

1. The test clips (`hr_jax.synth`, test split, 15-60 s) are generated into `--data` when absent.
2. `hr-jax eval --benchmark synth` runs every method at every ratio (the checkpoint's own router;
   resumable; one shape bucket as long as the longest clip, `HR_JAX_BUCKET_SECONDS`, so the sweep
   compiles one program per method and ratio).
3. Each cell is the task's metric (F1 0-100; word accuracy for DIG) with a 95% percentile bootstrap
   interval over the clips; `Recall` is the share of the informative segments' audio tokens (a token
   is informative when its centre lies in a segment the generator placed the answer in) that the
   method kept, averaged over clips; `Accuracy` is the plain share of correct replies.
4. The Markdown holds the table, the routing distribution (paper Fig. 7) and the command.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hr_jax.audio import TOKENS_PER_SECOND
from hr_jax.eval import metrics, results
from hr_jax.eval.report import load_rows, score_cell, write_report
from hr_jax.eval.tasks import SYNTH, resolve_task
from hr_jax.pruning.methods import ALL_METHODS, DISPLAY_NAMES, HEADROUTER, VANILLA
from hr_jax.synth import TASK_NAMES, generate, task_file


def ensure_data(data_dir: Path, n: int, min_seconds: float, max_seconds: float, seed: int | None) -> None:
    """The test clips of every task, generated where missing (or fewer than `n`)."""
    for task in TASK_NAMES:
        path = task_file(data_dir, task)
        if path.exists() and len(json.loads(path.read_text())) >= n:
            continue
        generate(data_dir, "test", task, n, seed=seed, min_seconds=min_seconds, max_seconds=max_seconds)


def informative_tokens(record: dict[str, Any], num_audio: int) -> np.ndarray:
    """`[num_audio]` bool: audio tokens whose centre lies in one of the record's informative segments."""
    centres = (np.arange(num_audio) + 0.5) / TOKENS_PER_SECOND
    mask = np.zeros(num_audio, bool)
    for start, end in record["segments"]:
        mask |= (centres >= start) & (centres < end)
    return mask


def recall(rows: dict[str, dict[str, Any]], records: dict[str, dict[str, Any]]) -> float | None:
    """Mean share of informative audio tokens kept (percent), over rows with a kept mask."""
    shares = []
    for rid, row in rows.items():
        if row.get("error") or not row.get("num_audio") or rid not in records:
            continue
        na = int(row["num_audio"])
        info = informative_tokens(records[rid], na)
        if not info.any():
            continue
        kept = results.decode_mask(row["kept_mask"], na) if row.get("kept_mask") else np.ones(na, bool)
        shares.append(100.0 * (kept & info).sum() / info.sum())
    return float(np.mean(shares)) if shares else None


def cell(task: str, rows: dict[str, dict[str, Any]], resamples: int) -> dict[str, Any]:
    """Metric, 95% interval, accuracy and count of one task under one (method, ratio)."""
    info = resolve_task(SYNTH, task)
    ordered = [rows[k] for k in sorted(rows)]
    value = score_cell(info, ordered).value

    def on(idx: np.ndarray) -> float:
        v = score_cell(info, [ordered[i] for i in idx]).value
        return float("nan") if v is None else v

    interval = metrics.bootstrap_interval(on, len(ordered), resamples=resamples)
    acc = metrics.accuracy([bool(r.get("correct")) for r in ordered if not r.get("error")])
    return {"value": value, "ci": interval, "accuracy": acc, "n": len(ordered)}


def load_records(data_dir: Path) -> dict[str, dict[str, Any]]:
    """The test records by the id the loader gives them (`<task>-<index>`)."""
    out = {}
    for task in TASK_NAMES:
        for i, rec in enumerate(json.loads(task_file(data_dir, task).read_text())):
            out[f"{task}-{i:05d}"] = rec
    return out


def table(data: dict[tuple[str, str, float], dict[str, dict[str, Any]]], data_dir: Path, resamples: int
          ) -> dict[str, Any]:  # fmt: skip
    """Every (method, ratio) row of a run's rows (`load_rows`): per-task cells, their mean, its share
    of vanilla's, and recall."""
    records = load_records(data_dir)
    tasks = [t for t in TASK_NAMES if any(k[0] == t for k in data)]
    combos = sorted({(m, r) for _, m, r in data}, key=lambda mr: (mr[1], ALL_METHODS.index(mr[0])))
    rows = []
    for method, ratio in combos:
        cells = {t: cell(t, data.get((t, method, ratio), {}), resamples) for t in tasks}
        merged = {k: v for t in tasks for k, v in data.get((t, method, ratio), {}).items()}  # ids are unique
        values = [c["value"] for c in cells.values() if c["value"] is not None]
        rows.append({
            "method": method, "ratio": ratio, "cells": cells,
            "mean": float(np.mean(values)) if len(values) == len(tasks) else None,
            "recall": recall(merged, records),
        })  # fmt: skip
    vanilla = next((r for r in rows if r["method"] == VANILLA), None)
    for r in rows:
        r["avg_pct"] = metrics.relative_to_vanilla(r["mean"], vanilla["mean"] if vanilla else None)
    return {"tasks": tasks, "rows": rows}


def paired_difference(
    data: dict[tuple[str, str, float], dict[str, dict[str, Any]]],
    tasks: Sequence[str],
    a: tuple[str, float],
    b: tuple[str, float],
    resamples: int,
    seed: int = 0,
) -> dict[str, Any] | None:
    """Mean over tasks of the metric of (method, ratio) `a` minus that of `b`, with a 95% paired
    bootstrap interval: each resample draws the same clips (per task, with replacement) for both,
    so the interval reflects the difference on shared clips, not two independent errors."""
    pairs = []
    for t in tasks:
        ra, rb = data.get((t, *a), {}), data.get((t, *b), {})
        ids = sorted(set(ra) & set(rb))
        if not ids:
            return None
        pairs.append((resolve_task(SYNTH, t), [ra[i] for i in ids], [rb[i] for i in ids]))

    def diff(picks: Sequence[np.ndarray]) -> float:
        out = []
        for (info, xa, xb), idx in zip(pairs, picks, strict=True):
            va = score_cell(info, [xa[i] for i in idx]).value
            vb = score_cell(info, [xb[i] for i in idx]).value
            out.append(math.nan if va is None or vb is None else va - vb)
        return float(np.mean(out))

    rng = np.random.default_rng(seed)
    point = diff([np.arange(len(xa)) for _, xa, _ in pairs])
    draws = np.array(
        [diff([rng.integers(0, len(xa), len(xa)) for _, xa, _ in pairs]) for _ in range(resamples)]
    )
    draws = draws[np.isfinite(draws)]
    ci = (float(np.percentile(draws, 2.5)), float(np.percentile(draws, 97.5))) if draws.size else None
    return {"a": list(a), "b": list(b), "diff": point, "ci": ci}


def headrouter_against_each(
    data: dict[tuple[str, str, float], dict[str, dict[str, Any]]],
    tasks: Sequence[str],
    resamples: int,
    reference: str = HEADROUTER,
) -> list[dict[str, Any]]:
    """`paired_difference` of `reference` against every other pruned method at each ratio."""
    combos = sorted({(m, r) for _, m, r in data if m not in (VANILLA, reference)},
                    key=lambda mr: (mr[1], ALL_METHODS.index(mr[0])))  # fmt: skip
    out = []
    for method, ratio in combos:
        d = paired_difference(data, tasks, (reference, ratio), (method, ratio), resamples)
        if d is not None:
            out.append(d)
    return out


def differences_markdown(diffs: Sequence[dict[str, Any]]) -> str:
    """One row per method, one column per ratio: HeadRouter minus the method, with its interval;
    a bold cell's interval excludes 0 (a real difference at 95%)."""
    ratios = sorted({d["a"][1] for d in diffs})
    methods = list(dict.fromkeys(d["b"][0] for d in diffs))
    by = {(d["b"][0], d["b"][1]): d for d in diffs}
    lines = [
        "| HeadRouter minus | " + " | ".join(f"r = {r:g}" for r in ratios) + " |",
        "|---|" + "---:|" * len(ratios),
    ]
    for m in methods:
        cells = []
        for r in ratios:
            d = by.get((m, r))
            if d is None or d["ci"] is None:
                cells.append("–")
                continue
            lo, hi = d["ci"]
            text = f"{d['diff']:+.1f} [{lo:+.1f}, {hi:+.1f}]"
            cells.append(f"**{text}**" if lo > 0 or hi < 0 else text)
        lines.append(f"| {DISPLAY_NAMES.get(m, m)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _fmt(c: dict[str, Any]) -> str:
    if c["value"] is None:
        return "–"
    lo, hi = c["ci"] or (math.nan, math.nan)
    return f"{c['value']:.1f} [{lo:.0f}, {hi:.0f}]"


def markdown(t: dict[str, Any], command: str, machine: str, figure: str | None) -> str:
    """The table in the paper's Table 1 layout, one block per ratio, vanilla on top."""
    labels = [resolve_task(SYNTH, k).abbrev for k in t["tasks"]]
    lines = [
        "| Method | " + " | ".join(labels) + " | Mean | Avg. | Recall |",
        "|---|" + "---:|" * (len(labels) + 3),
    ]
    last = None
    for r in t["rows"]:
        if r["ratio"] != last:
            title = (
                "All tokens (100%)" if r["method"] == VANILLA else f"Retain {100 - round(100 * r['ratio'])}%"
            )
            lines.append(f"| *{title}* |" + " |" * (len(labels) + 3))
            last = r["ratio"]
        mean = "–" if r["mean"] is None else f"{r['mean']:.1f}"
        avg = "–" if r["avg_pct"] is None else f"{r['avg_pct']:.1f}%"
        rec = "–" if r["recall"] is None else f"{r['recall']:.1f}"
        cells = " | ".join(_fmt(r["cells"][k]) for k in t["tasks"])
        lines.append(f"| {DISPLAY_NAMES.get(r['method'], r['method'])} | {cells} | {mean} | {avg} | {rec} |")
    vanilla = next((r for r in t["rows"] if r["method"] == VANILLA), None)
    acc = "" if vanilla is None else ", ".join(
        f"{resolve_task(SYNTH, k).abbrev} {vanilla['cells'][k]['accuracy']:.0f}%" for k in t["tasks"]
    )  # fmt: skip
    out = [
        "Cells: the task's metric (F1 0-100; DIG: word accuracy) and its 95% bootstrap interval over the "
        "clips. Mean: over the tasks; Avg.: Mean as % of Vanilla; Recall: % of the informative segments' "
        "audio tokens kept (the generator's oracle).",
        "",
        *lines,
        "",
        f"Unpruned accuracy (share of correct replies): {acc}." if acc else "",
        "",
        f"Machine: {machine}. Command: `{command}`",
    ]
    if figure:
        out += ["", f"![routing distribution]({figure})"]
    if t.get("headrouter_minus"):
        out += [
            "",
            "HeadRouter against each method (Mean over tasks, difference and 95% paired bootstrap "
            "interval; bold: the interval excludes 0):",
            "",
            differences_markdown(t["headrouter_minus"]),
        ]
    return "\n".join(out).rstrip("\n") + "\n"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.accuracy", description=__doc__.split("\n\n")[0])
    ap.add_argument("--ckpt", default="demo")
    ap.add_argument("--data", type=Path, default=Path("data/synth/test"))
    ap.add_argument("--n", type=int, default=50, help="test clips per task")
    ap.add_argument("--min-seconds", type=float, default=15.0)
    ap.add_argument("--max-seconds", type=float, default=60.0)
    ap.add_argument("--seed", type=int, default=None, help="test split seed (default: the split's)")
    ap.add_argument("--out", type=Path, default=Path("runs/accuracy"))
    ap.add_argument("--methods", default=",".join(ALL_METHODS))
    ap.add_argument("--ratios", default="0.3,0.6,0.9")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--resamples", type=int, default=500, help="bootstrap resamples per cell")
    ap.add_argument("--markdown", type=Path, default=None, help="also write the table here")
    a = ap.parse_args(argv)
    # One shape bucket as long as the longest clip: one compile per (method, ratio), some padding.
    os.environ.setdefault("HR_JAX_BUCKET_SECONDS", f"{a.max_seconds:g}")
    from hr_jax.eval.runner import run_eval
    from hr_jax.model import load

    ensure_data(a.data, a.n, a.min_seconds, a.max_seconds, a.seed)
    model = load(a.ckpt, dtype="float32")
    methods = [m for m in a.methods.split(",") if m]
    ratios = [float(r) for r in a.ratios.split(",") if r]
    run_eval(model, str(a.data), "synth", None, methods, ratios, str(a.out), batch_size=a.batch_size,
             max_new_tokens=24, asr_max_new_tokens=24, limit=a.n)  # fmt: skip
    _, paths = write_report(str(a.out))
    data = load_rows(str(a.out))
    t = table(data, a.data, a.resamples)
    t["headrouter_minus"] = headrouter_against_each(data, t["tasks"], a.resamples)
    (a.out / "accuracy.json").write_text(json.dumps(t, indent=1) + "\n")
    command = "python -m bench.accuracy " + " ".join(argv if argv is not None else sys.argv[1:])
    text = markdown(t, command, machine(), paths.get("routing"))
    (a.out / "accuracy.md").write_text(text)
    if a.markdown:
        a.markdown.write_text(text)
    print(text)
    print(f"report (paper layout, coverage): {paths['markdown']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
