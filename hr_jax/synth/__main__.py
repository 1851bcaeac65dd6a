"""CLI: ``python -m hr_jax.synth --out DIR --split test --n 50 [--tasks a,b] [--seed S]``."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from tqdm import tqdm

from . import SPLITS, TASK_NAMES, EspeakNotFoundError, generate, task_file


def main(argv: Sequence[str] | None = None) -> int:
    """Generate synthetic task clips and record files; return the exit status."""
    p = argparse.ArgumentParser(prog="python -m hr_jax.synth", description=__doc__)
    p.add_argument("--out", required=True, help="output directory (one per split is a good idea)")
    p.add_argument("--split", choices=SPLITS, default="test")
    p.add_argument("--n", type=int, default=50, help="clips per task")
    p.add_argument("--tasks", default="all", help=f"comma-separated subset of {','.join(TASK_NAMES)}")
    p.add_argument("--seed", type=int, default=None, help="default: the split's fixed seed")
    p.add_argument("--min-seconds", type=float, default=15.0)
    p.add_argument("--max-seconds", type=float, default=90.0)
    args = p.parse_args(argv)

    tasks = (
        list(TASK_NAMES) if args.tasks == "all" else [t.strip() for t in args.tasks.split(",") if t.strip()]
    )
    unknown = [t for t in tasks if t not in TASK_NAMES]
    if unknown:
        p.error(f"unknown task(s) {unknown}; choose from {list(TASK_NAMES)}")
    start = time.perf_counter()
    try:
        with tqdm(tasks, desc="tasks", unit="task") as bar:
            for task in bar:
                bar.set_postfix_str(task)
                generate(args.out, args.split, task, args.n, args.seed, args.min_seconds, args.max_seconds)
    except EspeakNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    elapsed = time.perf_counter() - start
    total = args.n * len(tasks)
    for task in tasks:
        print(task_file(args.out, task))
    print(f"{total} clips in {elapsed:.1f} s ({elapsed / max(total, 1):.3f} s/clip)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
