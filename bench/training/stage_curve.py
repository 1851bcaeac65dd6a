"""Held-out accuracy against steps across the stages of the staged recipe (issue 20), from the
`heldout` entries each run logs every `--eval-every` steps (`hr_jax.training.heldout`).

    python -m bench.training.stage_curve runs/stage_a runs/stage_a2 \\
        --json bench/training/stage_curve.json --png bench/training/stage_curve.png

Runs are given in the order they ran; each continues from the previous one's latest checkpoint (a
run started `--init-from` another starts at its step 0). Stage "encoder" points are CTC word accuracy, exact
transcripts and per-token class accuracy; decoder stages' points are reply exact match per task.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

GATES = {"word_acc": 97.0, "label_acc": 95.0, "mean_exact": 90.0}  # issue 20's gates A and B


def points(runs: Sequence[Path]) -> list[dict[str, Any]]:
    """`[{"run", "stage", "step" (cumulative), "run_step", scores...}]` in step order."""
    out: list[dict[str, Any]] = []
    offset = 0
    for run in runs:
        cfg = json.loads((run / "train_config.json").read_text())
        rows = [json.loads(x) for x in (run / "train_log.jsonl").read_text().splitlines() if x.strip()]
        for r in rows:
            if "heldout" in r:
                h = {k: v for k, v in r["heldout"].items() if k not in ("examples", "seed")}
                out.append({"run": run.name, "stage": cfg.get("stage", "joint"), "step": offset + r["step"],
                            "run_step": r["step"], "elapsed_s": r.get("elapsed_s"), **h})  # fmt: skip
        offset += last_checkpoint(run) or (rows[-1]["step"] if rows else 0)
    return out


def last_checkpoint(run: Path) -> int | None:
    """The step of a run's latest checkpoint (where a run started from it begins), if it kept any."""
    steps = [int(d.name) for d in (run / "ckpt").glob("*") if d.name.isdigit()]
    return max(steps) if steps else None


def plot(pts: list[dict[str, Any]], png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8.5, 4.8))
    series = {"word_acc": "CTC word accuracy", "exact": "exact transcripts", "label_acc": "class per token",
              "mean_exact": "reply exact match (mean over tasks)"}  # fmt: skip
    for key, label in series.items():
        xs = [p["step"] for p in pts if isinstance(p.get(key), (int, float))]
        ys = [p[key] for p in pts if isinstance(p.get(key), (int, float))]
        if xs:
            ax.plot(xs, ys, marker="o", lw=1.5, label=label)
    for key, level in GATES.items():
        if any(isinstance(p.get(key), (int, float)) for p in pts):
            ax.axhline(level, color="gray", ls="--", lw=0.8)
    starts = {}
    for p in pts:
        starts.setdefault(p["run"], p["step"] - p["run_step"])
    for run, x in starts.items():
        ax.axvline(x, color="black", lw=0.6, alpha=0.4)
        ax.text(x, 2, f" {run}", fontsize=8, rotation=90, va="bottom")
    ax.set_ylim(0, 100)
    ax.set_xlabel("training step (cumulative over the stages' runs)")
    ax.set_ylabel("held-out %")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title("Staged training: held-out scores (dashed: the gates)")
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", type=Path, help="run directories, in the order they ran")
    p.add_argument("--json", type=Path)
    p.add_argument("--png", type=Path)
    a = p.parse_args(argv)
    pts = points(a.runs)
    text = json.dumps(pts, indent=1)
    print(text)
    if a.json:
        a.json.write_text(text + "\n")
    if a.png and pts:
        plot(pts, a.png)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
