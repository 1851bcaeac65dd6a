"""Accuracy against training steps: every kept checkpoint of a run, exported, converted and scored
greedy and unpruned on the same clips (`hr_jax.training.accuracy`).

    python -m bench.training.curve --run runs/synth --data data/synth/dev_short --n 10 \\
        --json bench/training/curve.json --png bench/training/curve.png

A run started from trained weights (`--init-from`) is drawn after them with `--offset` (the steps
those weights had) and `--previous` (their points).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from hr_jax.checkpoint import convert
from hr_jax.training import accuracy, export_run
from hr_jax.training.state import checkpoint_manager


def kept_steps(run: Path) -> list[int]:
    """The steps a run has checkpoints of, ascending."""
    mgr = checkpoint_manager(run.absolute(), 1)
    steps = sorted(mgr.all_steps())
    mgr.close()
    return steps


def curve(run: Path, data: Path, n: int, steps: Sequence[int] | None = None) -> list[dict]:
    """`[{"step", "mean", per-task accuracy...}]` for `steps` (default: every kept checkpoint)."""
    out = []
    for step in steps or kept_steps(run):
        with tempfile.TemporaryDirectory(prefix="hr_jax_curve_") as tmp:
            hf = export_run(run, Path(tmp) / "hf", step)
            ckpt = convert(hf, Path(tmp) / "ckpt", dtype="float32")
            res = accuracy(ckpt, data, n, progress=False)
        out.append({"step": step, "mean": res["mean"], **{t: v["accuracy"] for t, v in res.items()
                                                          if isinstance(v, dict)}})  # fmt: skip
        print(json.dumps(out[-1]), file=sys.stderr)
    return out


def plot(points: list[dict], png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = [k for k in points[0] if k not in ("step", "mean")]
    steps = [p["step"] for p in points]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for t in tasks:
        ax.plot(steps, [p[t] for p in points], marker="o", lw=1, label=t)
    ax.plot(steps, [p["mean"] for p in points], color="black", lw=2.5, marker="s", label="mean")
    ax.axhline(0.9, color="gray", ls="--", lw=1)
    ax.set_xlabel("training step")
    ax.set_ylabel("greedy unpruned accuracy")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(ncol=2, fontsize=8)
    ax.set_title("Accuracy against training steps")
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.training.curve", description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", type=Path, required=True, help="training run directory")
    ap.add_argument("--data", type=Path, required=True, help="synth split directory to score on")
    ap.add_argument("--n", type=int, default=10, help="clips per task")
    ap.add_argument("--steps", default="", help="comma-separated steps (default: every kept checkpoint)")
    ap.add_argument(
        "--offset",
        type=int,
        default=0,
        help="steps the run's starting weights had already trained (a run made with --init-from)",
    )
    ap.add_argument("--previous", type=Path, default=None, help="earlier points (a curve JSON) to draw first")
    ap.add_argument("--json", type=Path, required=True)
    ap.add_argument("--png", type=Path, default=None)
    a = ap.parse_args(argv)
    steps = [int(s) for s in a.steps.split(",") if s] or None
    points = [dict(p, step=p["step"] + a.offset) for p in curve(a.run, a.data, a.n, steps)]
    if a.previous:
        points = json.loads(a.previous.read_text()) + points
    a.json.write_text(json.dumps(points, indent=1) + "\n")
    if a.png:
        plot(points, a.png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
