"""`python -m hr_jax.training`: train (or resume) a run, export it, or score a checkpoint."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from hr_jax.compilation_cache import enable_compilation_cache
from hr_jax.training import __doc__ as TRAINING_DOC
from hr_jax.training.config import PROMPT_STYLES, TrainConfig, demo_model
from hr_jax.training.export import accuracy, export_run
from hr_jax.training.heldout import score_run
from hr_jax.training.loop import train
from hr_jax.training.milestone import write_milestone

SPECIAL_FLAGS = ("tasks", "model", "curriculum")  # TrainConfig fields parsed by hand


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m hr_jax.training", description=TRAINING_DOC,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--out", help="run directory (created; rerun the same command to resume)")
    p.add_argument("--export", metavar="HF_DIR", help="export the run's latest checkpoint to HF_DIR and exit")
    p.add_argument("--accuracy", metavar="CKPT", help="score a converted checkpoint on --data and exit")
    p.add_argument("--data", help="synth split directory for --accuracy")
    p.add_argument("--n", type=int, default=None, help="records per task for --accuracy")
    p.add_argument("--style", choices=PROMPT_STYLES, default="eval", help="prompt style for --accuracy")
    p.add_argument("--json", help="write the --accuracy result here")
    p.add_argument("--eval-batch-size", type=int, default=16, help="batch size for --accuracy")
    p.add_argument(
        "--heldout",
        type=int,
        metavar="SEED",
        default=None,
        help="score the latest checkpoint on --n (default 400) held-out clips of SEED; exit",
    )
    p.add_argument(
        "--milestone",
        metavar="DIR",
        default=None,
        help="write the latest checkpoint as a milestone (what a passed gate commits); exit",
    )
    p.add_argument("--base", default=None, help="for --milestone: the checkpoint the run started from")
    p.add_argument("--workers", type=int, default=1, help="processes rendering clips")
    p.add_argument("--stop-after", type=int, default=None, help="stop after this many steps of this call")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument(
        "--model",
        default=None,
        metavar="JSON",
        help='overrides of the demo model, e.g. \'{"text": {"num_hidden_layers": 6}, "audio": {}}\'',
    )
    p.add_argument(
        "--tasks",
        default="",
        help="comma-separated tasks (default: all); one listed m times is drawn m times as often",
    )
    p.add_argument(
        "--curriculum",
        default="",
        metavar="STAGES",
        help="stages STEPS:MIN_S:MAX_S:BATCH, comma-separated, e.g. 600:2:8:16,300:15:60:4",
    )
    p.add_argument("--init-from", default=None, metavar="CKPT", help="a fresh run starts from these weights")
    p.add_argument("--cache-dir", default=None, help="keep rendered clips and log-mel here, for reuse")
    p.add_argument("--compilation-cache", default=None, metavar="DIR",
                   help="JAX's persistent compilation cache (default $HR_JAX_CACHE/jax)")  # fmt: skip
    for f in dataclasses.fields(TrainConfig):
        if f.name in SPECIAL_FLAGS:
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
    if a.heldout is not None or a.milestone:
        res = score_run(a.out, a.heldout, a.n or 400) if a.heldout is not None else None
        if res is not None:
            print(json.dumps(res, indent=1))
            if a.json:
                Path(a.json).write_text(json.dumps(res, indent=1) + "\n")
        if a.milestone:
            if not a.base:
                p.error("--milestone needs --base (the checkpoint the run started from)")
            print(write_milestone(a.out, a.milestone, a.base, res))
        return 0
    kw = {f.name: getattr(a, f.name) for f in dataclasses.fields(TrainConfig) if f.name not in SPECIAL_FLAGS}
    kw["tasks"] = tuple(t for t in a.tasks.split(",") if t)
    stages = [c.split(":") for c in a.curriculum.split(",") if c]
    kw["curriculum"] = tuple((int(n), float(lo), float(hi), int(b)) for n, lo, hi, b in stages)
    if a.model:
        overrides = json.loads(a.model)
        kw["model"] = demo_model(overrides.get("text"), overrides.get("audio"))
    enable_compilation_cache(a.compilation_cache)
    summary = train(TrainConfig(**kw), a.out, stop_after=a.stop_after, progress=not a.no_progress,
                    init_from=a.init_from, cache_dir=a.cache_dir, workers=a.workers)  # fmt: skip
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
